"""The bundled osmFISH + Allen SSp sample (Codeluppi et al. 2018; Allen Brain Map; via TISSUE / Li et al. 2022).

Cite: Codeluppi S. et al. Spatial organization of the somatosensory cortex revealed by osmFISH. Nat Methods 15,
932-935 (2018). Allen Institute for Brain Science, Allen Brain Map mouse cortex SMART-seq. Li B. et al.
Benchmarking spatial and single-cell transcriptomics integration methods. Nat Methods 19, 662-670 (2022).
Sun E.D. et al. TISSUE (sunericd/TISSUE, MIT), source of the paired files (``data/osmfish_allenssp/PROVENANCE.md``).
"""

from __future__ import annotations

from importlib.resources import files

SAMPLE_DIR = "data/osmfish_allenssp"

XENIUM_DIR = "data/xenium_mouse_brain"


def sample_path(name: str, folder: str = SAMPLE_DIR):
    """Path of a bundled sample file (``spatial.h5ad`` or ``reference.h5ad``; default: the osmFISH pair)."""
    return files("napari_spatial_impute").joinpath(folder, name)


def load_osmfish_sample():
    """(spatial, reference) AnnData pair: 3405 osmFISH cells × 33 genes with (x, y), 1000 Allen cells × 33 genes."""
    import anndata as ad

    spatial = ad.read_h5ad(str(sample_path("spatial.h5ad")))
    reference = ad.read_h5ad(str(sample_path("reference.h5ad")))
    return spatial, reference


def load_xenium_sample(with_truth: bool = False):
    """Real Xenium mouse-brain cells (10x, CC BY 4.0): (spatial, reference[, truth]).

    ``spatial``: 7,621 cells × a 150-gene panel with (x, y) in µm; ``reference``: 8,000 other cells of the
    slide × all 248 genes (``var["gene_ids"]`` Ensembl); ``truth``: the 98 genes hidden from ``spatial``,
    measured in the same cells. See ``data/xenium_mouse_brain/PROVENANCE.md``.
    """
    import anndata as ad

    spatial = ad.read_h5ad(str(sample_path("spatial.h5ad", XENIUM_DIR)))
    reference = ad.read_h5ad(str(sample_path("reference.h5ad", XENIUM_DIR)))
    if not with_truth:
        return spatial, reference
    return spatial, reference, ad.read_h5ad(str(sample_path("truth.h5ad", XENIUM_DIR)))
