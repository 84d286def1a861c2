"""The widgets' worker jobs: progress generators that do every file read and computation off the GUI thread.

Qt-free (they only call the API and :mod:`napari_spatial_impute.layers`); the widgets run them with
:class:`~._worker.RunsInWorker` and only touch layers with what they return.
"""

from __future__ import annotations

from pathlib import Path

from ..progress import Progress, ProgressGen, relay


def _read(source, kind: str):
    if not isinstance(source, str | Path):
        return source
    from ..io.anndata_io import read_reference
    from ..io.detect import read_cells

    return read_reference(source) if kind == "reference" else read_cells(source)


def load_reference_steps(reference, panel: list[str], values: str = "auto") -> ProgressGen[dict]:
    """The reference's genes the panel lacks / shares, and its size (a file is opened backed: X stays on disk).
    The genes listed are those of the matrix the counts come from (``.raw.var`` for counts in ``.raw``)."""
    from ..layers.genes import gene_candidates
    from ..layers.paint import colormap_lut

    colormap_lut("magma")  # imports matplotlib off the GUI thread

    yield Progress(0, 1, "reading the reference's genes", "reference")
    if isinstance(reference, str | Path):  # an .h5ad opened backed; a 10x matrix (compact, sparse) or a zarr store
        from ..io.anndata_io import read_reference

        reference = read_reference(reference, backed="r")
    missing, shared, label = gene_candidates(panel, reference, values=values)
    return {"missing": missing, "shared": shared, "identifier": label, "n_obs": int(reference.n_obs)}


def run_steps(spatial, reference, method: str, genes, *, all_genes: bool, device: str, seed: int, out, params: dict,
              jobs: list[dict], cell_ids=None, reference_values: str = "auto") -> ProgressGen[dict]:
    """Read the inputs, impute, prepare the label masks and align the result with the sample's cells
    (``reference_values``: the widget's "Reference values" choice, auto | counts | log1p)."""
    import numpy as np

    from ..api import impute_steps

    source = spatial
    yield Progress(0, 100, "reading the spatial data and the reference", "read")
    spatial = _read(spatial, "spatial")
    reference = _read(reference, "reference")
    result = yield from relay(impute_steps(spatial, reference, method, genes, seed=seed, device=device,
                                           all_genes=all_genes, out=out, reference_values=reference_values,
                                           **params), "", 1, 100, span=94)
    ids = np.asarray(spatial.obs_names, dtype=str) if cell_ids is None else cell_ids
    shown = yield from _for_the_view(result, spatial, ids, jobs, 96)
    return {**shown, "spatial": spatial, "source": source}


def load_result_steps(path, spatial, cell_ids, jobs: list[dict]) -> ProgressGen[dict]:
    """Read a saved result and align it with the open sample's cells (``cell_ids`` of the AnnData ``spatial``).

    Raises :class:`~napari_spatial_impute.errors.InputError` (shown in the widget, nothing recoloured) when its
    cell ids do not match the sample's, or match cells that lie elsewhere (another slide)."""
    from ..layers.results import read_result

    path = Path(path)
    yield Progress(0, 100, f"reading {path.name}", "read")
    result = read_result(path)
    shown = yield from _for_the_view(result, spatial, cell_ids, jobs, 60)
    return {**shown, "spatial": None, "source": str(path), "loaded": str(path)}


def _for_the_view(result, spatial, ids, jobs: list[dict], start: int) -> ProgressGen[dict]:
    """A result aligned with the sample's cells ``ids`` (positions from ``spatial`` by id), the label masks
    prepared for colouring and the gene to show first: what the widget needs from a run or a loaded result."""
    from ..layers.cells import default_gene
    from ..layers.paint import colormap_lut
    from ..layers.results import SampleResult
    from ..layers.sample_view import prepare_masks

    yield Progress(start, 100, "aligning the result with the sample's cells", "align")
    aligned = SampleResult(result, ids, _xy_for(spatial, ids))
    yield Progress((start + 100) // 2, 100, "preparing the segmentation for colouring", "masks")
    masks = prepare_masks([dict(job, cell_ids=ids) for job in jobs])
    colormap_lut("magma")  # imports matplotlib here, not in the GUI thread
    return {"result": result, "aligned": aligned, "masks": masks, "first_gene": default_gene(result)}


def _xy_for(spatial, ids):
    import numpy as np
    import pandas as pd

    pos = pd.Index(np.asarray(spatial.obs_names, dtype=str)).get_indexer(ids)
    xy = np.full((len(ids), 2), np.nan)
    ok = pos >= 0
    xy[ok] = np.asarray(spatial.obsm["spatial"], np.float64)[pos[ok], :2]
    return xy


def save_steps(result, path: Path, *, overwrite: bool = False, provenance: dict | None = None) -> ProgressGen[dict]:
    """Save an aligned result (see :func:`~napari_spatial_impute.layers.results.save_result_steps`)."""
    from ..layers.results import save_result_steps

    saved = yield from save_result_steps(result, path, overwrite=overwrite, provenance=provenance)
    return {"saved": saved}


def evaluate_steps(spatial, reference, methods: list[str], folds: int, seed: int, device: str) -> ProgressGen[dict]:
    """Cross-validate each method over the measured genes the reference shares (per-gene metrics)."""
    from ..api import cross_validate_steps

    spatial = _read(spatial, "spatial")
    reference = _read(reference, "reference")
    out = {}
    for i, m in enumerate(methods):
        cv = yield from relay(cross_validate_steps(spatial, reference, m, folds, seed=seed, device=device), "",
                              round(100 * i / len(methods)), 100, span=max(1, round(100 / len(methods))),
                              prefix=f"{m}: ")
        out[m] = cv
    return {"cv": out}
