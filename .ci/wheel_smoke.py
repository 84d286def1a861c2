"""Checks run by .ci/wheel_job.sh inside venvs that hold only the installed wheel (not the source tree).

python wheel_smoke.py core           # the public API imports and works with napari / Qt / fair-esm absent
python wheel_smoke.py check-outputs DIR   # the CLI's outputs of the wheel job are sane
python wheel_smoke.py widget         # [all]: napari Viewer(show=False) + the "Impute genes" dock widget
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ABSENT_IN_CORE = ("napari", "magicgui", "qtpy", "PyQt6", "PyQt5", "PySide6", "npe2", "vispy", "torch_geometric", "esm")


def core() -> None:
    import napari_spatial_impute as nsi

    where = Path(nsi.__file__).resolve()
    assert "site-packages" in where.parts, f"not the installed wheel: {where}"
    present = [m for m in ABSENT_IN_CORE if importlib.util.find_spec(m) is not None]
    assert not present, f"the core install pulled in {present}"
    for name in nsi.__all__:  # every public name resolves (each lazy import works without the GUI stack)
        getattr(nsi, name)
    from napari_spatial_impute import cli  # noqa: F401

    spatial, reference = nsi.load_osmfish_sample()
    cv = nsi.cross_validate(spatial, reference, method="knn", folds=3)
    assert cv.metrics["pcc_median"] > 0.1, cv.metrics
    loaded = [m for m in sys.modules if m.split(".")[0] in ABSENT_IN_CORE]
    assert not loaded, f"napari/Qt modules imported by the core: {loaded}"

    from napari_spatial_impute.embeddings.esm2 import load_esm_checkpoint
    from napari_spatial_impute.errors import InputError

    try:
        load_esm_checkpoint("esm2_t6_8M_UR50D.pt")
    except InputError as exc:
        assert "napari-spatial-impute[esm]" in str(exc), exc
    else:
        raise AssertionError("load_esm_checkpoint without fair-esm did not raise InputError")
    print(f"core OK: {nsi.__version__} from {where.parent}; {len(nsi.__all__)} public names; "
          f"kNN 3-fold median PCC {cv.metrics['pcc_median']:.3f}; no napari/Qt/fair-esm")


def check_outputs(folder: str) -> None:
    import anndata as ad

    out = Path(folder)
    metrics = json.loads((out / "osmfish_cv.json").read_text())
    assert metrics["n_genes"] == 33 and metrics["pcc_median"] > 0.1, metrics
    msg = f"CLI OK: osmFISH 3-fold kNN median PCC {metrics['pcc_median']:.3f}"
    pred = out / "xenium_imputed.h5ad"
    if pred.exists():
        a = ad.read_h5ad(pred)
        assert a.n_obs > 1000 and a.n_vars > 10 and "spatial" in a.obsm, a
        msg += f"; Xenium sample imputed: {a.n_obs} cells x {a.n_vars} genes"
    print(msg)


def widget() -> None:
    import napari

    viewer = napari.Viewer(show=False)
    try:
        viewer.open_sample("napari-spatial-impute", "osmfish_allenssp")
        dock, w = viewer.window.add_plugin_dock_widget("napari-spatial-impute", "Impute genes")
        assert dock is not None and w is not None
        n_layers = len(viewer.layers)
        assert n_layers >= 1, "the sample opened no layer"
        # as napari's own event loop does on quit (aboutToQuit -> wait_for_workers_to_quit): let the dock's
        # background reads (paired reference, device list) finish and deliver before the viewer goes
        settle()
        devices = list(w.device.choices) if hasattr(w, "device") else "?"
        print(f"widget OK: napari {napari.__version__}, {type(w).__name__} docked, sample gave {n_layers} "
              f"layer(s), devices {devices}")
    finally:
        viewer.close()
        settle()


def settle(timeout_s: float = 120.0) -> None:
    """Run the event loop until no worker runs and none is about to start: the dock starts some of its workers
    from queued GUI steps (its warm-up runs after the dock's own steps), so one wait is not enough. Exiting
    while a worker still runs deletes its Qt signals under it (PyQt aborts the process)."""
    import time

    from napari.qt import get_qapp
    from napari.qt.threading import WorkerBase
    from qtpy.QtCore import QThreadPool

    app, pool = get_qapp(), QThreadPool.globalInstance()
    deadline, quiet = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline and quiet < 5:  # five idle rounds in a row (≈ 0.5 s of queued steps)
        app.processEvents()
        pool.waitForDone(1000)
        app.processEvents()
        time.sleep(0.1)
        quiet = quiet + 1 if pool.activeThreadCount() == 0 and not WorkerBase._worker_set else 0


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "core":
        core()
    elif what == "check-outputs":
        check_outputs(sys.argv[2])
    elif what == "widget":
        widget()
    else:
        raise SystemExit(f"unknown check {what!r}")
