"""Imputation API: a scRNA-seq reference's genes onto spatial cells, AnnData in → AnnData out (:func:`impute`).

References are read as users keep them (:mod:`napari_spatial_impute.io.reference`): counts found in
``layers['counts']`` / ``.raw`` / ``X``, the gene identifier that matches the panel, sparse kept sparse. With no
genes named, the reference's most variable genes the panel lacks are imputed (``all_genes=True``: every one).
Results that would not fit in memory go to a zarr store chunk by chunk (``out="result.zarr"``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import UNS_KEY
from ..errors import InputError
from ..io.reference import find_counts, gene_aliases, ingest
from ..io.results import check_finite, is_zarr_path
from ..models import ImputeData, get_imputer
from ..models.base import DENSE_REFERENCE_BYTES
from ..models.params_spec import validate_params
from ..preprocessing import GeneMatch, match_genes, normalize_log1p, resolve_genes, select_variable_genes
from ..progress import Progress, ProgressGen, relay, run_to_end
from .plan import DEFAULT_N_TOP_GENES, check_plan, plan_run


def as_inputs(spatial, reference):
    """The two inputs as in-memory AnnData: a path is read (an ``.h5ad`` / instrument folder / SpatialData store
    for the spatial side, any reference layout for the reference); a backed AnnData is loaded; anything else is
    refused with what to pass."""
    import anndata as ad

    from ..io.anndata_io import read_reference
    from ..io.detect import read_cells

    out = []
    for value, what, read in ((spatial, "spatial", read_cells), (reference, "reference", read_reference)):
        if isinstance(value, str | Path):
            value = read(value)
        elif not isinstance(value, ad.AnnData):
            raise InputError(f"The {what} input is a {type(value).__name__}, not an AnnData.",
                             f"pass an AnnData (cells × genes) or the path of a file "
                             f"(nsi.{'read_cells' if what == 'spatial' else 'read_reference'} reads one).")
        elif value.isbacked:  # a backed matrix cannot be sampled, sliced and normalised as an in-memory one
            value = value.to_memory()
        out.append(value)
    return tuple(out)


def panel_identifier(spatial, label: str, names, reference, reference_values: str) -> tuple[list[str], str | None]:
    """The spatial genes' names to match on: ``var_names``, or an identifier column of the spatial ``var`` that
    matches more reference genes (a CELLxGENE-style panel named by Ensembl id with symbols in ``feature_name``,
    against a reference that only has symbols). Returns (names, a note when a column was chosen)."""
    from ..io.reference import choose_identifier, counts_genes, identifier_candidates, unique_names, var_of

    cands = identifier_candidates(var_of(spatial, label, names), names)
    if len(cands) == 1:
        return list(map(str, names)), None
    ref_var, ref_names, _ = counts_genes(reference, values=reference_values)
    score = {k: choose_identifier(ref_var, ref_names, v)[2] for k, v in cands.items()}
    best = max(score, key=lambda k: (score[k], k == "var_names"))
    if score[best] <= score["var_names"]:
        return list(map(str, names)), None
    chosen, _ = unique_names(cands[best])
    return chosen, (f"panel genes matched by {best} ({score[best]} reference genes; var_names "
                    f"{score['var_names']}): results are named by it")


def read_inputs(spatial, reference, *, spatial_values: str = "auto", reference_values: str = "auto"):
    """Find the counts of both sides and the identifiers on each side that match best.

    Returns (spatial counts, spatial gene names, reference counts AnnData, gene match with the report).
    """
    from ..io.anndata_io import check_spatial

    check_spatial(spatial, "spatial data")
    sp_X, sp_names, sp_label, sp_kind, sp_notes = find_counts(spatial, values=spatial_values, what="spatial data",
                                                              flag="--spatial-values")
    sp_names, how = panel_identifier(spatial, sp_label, sp_names, reference, reference_values)
    if how:
        sp_notes.append(how)
    ref, report = ingest(reference, sp_names, values=reference_values)
    match = match_genes(sp_names, ref.var_names)
    match.reference = report.as_dict()
    match.notes = [f"spatial: {n}" for n in sp_notes] + [f"spatial counts from {sp_label} ({sp_kind})"]
    match.notes += [f"reference: {n}" for n in report.notes]
    if match.n_shared == 0:
        raise InputError(
            f"The spatial data and the reference share no gene (spatial e.g. {list(map(str, sp_names[:3]))}, "
            f"reference e.g. {list(ref.var_names[:3])}).",
            "use a reference of the same species/panel, or add a var column with the panel's gene symbols.")
    return sp_X, sp_names, ref, match


def choose_targets(ref, match: GeneMatch, genes: list[str] | None, *, all_genes: bool = False,
                   n_top_genes: int = DEFAULT_N_TOP_GENES) -> tuple[list[str], str]:
    """Genes to impute: the named ones, every reference-only gene, or its ``n_top_genes`` most variable."""
    if genes is not None:
        targets = resolve_genes(genes, ref.var_names, aliases=gene_aliases(ref.var))
        if not targets:
            raise InputError("No genes to impute were given.", "name at least one reference gene.")
        return targets, f"{len(targets)} named genes"
    candidates = list(match.reference_only)
    if not candidates:
        raise InputError("Every reference gene is already measured in the spatial data: nothing to impute.",
                         "name measured genes to predict them from the others (--genes), or evaluate with --cv.")
    if all_genes:
        return candidates, f"all {len(candidates)} reference genes the panel lacks"
    if int(n_top_genes) < 1:
        raise InputError(f"n_top_genes={n_top_genes} is not valid.",
                         "give a number of genes ≥ 1, or all_genes=True (--all) for every reference gene.")
    # "counts" found, or "counts (declared)": integers either way (seurat_v3 on them)
    integer = str(ref.uns.get("reference_ingestion", {}).get("values", "counts")).startswith("counts")
    return select_variable_genes(ref, candidates, int(n_top_genes), counts_are_integers=integer)


def prepare(spatial, reference, genes: list[str] | None = None, **kwargs) -> tuple[ImputeData, GeneMatch]:
    """Validate, normalise (median library size + log1p) and match genes (see :func:`prepare_steps`)."""
    return run_to_end(prepare_steps(spatial, reference, genes, **kwargs))


def prepare_steps(spatial, reference, genes: list[str] | None = None, *, hold_out: bool = True,
                  all_genes: bool = False, n_top_genes: int = DEFAULT_N_TOP_GENES, spatial_values: str = "auto",
                  reference_values: str = "auto") -> ProgressGen[tuple[ImputeData, GeneMatch]]:
    """Validate, normalise (median library size + log1p) and match genes; yields between phases (cancel points).

    ``genes``: genes to impute (reference spelling resolved case-insensitively); ``None`` = the reference's
    ``n_top_genes`` most variable genes the spatial data lacks (``all_genes``: all of them). With ``hold_out`` a
    requested gene that the spatial data *does* measure is removed from the input features, so it is predicted,
    not copied. Only the shared and target genes of the reference are kept (sparse when large).
    """
    yield Progress(0, 4, "finding the counts and the gene identifiers", "prepare")
    spatial, reference = as_inputs(spatial, reference)
    sp_X, sp_names, ref, match = read_inputs(spatial, reference, spatial_values=spatial_values,
                                             reference_values=reference_values)
    yield Progress(1, 4, "choosing the genes to impute", "prepare")
    targets, how = choose_targets(ref, match, genes, all_genes=all_genes, n_top_genes=n_top_genes)
    match.notes.append(f"targets: {how}")
    data = yield from build_data(spatial, sp_X, sp_names, ref, match, targets, hold_out=hold_out)
    return data, match


def build_data(spatial, sp_X, sp_names, ref, match: GeneMatch, targets: list[str], *,
               hold_out: bool = True) -> ProgressGen[ImputeData]:
    """Normalise the inputs already read by :func:`read_inputs` for ``targets`` (shared + target reference genes
    kept, sparse when large); with ``hold_out`` targets the spatial side measures are removed from its inputs and
    from its library sizes."""
    yield Progress(2, 4, "normalising the spatial cells", "prepare")
    shared_ref, shared_sp = list(match.shared_reference), list(match.shared_spatial)
    held_sp: list[str] = []
    if hold_out:
        held = set(targets)
        keep = [i for i, g in enumerate(shared_ref) if g not in held]
        held_sp = [g for g, r in zip(shared_sp, shared_ref) if r in held]
        shared_ref = [shared_ref[i] for i in keep]
        shared_sp = [shared_sp[i] for i in keep]
    if not shared_ref:
        raise InputError("After holding out the requested genes no shared gene is left as input.",
                         "request fewer measured genes.")
    sp_pos = {g: i for i, g in enumerate(map(str, sp_names))}
    # a held-out gene's counts stay out of the library size too, as in cross-validation (fold_normalise)
    sp_norm, sp_total = normalize_log1p(sp_X, columns=[sp_pos[g] for g in shared_sp],
                                        exclude=[sp_pos[g] for g in held_sp])
    empty = int((np.asarray(abs(sp_norm).sum(axis=1)).reshape(-1) == 0).sum())
    if empty:
        import warnings

        one = empty == 1
        warnings.warn(f"{empty} of the {sp_norm.shape[0]} spatial cells {'has' if one else 'have'} no counts on the "
                      f"{len(shared_sp)} input genes, so nothing is known of {'it' if one else 'them'}: "
                      f"{'it gets' if one else 'they all get'} the imputed values of a cell without counts. Filter "
                      "such cells first (scanpy: sc.pp.filter_cells(adata, min_counts=1)).", UserWarning, stacklevel=2)
        match.notes.append(f"{empty} spatial cells without counts on the input genes (same imputed values)")
    yield Progress(3, 4, "normalising the reference", "prepare")
    ref_pos = {g: i for i, g in enumerate(map(str, ref.var_names))}
    ref_genes = list(dict.fromkeys(shared_ref + targets))
    dense = 4 * ref.n_obs * len(ref_genes) <= DENSE_REFERENCE_BYTES
    ref_norm, ref_total = normalize_log1p(ref.X, columns=[ref_pos[g] for g in ref_genes], dense=dense)
    data = ImputeData(
        spatial=sp_norm,
        reference=ref_norm,
        reference_genes=ref_genes,
        shared_genes=shared_ref,
        target_genes=targets,
        spatial_obs_names=list(map(str, spatial.obs_names)),
        spatial_coords=np.asarray(spatial.obsm["spatial"])[:, :2].astype(np.float64),
        reference_obs=ref.obs,
        constants={"spatial_target_sum": sp_total, "reference_target_sum": ref_total},
        reference_var=ref.var.loc[targets],
    )
    return data


def to_anndata(pred: np.ndarray, spatial, genes: list[str], *, var: pd.DataFrame | None = None,
               uns: dict | None = None):
    """Predictions (n_cells × genes) → AnnData keeping the spatial ``obs``, ``obsm`` and ``uns``."""
    import anndata as ad

    out = ad.AnnData(np.asarray(pred, dtype=np.float32), obs=spatial.obs.copy(), var=_output_var(genes, var),
                     obsm={k: _copy(v) for k, v in spatial.obsm.items()},
                     obsp={k: _copy(v) for k, v in spatial.obsp.items()}, uns=kept_uns(spatial))
    out.obs_names = spatial.obs_names.copy()
    out.uns[UNS_KEY] = uns or {}
    return out


def _copy(value):
    """A copy of an ``obsm`` / ``obsp`` value as it is (array, sparse matrix, DataFrame with its columns)."""
    return value.copy() if hasattr(value, "copy") else np.array(value, copy=True)


def _output_var(genes: list[str], var: pd.DataFrame | None) -> pd.DataFrame:
    var_df = pd.DataFrame(index=pd.Index(list(genes), name=None))
    if var is not None:
        var = var.loc[:, ~var.columns.duplicated()]
        var_df = var_df.join(var.reindex(var_df.index))
    for col in var_df.columns:  # h5ad / zarr cannot store mixed object columns
        if var_df[col].dtype == object:
            var_df[col] = var_df[col].astype(str)
    return var_df


def impute_steps(spatial, reference, method: str = "knn", genes: list[str] | None = None, *,
                 seed: int = 0, device: str = "auto", all_genes: bool = False,
                 n_top_genes: int = DEFAULT_N_TOP_GENES, reference_values: str = "auto", spatial_values: str = "auto",
                 out: str | Path | None = None, overwrite: bool = False, **params: Any) -> ProgressGen[Any]:
    """Generator version of :func:`impute` (yields :class:`Progress`, returns the AnnData)."""
    from ..device import resolve_device

    t0 = time.perf_counter()
    klass = get_imputer(method)
    params = validate_params(klass.method, params, seed=seed)  # before any work: names, types, ranges
    seed = int(seed)
    spatial, reference = as_inputs(spatial, reference)
    dev = resolve_device(device)
    to_disk = is_zarr_path(out)
    if to_disk:
        from ..io.results import check_zarr_support

        check_zarr_support()  # before any work
    data, match, plan = yield from planned_inputs_steps(
        spatial, reference, genes, klass.method, to_disk=to_disk, all_genes=all_genes, n_top_genes=n_top_genes,
        reference_values=reference_values, spatial_values=spatial_values)
    model = klass(seed=seed, device=dev, **params)
    uns = run_uns(model, data, match, plan, dev)
    if not to_disk:
        pred = yield from relay(model.fit_predict_steps(data), "", 2, 100, span=98)
        check_finite(pred, klass.method)
        uns.update(_model_uns(model, t0))
        return to_anndata(pred, spatial, data.target_genes, var=_gene_var(model, data), uns=uns)
    return (yield from _impute_to_zarr(model, data, spatial, uns, Path(out), overwrite, t0))


def planned_inputs_steps(spatial, reference, genes, method: str, *, to_disk: bool, **prepare_kwargs):
    """Prepare the inputs (progress 0–1 %), plan the run and refuse one that cannot fit, report the gene match
    and the plan (1–2 %): returns ``(data, match, plan)``. Shared by :func:`impute_steps` and the Dask run."""
    data, match = yield from relay(prepare_steps(spatial, reference, genes, **prepare_kwargs), "prepare", 0, 100,
                                   span=1)
    plan = plan_run(data.n_cells, len(data.target_genes), data.n_reference, len(data.shared_genes), method,
                    to_disk=to_disk)
    check_plan(plan)
    yield Progress(1, 100, match.report(), "report")
    yield Progress(2, 100, "plan: " + plan.text(), "plan")
    return data, match, plan


def run_uns(model, data: ImputeData, match: GeneMatch, plan, device: str) -> dict:
    """The provenance a result carries in ``uns[UNS_KEY]`` before the model has run (method, parameters,
    device, gene match, plan, input genes, value scale); :func:`_model_uns` adds time and model info."""
    from ..device import describe_device

    return {"method": model.method, "params": _jsonable(model.get_params()), "device": device,
            "device_detail": describe_device(device),
            "gene_match": json.dumps(match.as_dict()), "plan": plan.as_dict(),
            "input_genes": list(data.shared_genes), "values": "log1p(counts / total * median total) of reference"}


def _gene_var(model, data: ImputeData) -> pd.DataFrame:
    var = getattr(data, "reference_var", None)
    ann = model.gene_annotations()
    if ann is None:
        return var
    return ann if var is None else var.join(ann, how="outer", rsuffix="_model")


def _model_uns(model, t0: float) -> dict:
    info = model.info() if hasattr(model, "info") else None
    out = {"seconds": time.perf_counter() - t0}
    if info:
        out["model_info"] = json.dumps(info, default=str)  # a JSON string: always storable in .h5ad / zarr
    return out


def kept_uns(spatial) -> dict:
    """What a result keeps of the spatial data's ``uns`` (units, images, transforms): all but the provenance, as a
    copy (editing the result never edits the user's data)."""
    import copy

    return copy.deepcopy({k: v for k, v in spatial.uns.items() if k != UNS_KEY})


def result_writer(model, data: ImputeData, spatial, path, *, cell_chunk: int, overwrite: bool):
    """A zarr-backed AnnData at ``path`` for ``data``'s target genes over ``spatial``'s cells (obs, obsm and
    :func:`kept_uns` kept; the model's per-gene annotations in ``var``), filled block by block."""
    from ..io.results import ResultWriter

    var = _output_var(data.target_genes, _gene_var(model, data))
    obsm = dict(spatial.obsm)  # as they are (sparse, DataFrames): anndata writes them, nothing is modified
    return ResultWriter(path, spatial.obs.copy(), var, obsm=obsm, uns=kept_uns(spatial), cell_chunk=cell_chunk,
                        overwrite=overwrite)


def _impute_to_zarr(model, data: ImputeData, spatial, uns: dict, path: Path, overwrite: bool, t0: float):
    """Fit once, then predict cell chunks straight into a zarr store (peak memory: one chunk)."""
    from ..io.results import choose_cell_chunk, open_result

    yield from relay(model.fit_steps(data), "fit", 2, 100, span=28)
    chunk = choose_cell_chunk(len(data.target_genes))
    writer = result_writer(model, data, spatial, path, cell_chunk=chunk, overwrite=overwrite)
    try:
        yield from relay(model.predict_into_steps(data, lambda rows, cols, block: writer.write(rows, block, cols),
                                                  chunk), "predict", 30, 100, span=68)
        uns.update(_model_uns(model, t0))
        writer.close(uns={UNS_KEY: uns})
    except BaseException:
        writer.abort()
        raise
    yield Progress(100, 100, f"written to {path}", "write")
    result, _ = open_result(path)
    return result


def impute(spatial, reference, method: str = "knn", genes: list[str] | None = None, *, seed: int = 0,
           device: str = "auto", callback=None, **kwargs: Any):
    """Impute ``genes`` for every spatial cell (default: the reference's 2,000 most variable genes the panel lacks).

    ``spatial`` / ``reference``: AnnData (backed ones are loaded) or paths (:func:`~napari_spatial_impute.io.detect.
    read_cells` / :func:`~napari_spatial_impute.io.anndata_io.read_reference` read them). ``genes``: a list of
    names in any identifier the reference carries (symbols, Ensembl ids), or one name. Keyword options:
    ``all_genes``, ``n_top_genes``, ``reference_values`` / ``spatial_values`` ("auto" | "counts" | "log1p"),
    ``out`` (a ``.zarr`` path: written chunk by chunk; the returned AnnData's ``X`` is then a lazy dask array over
    the store, which scanpy and slicing read as needed: ``X.compute()`` loads it), ``overwrite``, and the method's
    own parameters.
    """
    return run_to_end(impute_steps(spatial, reference, method, genes, seed=seed, device=device, **kwargs), callback)


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif isinstance(v, np.generic):
            out[k] = v.item()
        else:
            out[k] = str(v)
    return out
