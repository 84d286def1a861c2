"""The Impute dock's warm-up worker job when it opens: the imports and first calls a run needs, off the GUI thread.

Qt-free like :mod:`._steps`: they only import, read and compute; the widget touches layers with what they return.
"""

from __future__ import annotations


def warm_up() -> list[str]:
    """Import everything a kNN run imports, then return the devices; the dock's first worker runs it.

    A first import holds the GIL for long stretches even in a worker thread (loading libtorch's shared libraries
    is ~0.5 s in one piece; compiling bytecode on a first run after an install or update adds more), so a run
    that imported torch, matplotlib and the method modules for the first time stalled the GUI thread 0.4–0.6 s
    at a time. They are imported here, when the dock opens (a tiny synthetic kNN run also loads what torch
    imports lazily on its first operations); a run started afterwards imports nothing new."""
    import numpy as np

    from ..device import available_devices
    from ..errors import InputError

    devices = available_devices()  # imports torch
    try:
        import anndata as ad
        import pandas as pd

        from ..api import impute_steps
        from ..layers.paint import colormap_lut, prepare_mask
        from ..layers.results import SampleResult
        from ..progress import run_to_end

        colormap_lut("magma")  # matplotlib
        rng = np.random.default_rng(0)
        genes = [f"g{i}" for i in range(8)]
        spatial = ad.AnnData(rng.poisson(2.0, (30, 6)).astype(np.float32), var=pd.DataFrame(index=genes[:6]))
        spatial.obsm["spatial"] = rng.random((30, 2)) * 100
        reference = ad.AnnData(rng.poisson(2.0, (40, 8)).astype(np.float32), var=pd.DataFrame(index=genes))
        result = run_to_end(impute_steps(spatial, reference, "knn", genes[6:], device="cpu", k=5))
        ids = np.asarray(spatial.obs_names, dtype=str)
        SampleResult(result, ids).values(genes[6])
        prepare_mask(np.arange(30, dtype=np.int32).reshape(5, 6) + 1, np.arange(1, 31), ids, ids)
    except (InputError, ImportError, ValueError, RuntimeError):  # only a warm-up: a run reports real errors
        pass
    return devices
