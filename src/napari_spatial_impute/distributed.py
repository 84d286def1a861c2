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
from typing import Any

import numpy as np

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
                      fit_subsample: int | None = None, seed: int = 0, device: str = "auto",
                      connect_timeout: str = "20s", **params: Any) -> ProgressGen[Any]:
    """Generator version of :func:`impute_dask` (yields progress per finished chunk)."""
    from .api import prepare, to_anndata
    from .models import get_method

    t0 = time.perf_counter()
    from .models.params_spec import validate_params

    klass = get_method(method)
    params = validate_params(klass.method, params, seed=seed)
    if not klass.cell_independent_predict:
        raise InputError(f"Method {method!r} predicts a whole slide at once and cannot be split over cells.",
                         "run it without --dask, or use knn / stimpute.")
    data, match = prepare(spatial, reference, genes)
    fit_data = data
    if fit_subsample and fit_subsample < data.n_cells:
        rows = np.sort(np.random.default_rng(seed).choice(data.n_cells, fit_subsample, replace=False))
        fit_data = data.subset_cells(rows)
    yield Progress(0, 100, "fitting on the driver", "fit")
    model = klass(seed=seed, device="cpu" if device == "auto" else device, **params)
    run_to_end(model.fit_steps(fit_data))
    if not model.cell_independent_predict:  # e.g. "auto" that chose a per-slide method (SpaIM)
        raise InputError(f"The fitted {method!r} model uses a per-slide method and predicts the whole slide at "
                         "once: it cannot be split over cells.",
                         "run it without --dask (results can still go to --out x.zarr), or use --method knn.")
    client, owned = _client(scheduler, connect_timeout)
    try:
        if out_zarr is not None:
            import zarr

            zarr.open_array(out_zarr, mode="w-", shape=(data.n_cells, len(data.target_genes)),
                            chunks=(chunk_size, len(data.target_genes)), dtype="f4")
        model_f = client.scatter(model, broadcast=True, hash=False)
        data_f = client.scatter(data, broadcast=True, hash=False)
        bounds = [(s, min(data.n_cells, s + chunk_size)) for s in range(0, data.n_cells, chunk_size)]
        futures = [client.submit(_predict_chunk, model_f, data_f, s, e, out_zarr, pure=False) for s, e in bounds]
        from distributed import as_completed

        done = 0
        results: dict[int, Any] = {}
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures):
            results[index[fut.key]] = fut.result()
            done += 1
            yield Progress(done, len(futures), f"chunk {done}/{len(futures)}", "predict")
        n_workers = len(client.scheduler_info().get("workers", {}))
    finally:
        if owned:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
    if out_zarr is None:
        pred = np.vstack([results[i] for i in range(len(bounds))])
    else:
        import zarr

        pred = zarr.open_array(out_zarr, mode="r")[:]
    uns = {"method": klass.method, "params": {k: str(v) for k, v in model.get_params().items()},
           "device": "dask", "n_workers": n_workers, "chunks": len(bounds), "seconds": time.perf_counter() - t0,
           "gene_match": match.as_dict(), "out_zarr": out_zarr}
    return to_anndata(pred, spatial, data.target_genes, var=model.gene_annotations(), uns=uns)


def impute_dask(spatial, reference, method: str = "knn", genes: list[str] | None = None, *, scheduler: Any = "local",
                callback=None, **kwargs: Any):
    """Impute on a Dask cluster; returns the same AnnData as :func:`napari_spatial_impute.impute`."""
    return run_to_end(impute_dask_steps(spatial, reference, method, genes, scheduler=scheduler, **kwargs), callback)
