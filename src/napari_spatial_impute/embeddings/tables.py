"""Gene-embedding tables: the :class:`GeneEmbeddings` container and readers for .npz / .parquet / .csv.

Accepted layouts (one row per gene):

- ``.npz`` with arrays ``genes`` (n,) and ``emb`` (n, d) — the layout of the shipped subset and of
  ``../shared/datasets/stimpute_esm2_gene_embeddings/*_emb.npz``; or one array per gene (key = symbol);
- ``.parquet`` / ``.csv`` / ``.tsv``: a ``gene`` (or ``symbol``) column, else the first column (CSV) / the
  index (parquet), holds the symbols; every other column is one embedding dimension.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np

from ..errors import InputError

#: The shipped ESM-2 3B (layer 36, mean-pooled) embeddings of the 33 osmFISH genes (float16).
BUNDLED_ESM2 = "data/esm2/osmfish_esm2_t36_3B.npz"


@dataclass
class GeneEmbeddings:
    """Gene symbols and one vector per gene (``vectors``: n_genes × dim, float32)."""

    genes: list[str]
    vectors: np.ndarray
    source: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.genes = [str(g) for g in self.genes]
        vec = np.asarray(self.vectors)
        if vec.dtype == object or vec.ndim != 2:
            raise InputError(f"Gene embeddings from {self.source or 'input'} are not one vector per gene "
                             f"(array shape {vec.shape}).", "give an n_genes × dim table.")
        if vec.shape[0] != len(self.genes):
            raise InputError(f"{len(self.genes)} gene symbols but {vec.shape[0]} embedding rows in "
                             f"{self.source or 'input'}.", "give exactly one vector per gene symbol.")
        if vec.shape[1] == 0 or not vec.shape[0]:
            raise InputError(f"The gene-embedding table {self.source or ''} is empty.", "point at a filled table.")
        vec = vec.astype(np.float32)
        bad = ~np.isfinite(vec).all(axis=1)
        if bad.any():
            lengths = np.isfinite(vec).sum(axis=1)
            raise InputError(
                f"{int(bad.sum())} gene(s) in {self.source or 'the embeddings'} have missing/non-finite values, "
                f"i.e. vectors of a different dimension (e.g. {self.genes[int(np.argmax(bad))]} has "
                f"{int(lengths[int(np.argmax(bad))])} of {vec.shape[1]} values).",
                "give every gene a complete vector of the same dimension.")
        if len(set(self.genes)) != len(self.genes):
            seen_exact: set[str] = set()
            dups = [g for g in self.genes if g in seen_exact or seen_exact.add(g)]
            raise InputError(f"Duplicate gene symbols in {self.source or 'the gene embeddings'}: {dups[:5]}.",
                             "keep one vector per gene symbol.")
        self.vectors = vec
        self._exact = {g: i for i, g in enumerate(self.genes)}
        self._pos: dict[str, int] = {}
        case_dups = []
        for i, g in enumerate(self.genes):
            if g.upper() in self._pos:
                case_dups.append(g)
            else:
                self._pos[g.upper()] = i
        if case_dups:
            # stImpute's own osmFISH table holds e.g. Gm10051 and GM10051: symbols match exactly first
            warnings.warn(f"{len(case_dups)} symbol(s) in {self.source or 'the gene embeddings'} repeat another "
                          f"ignoring case (e.g. {case_dups[:3]}): genes are matched with the exact spelling first, "
                          "then ignoring case (the first such symbol wins).", stacklevel=2)
        self.case_duplicates = case_dups

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.genes)

    def __repr__(self) -> str:
        return f"GeneEmbeddings({len(self)} genes × {self.dim}, source={self.source!r})"

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Sequence[float]], name: str = "mapping") -> GeneEmbeddings:
        """Build from ``{gene: vector}``; every vector must have the same length."""
        genes = [str(g) for g in mapping]
        vecs = [np.asarray(v, dtype=np.float32).ravel() for v in mapping.values()]
        _check_same_dim(genes, [len(v) for v in vecs], name)
        return cls(genes, np.stack(vecs) if vecs else np.zeros((0, 0), np.float32), name)

    def lookup(self, genes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Vectors of ``genes`` (exact spelling first, then ignoring case): (n × dim array, zero rows where
        missing), found mask, missing symbols."""
        out = np.zeros((len(genes), self.dim), dtype=np.float32)
        found = np.zeros(len(genes), dtype=bool)
        missing = []
        for i, g in enumerate(genes):
            j = self._exact.get(str(g))
            if j is None:
                j = self._pos.get(str(g).upper())
            if j is None:
                missing.append(str(g))
            else:
                out[i] = self.vectors[j]
                found[i] = True
        return out, found, missing


def _check_same_dim(genes: list[str], lengths: list[int], name: str) -> None:
    if len(set(lengths)) > 1:
        values, counts = np.unique(lengths, return_counts=True)
        common = int(values[np.argmax(counts)])
        odd = [f"{g} ({n})" for g, n in zip(genes, lengths) if n != common][:5]
        raise InputError(f"Gene embeddings in {name} have different dimensions: most have {common} values but "
                         f"{', '.join(odd)} differ.", "give every gene a vector of the same dimension "
                                                      "(from the same model and layer).")


def read_embedding_table(path: str | Path) -> GeneEmbeddings:
    """Read a gene-embedding table (see the module docstring for layouts)."""
    if str(path) == BUNDLED_ESM2:
        resource = files("napari_spatial_impute").joinpath(BUNDLED_ESM2)
        path = Path(str(resource))
        label = "bundled ESM-2 3B osmFISH subset"
    else:
        path = Path(path).expanduser()
        label = path.name
    if not path.is_file():
        raise InputError(f"Gene-embedding table {path} does not exist.", "check the path.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            return _read_npz(path, label)
        if suffix in (".parquet", ".pq"):
            import pandas as pd

            return _from_frame(pd.read_parquet(path), label, index_is_gene=True)
        if suffix in (".csv", ".tsv"):
            import pandas as pd

            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
            return _from_frame(df, label, index_is_gene=False)
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - unreadable file → clear message
        raise InputError(f"Could not read gene-embedding table {path}: {err}.",
                         "give a .npz (genes + emb arrays), .parquet or .csv with one row per gene.") from err
    raise InputError(f"Unknown gene-embedding table type {suffix!r} ({path.name}).", "use .npz, .parquet or .csv.")


def _read_npz(path: Path, label: str) -> GeneEmbeddings:
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.files)
        if "genes" in keys and ("emb" in keys or "vectors" in keys):
            vec = z["emb"] if "emb" in keys else z["vectors"]
            return GeneEmbeddings([str(g) for g in z["genes"]], vec, label, {"path": str(path)})
        arrays = {k: np.asarray(z[k]).ravel() for k in keys}
    _check_same_dim(list(arrays), [len(v) for v in arrays.values()], label)
    return GeneEmbeddings(list(arrays), np.stack(list(arrays.values())), label, {"path": str(path)})


def _from_frame(df, label: str, *, index_is_gene: bool) -> GeneEmbeddings:
    cols = {str(c).lower(): c for c in df.columns}
    key = cols.get("gene", cols.get("symbol", cols.get("gene_symbol")))
    if key is not None:
        genes = df[key].astype(str).tolist()
        values = df.drop(columns=[key])
    elif index_is_gene:
        genes = df.index.astype(str).tolist()
        values = df
    else:
        genes = df.iloc[:, 0].astype(str).tolist()
        values = df.iloc[:, 1:]
    try:
        vec = values.to_numpy(dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise InputError(f"{label} has non-numeric embedding columns ({err}).",
                         "keep only the gene column and numeric dimensions.") from err
    lengths = np.isfinite(vec).sum(axis=1).tolist()
    _check_same_dim(genes, lengths, label)
    return GeneEmbeddings(genes, vec, label)
