"""Prediction over a Dask cluster: train on the driver, predict chunks of cells as tasks.

``impute_dask(spatial, reference, scheduler="tcp://host:8786")`` fits the model in this process (on all
cells, or a ``fit_subsample``), broadcasts it to the workers, and runs ``predict`` on chunks of cells as
independent tasks. With ``out_zarr`` every task writes its rows straight into a zarr array on storage the
workers share, so no process needs the whole result; otherwise the chunks are gathered in order.

``scheduler`` is an address (``tcp://…``, e.g. from dask-jobqueue's ``SLURMCluster`` or dask-kubernetes),
an existing ``distributed.Client``, or ``"local"`` / ``"local:N"`` for a LocalCluster with N workers.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from . import UNS_KEY
from .errors import InputError
from .progress import Progress, ProgressGen, run_to_end


def _client(scheduler, timeout: str = "20s"):
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise InputError("Dask distributed is not installed.",
                         "pip install 'napari-spatial-impute[dask]'.") from err
    if isinstance(scheduler, Client):
        return scheduler, False
    text = str(scheduler)
    if text.startswith("local"):
        n = int(text.split(":", 1)[1]) if ":" in text else 2
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), True
    try:
        return Client(text, timeout=timeout), True
    except OSError as err:
        raise InputError(f"Could not connect to the Dask scheduler at {text!r}: {err}.",
                         "check the address (tcp://host:8786) and that the scheduler is running.") from err


def _predict_chunk(model, data, start: int, stop: int, out_zarr: str | None):
    """Worker task: predict rows [start, stop) and write them to the zarr array (or return them)."""
    import torch

    torch.set_num_threads(1)
    pred = model.predict(data.subset_cells(slice(start, stop)))
    if out_zarr is None:
        return pred
    import zarr

    arr = zarr.open_array(out_zarr, mode="r+")
    arr[start:stop] = pred
    return stop - start


def impute_dask_steps(spatial, reference, method: str = "knn", genes: list[str] | None = None, *,
                      scheduler: Any = "local", chunk_size: int = 50_000, out_zarr: str | None = None,
                      out: str | Path | None = None, overwrite: bool = False, all_genes: bool = False,
                      n_top_genes: int | None = None, reference_values: str = "auto",
                      spatial_values: str = "auto",
                      fit_subsample: int | None = None, seed: int = 0, device: str = "auto",
                      connect_timeout: str = "20s", **params: Any) -> ProgressGen[Any]:
    """Generator version of :func:`impute_dask` (yields progress per finished chunk).

    The inputs are read and the targets chosen as by :func:`napari_spatial_impute.impute` (``all_genes``,
    ``n_top_genes``, ``reference_values`` / ``spatial_values``), and the run is planned and refused the same way.
    ``out`` (a ``.zarr`` path): the driver writes each finished chunk into a zarr-backed AnnData there (as
    ``impute(..., out=...)``; the returned AnnData's values stay on disk); ``out_zarr``: a bare zarr array
    the workers write into directly (storage they share).
    """
    from .api.impute import _gene_var, _model_uns, planned_inputs_steps, result_writer, run_uns, to_anndata
    from .api.plan import DEFAULT_N_TOP_GENES
    from .io.results import check_target, check_zarr_support, is_zarr_path
    from .models import get_imputer
    from .models.params_spec import validate_params

    t0 = time.perf_counter()
    n_top_genes = DEFAULT_N_TOP_GENES if n_top_genes is None else n_top_genes
    if int(chunk_size) < 1:
        raise InputError(f"chunk_size {chunk_size} is not valid: each Dask task needs at least one cell.",
                         "use e.g. --chunk-size 50000 (API: chunk_size=50_000).")
    klass = get_imputer(method)
    params = validate_params(klass.method, params, seed=seed)
    if klass.method == "auto":  # only candidates whose prediction splits over cells (not SpaIM: per slide)
        params["candidates"] = _splittable_candidates(params.get("candidates"))
    if not klass.cell_independent_predict:
        raise InputError(f"Method {method!r} predicts a whole slide at once and cannot be split over cells.",
                         "run it without --dask, or use knn / stimpute.")
    to_disk = is_zarr_path(out)
    if to_disk:  # before any work: zarr support and the output path
        check_zarr_support()
        check_target(Path(out), overwrite)
    # planned as a local run: without ``out`` the driver gathers the whole result
    data, match, plan = yield from planned_inputs_steps(
        spatial, reference, genes, klass.method, to_disk=to_disk, all_genes=all_genes, n_top_genes=n_top_genes,
        reference_values=reference_values, spatial_values=spatial_values)
    fit_data = data
    if fit_subsample and fit_subsample < data.n_cells:
        rows = np.sort(np.random.default_rng(seed).choice(data.n_cells, fit_subsample, replace=False))
        fit_data = data.subset_cells(rows)
    yield Progress(3, 100, "fitting on the driver", "fit")
    model = klass(seed=seed, device="cpu" if device == "auto" else device, **params)
    run_to_end(model.fit_steps(fit_data))
    if not model.cell_independent_predict:  # e.g. "auto" that chose a per-slide method (SpaIM)
        raise InputError(f"The fitted {method!r} model uses a per-slide method and predicts the whole slide at "
                         "once: it cannot be split over cells.",
                         "run it without --dask (results can still go to --out x.zarr), or use --method knn.")
    writer = None
    client, owned = _client(scheduler, connect_timeout)
    try:
        if out_zarr is not None:
            import zarr

            zarr.open_array(out_zarr, mode="w-", shape=(data.n_cells, len(data.target_genes)),
                            chunks=(chunk_size, len(data.target_genes)), dtype="f4")
        if to_disk:
            writer = result_writer(model, data, spatial, out, cell_chunk=chunk_size, overwrite=overwrite)
        model_f = client.scatter(model, broadcast=True, hash=False)
        data_f = client.scatter(data, broadcast=True, hash=False)
        bounds = [(s, min(data.n_cells, s + chunk_size)) for s in range(0, data.n_cells, chunk_size)]
        futures = [client.submit(_predict_chunk, model_f, data_f, s, e, out_zarr, pure=False) for s, e in bounds]
        from distributed import as_completed

        done = 0
        results: dict[int, Any] = {}
        stored = zarr.open_array(out_zarr, mode="r") if writer is not None and out_zarr is not None else None
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures):
            i = index[fut.key]
            value = fut.result()
            if writer is not None:  # written as it arrives: the driver never holds the whole result
                s, e = bounds[i]
                block = value if stored is None else stored[s:e]
                writer.write(slice(s, e), block)
            else:
                results[i] = value
            done += 1
            yield Progress(3 + round(95 * done / len(futures)), 100, f"chunk {done}/{len(futures)}", "predict")
        n_workers = len(client.scheduler_info().get("workers", {}))
        uns = {**run_uns(model, data, match, plan, "dask"), "n_workers": n_workers, "chunks": len(bounds),
               "out_zarr": str(out_zarr or ""), **_model_uns(model, t0)}
        if writer is not None:
            writer.close(uns={UNS_KEY: uns})
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if owned:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
    if writer is not None:
        from .io.results import open_result

        yield Progress(100, 100, f"written to {out}", "write")
        return open_result(out)[0]
    if out_zarr is None:
        pred = np.vstack([results[i] for i in range(len(bounds))])
    else:
        import zarr

        pred = zarr.open_array(out_zarr, mode="r")[:]
    return to_anndata(pred, spatial, data.target_genes, var=_gene_var(model, data), uns=uns)


def _splittable_candidates(candidates: str | None) -> str:
    """auto's candidates under Dask: those named (default: every one) whose prediction splits over cells; a
    named per-slide one is refused before any work."""
    from .models import get_imputer
    from .models.auto import DEFAULT_CANDIDATES

    names = [c.strip().lower() for c in (candidates or DEFAULT_CANDIDATES).split(",") if c.strip()]
    whole = [c for c in names if not get_imputer(c).cell_independent_predict]
    if candidates is not None and whole:
        raise InputError(f"auto's candidates {whole} predict a whole slide at once and cannot be split over cells.",
                         "leave them out of candidates=, or run without --dask.")
    return ",".join(c for c in names if c not in whole)


def impute_dask(spatial, reference, method: str = "knn", genes: list[str] | None = None, *, scheduler: Any = "local",
                callback=None, **kwargs: Any):
    """Impute on a Dask cluster; returns the same AnnData as :func:`napari_spatial_impute.impute`."""
    return run_to_end(impute_dask_steps(spatial, reference, method, genes, scheduler=scheduler, **kwargs), callback)
