"""stImpute (gene-graph GNN imputation with reliability scores); see :mod:`.model`."""

from .gene_graph import GeneGraph, build_gene_graph
from .model import STImputer

__all__ = ["GeneGraph", "STImputer", "build_gene_graph"]
