"""Reference clusters and per-cluster mean profiles ("content" of SpaIM).

The reference's cell types come either from a column of ``reference.obs`` the user names, or from a
seeded Leiden clustering (scanpy's igraph flavour: python-igraph's own Leiden, no leidenalg) of a scaled
copy of the log-normalised reference; when igraph is not installed, seeded KMeans is used instead and a
warning says so. :func:`cluster_means` turns labels into a clusters × genes matrix of mean log-normalised
expression.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import InputError

#: clusters with fewer cells than this are dropped from the content (their mean is one cell's noise)
MIN_CLUSTER_CELLS = 2


@dataclass
class ReferenceClusters:
    """Cluster label (``-1`` = not used) of every reference cell, the cluster names and how they were made."""

    labels: np.ndarray
    names: list[str]
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def n_clusters(self) -> int:
        return len(self.names)

    def sizes(self) -> np.ndarray:
        return np.bincount(self.labels[self.labels >= 0], minlength=self.n_clusters)


def labels_from_obs(obs: pd.DataFrame | None, key: str) -> tuple[np.ndarray, list[str]]:
    """Integer codes (``-1`` = missing) and names of the categories in column ``key`` of ``obs``."""
    if obs is None:
        raise InputError(f"cluster_key={key!r} was given but the reference has no obs table.",
                         "pass the reference AnnData with its cell annotations, or leave cluster_key unset.")
    if key not in obs.columns:
        cols = ", ".join(map(str, list(obs.columns)[:10])) or "none"
        raise InputError(f"The reference has no obs column {key!r} (columns: {cols}).",
                         "name an existing cell-type column, or leave cluster_key unset to cluster the reference.")
    values = obs[key]
    cat = values.astype("category") if not isinstance(values.dtype, pd.CategoricalDtype) else values
    cat = cat.cat.remove_unused_categories()
    return cat.cat.codes.to_numpy().astype(np.int64), [str(c) for c in cat.cat.categories]


def _cache_key(X: np.ndarray, *args) -> str:
    h = hashlib.sha1(np.ascontiguousarray(X).view(np.uint8).ravel()[: 1 << 26].tobytes())
    h.update(repr((X.shape, args)).encode())
    return h.hexdigest()


_CLUSTER_CACHE: dict[str, tuple[np.ndarray, str]] = {}


def leiden_labels(X: np.ndarray, *, resolution: float = 1.0, n_neighbors: int = 15, n_pcs: int = 30,
                  max_genes: int = 3000, seed: int = 0) -> tuple[np.ndarray, str]:
    """Seeded Leiden clusters of the rows of a log-normalised matrix; (labels, how).

    The matrix is restricted to its ``max_genes`` most variable genes, scaled (clipped at 10), projected on
    ``n_pcs`` principal components and clustered on a ``n_neighbors`` graph with Gaussian-kernel weights
    (scanpy ``neighbors(method="gauss")`` + ``leiden(flavor="igraph")``, which needs python-igraph only). Falls
    back to KMeans with ``round(sqrt(n / 20))`` clusters (between 2 and 30) when igraph is missing.
    Results are cached per input for the session (cross-validation re-uses them).
    """
    X = np.asarray(X, dtype=np.float32)
    key = _cache_key(X, resolution, n_neighbors, n_pcs, max_genes, seed)
    if key in _CLUSTER_CACHE:
        labels, how = _CLUSTER_CACHE[key]
        return labels.copy(), how
    var = X.var(axis=0)
    cols = np.sort(np.argsort(-var, kind="stable")[:max_genes])
    cols = cols[var[cols] > 0]
    if cols.size < 2:
        raise InputError("The reference has fewer than 2 genes that vary between cells: it cannot be clustered.",
                         "name a cell-type column with cluster_key, or use a richer reference.")
    Z = X[:, cols]
    Z = (Z - Z.mean(0)) / Z.std(0)
    np.clip(Z, -10, 10, out=Z)
    n_comp = int(max(1, min(n_pcs, Z.shape[1] - 1, Z.shape[0] - 1)))
    try:
        import igraph  # noqa: F401  (scanpy's igraph flavour of Leiden; leidenalg is not needed)
    except ImportError:
        labels, how = _kmeans_labels(Z, seed), "kmeans (igraph not installed)"
        warnings.warn("python-igraph is not installed: the reference was clustered with KMeans instead of Leiden "
                      "(pip install igraph).", stacklevel=2)
    else:
        import anndata as ad
        import scanpy as sc

        adata = ad.AnnData(Z)
        sc.tl.pca(adata, n_comps=n_comp, random_state=seed)
        n_nb = int(min(n_neighbors, Z.shape[0] - 1))
        adjacency = None
        if Z.shape[0] > 4096:
            # scanpy's approximate-neighbour path hands scipy's csr_array to code that expects csr_matrix
            # (AttributeError 'getnnz' with scipy ≥ 1.14): build the exact kNN graph here instead
            adjacency = _knn_adjacency(np.asarray(adata.obsm["X_pca"], np.float32), n_nb)
        else:
            # Gaussian-kernel connectivities: no numba JIT (UMAP's costs ~20 s on first use in every process)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # identical cells: a kernel width of 0, see below
                sc.pp.neighbors(adata, n_neighbors=n_nb, use_rep="X_pca", method="gauss", random_state=seed)
            if not np.isfinite(adata.obsp["connectivities"].data).all():
                # cells whose neighbours all sit at distance 0 (identical profiles, e.g. no counts on these genes)
                # give NaN Gaussian weights, and Leiden then makes every cell a cluster of its own
                adjacency = _knn_adjacency(np.asarray(adata.obsm["X_pca"], np.float32), n_nb)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sc.tl.leiden(adata, resolution=resolution, random_state=seed, flavor="igraph", n_iterations=2,
                         directed=False, adjacency=adjacency)
        labels = adata.obs["leiden"].astype(int).to_numpy().astype(np.int64)
        how = f"leiden (resolution {resolution:g}, {n_neighbors} gauss neighbours, {n_comp} PCs)"
    while len(_CLUSTER_CACHE) >= 8:  # a few seeds × one reference; labels are small
        _CLUSTER_CACHE.pop(next(iter(_CLUSTER_CACHE)))
    _CLUSTER_CACHE[key] = (labels.copy(), how)
    return labels, how


def _knn_adjacency(P: np.ndarray, k: int):
    """Symmetric binary kNN graph (exact Euclidean neighbours in PCA space, chunked) as scipy CSR."""
    import scipy.sparse as sp
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=k + 1).fit(P).kneighbors(P, return_distance=False)[:, 1:]
    rows = np.repeat(np.arange(P.shape[0]), k)
    A = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, idx.ravel())), shape=(P.shape[0],) * 2)
    return sp.csr_matrix(A.maximum(A.T))


def _kmeans_labels(Z: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    k = int(np.clip(round(np.sqrt(Z.shape[0] / 20)), 2, 30))
    k = min(k, Z.shape[0])
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(Z).astype(np.int64)


def reference_clusters(reference: np.ndarray, obs: pd.DataFrame | None = None, key: str | None = None, *,
                       resolution: float = 1.0, seed: int = 0,
                       min_cells: int = MIN_CLUSTER_CELLS) -> ReferenceClusters:
    """Clusters of the reference: column ``key`` of ``obs`` when given, else Leiden (see :func:`leiden_labels`).

    Cells without a label are ignored; clusters with fewer than ``min_cells`` cells are dropped (warning).
    Raises :class:`InputError` when fewer than two clusters remain (a single cluster carries no content).
    """
    from .progress import run_to_end

    return run_to_end(reference_clusters_steps(reference, obs, key, resolution=resolution, seed=seed,
                                               min_cells=min_cells))


def reference_clusters_steps(reference: np.ndarray, obs: pd.DataFrame | None = None, key: str | None = None, *,
                             resolution: float = 1.0, seed: int = 0, min_cells: int = MIN_CLUSTER_CELLS,
                             progress=None):
    """Generator version of :func:`reference_clusters`: the Leiden clustering (one scanpy / igraph call, and on
    first use the ``import scanpy`` of a few seconds) runs on a worker thread while this yields ``progress``
    (a :class:`~napari_spatial_impute.progress.Progress`) every 0.1 s, so a Cancel is answered meanwhile
    (the abandoned call finishes in the background; its labels only fill the session cache). Same labels
    as the direct call."""
    from .progress import Progress, wait_for

    if progress is None:
        progress = Progress(0, 1, "clustering the reference", "fit")
    notes: list[str] = []
    if key:
        codes, names = labels_from_obs(obs, key)
        if len(codes) != reference.shape[0]:
            raise InputError(f"The reference obs table has {len(codes)} rows but the matrix {reference.shape[0]}.",
                             "pass obs and expression of the same reference.")
        n_missing = int((codes < 0).sum())
        if n_missing:
            notes.append(f"{n_missing} reference cells without a {key!r} label are ignored")
        source = f"obs[{key!r}]"
    else:
        codes, source = yield from wait_for(lambda: leiden_labels(reference, resolution=resolution, seed=seed),
                                            progress)
        names = [str(i) for i in range(int(codes.max()) + 1)]
    sizes = np.bincount(codes[codes >= 0], minlength=len(names))
    small = [i for i in range(len(names)) if 0 < sizes[i] < min_cells]
    keep = [i for i in range(len(names)) if sizes[i] >= min_cells]
    if small:
        msg = (f"{len(small)} reference cluster(s) with fewer than {min_cells} cells are dropped from the content: "
               + ", ".join(f"{names[i]} ({sizes[i]})" for i in small[:10]))
        warnings.warn(msg, stacklevel=2)
        notes.append(msg)
    if len(keep) < 2:
        what = f"column {key!r}" if key else "the Leiden clustering"
        raise InputError(f"The reference has {len(keep)} usable cluster(s) from {what} (at least 2 cells each); "
                         "SpaIM's content is a gene's profile across clusters and needs at least 2.",
                         "name a cell-type column with several types (cluster_key), or leave it unset / raise "
                         "the Leiden resolution so the reference is clustered.")
    remap = np.full(len(names), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    labels = np.where(codes >= 0, remap[np.clip(codes, 0, None)], -1)
    return ReferenceClusters(labels, [names[i] for i in keep], source, notes)


def cluster_means(X: np.ndarray, labels: np.ndarray, n_clusters: int | None = None,
                  chunk: int = 4096) -> np.ndarray:
    """Mean of ``X``'s rows per label (rows labelled ``-1`` ignored): (n_clusters, n_genes) float32.

    Accumulates over column chunks so a large reference is never copied whole.
    """
    import scipy.sparse as sp

    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if n_clusters is None else int(n_clusters)
    used = labels >= 0
    rows = np.flatnonzero(used)
    indicator = sp.csr_matrix((np.ones(rows.size, np.float64), (labels[rows], rows)), shape=(k, X.shape[0]))
    counts = np.asarray(indicator.sum(axis=1)).ravel()
    counts[counts == 0] = 1
    out = np.empty((k, X.shape[1]), dtype=np.float32)
    for start in range(0, X.shape[1], chunk):
        stop = min(X.shape[1], start + chunk)
        block = np.asarray(X[:, start:stop], dtype=np.float64)
        out[:, start:stop] = (indicator @ block) / counts[:, None]
    return out
