"""Gene switching on a sample's segmentation and cells at 100k / 1 M cells, and the main-thread stall of a run.

Run under a display:  ``xvfb-run -a -s "-screen 0 1600x1000x24" python benchmarks/bench_napari_scale.py``
(``--switch`` / ``--stall`` for one part). Switch: :class:`SampleView.show` on a synthetic 1 µm/px label mask
(8×8 px per cell) and on a cells Points layer; "our CPU" = process time of computing the values and the colours /
value image and handing them to napari, "total" = wall time including napari's redraw (software OpenGL here).
Stall: a 10 ms QTimer heartbeat during a whole Impute-widget run on 18,301 real Xenium cells (150-gene panel,
synthetic label mask from the centroids), from choosing the reference (read from its .h5ad in the worker) to the
result attached and painted and 5 gene switches; docking the widget (which makes the hidden value-image layer and
starts the warm-up worker importing a run's modules) is reported apart, up to the run's start. ``--stall`` runs two
sessions in child processes: the first after an install or update (fresh bytecode) and the next one (cached).
``--trace`` names what ran in the GUI thread during each gap > 50 ms, and the modules other threads imported then.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def fake_sample(n: int, n_genes: int = 20, seed: int = 0):
    """n cells on a square grid (8 µm apart, a 6×6 px label each at 1 µm/px) and a fake result of n_genes."""
    from napari_spatial_impute.layers.results import SampleResult

    side = int(np.ceil(np.sqrt(n)))
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1, dtype=np.int32)
    grid = np.zeros(side * side, np.int32)
    grid[:n] = ids
    grid = grid.reshape(side, side)
    cell = np.zeros((8, 8), bool)
    cell[1:7, 1:7] = True
    mask = np.kron(grid, cell).astype(np.int32)  # label id per pixel
    r, c = np.divmod(np.arange(n), side)
    xy = np.c_[c * 8 + 3.5, r * 8 + 3.5]
    names = [f"c{i}" for i in range(n)]
    spatial = ad.AnnData(rng.poisson(1.0, (n, 5)).astype(np.float32), obs=pd.DataFrame(index=names))
    spatial.obsm["spatial"] = xy
    res = ad.AnnData(rng.gamma(1.0, size=(n, n_genes)).astype(np.float32), obs=pd.DataFrame(index=names),
                     var=pd.DataFrame(index=[f"G{i}" for i in range(n_genes)]))
    res.obsm["spatial"] = xy
    return spatial, mask, ids, np.asarray(names, dtype=object), SampleResult(res, names, xy)


def bench_switch(sizes=(100_000, 1_000_000)) -> list[dict]:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_spatial_impute.layers import cells_points_layer
    from napari_spatial_impute.layers.paint import prepare_mask
    from napari_spatial_impute.layers.sample_view import SampleView

    rows = []
    viewer = napari.Viewer(show=True)  # hidden (napari 0.9), a screenshot draws nothing: no redraw to time
    viewer.window.resize(1200, 900)
    app = QApplication.instance()
    for n in sizes:
        spatial, mask, ids, names, result = fake_sample(n)
        for view_kind in ("labels", "points"):
            viewer.layers.clear()
            data, kw, _ = cells_points_layer(spatial, "cells")
            cells = viewer.add_points(data, **kw)
            masks = []
            t0 = time.perf_counter()
            if view_kind == "labels":
                viewer.add_labels(mask, name="cells mask", metadata={"label_ids": ids, "label_obs": names})
                masks = [prepare_mask(mask, ids, names, names, name="cells mask")]
                cells.visible = False
            t_prep = time.perf_counter() - t0
            view = SampleView(viewer, cells, masks)
            view.attach(result)
            view.show("imputed:G0")
            viewer.reset_view()
            viewer.screenshot(canvas_only=True)
            cpu, total = [], []
            for g in ("G1", "G2", "G3", "G4"):
                t0 = time.perf_counter()
                view.show(f"imputed:{g}")
                cpu.append(view.timings["values_s"] + view.timings["apply_s"])
                viewer.screenshot(canvas_only=True)  # forces the redraw
                app.processEvents()
                total.append(time.perf_counter() - t0)
            row = {"cells": n, "view": view_kind, "mask_px": int(mask.size) if masks else 0,
                   "prepare_mask_s": round(t_prep, 3), "switch_cpu_s": round(float(np.median(cpu)), 3),
                   "switch_total_s": round(float(np.median(total)), 3)}
            rows.append(row)
            print(row, flush=True)
    viewer.close()
    return rows


def bench_switch_model(sizes=(100_000, 1_000_000)) -> list[dict]:
    """Our CPU alone: the same switch on a napari ViewerModel (no canvas, so no vispy texture / vertex work)."""
    from napari.components import ViewerModel

    from napari_spatial_impute.layers import cells_points_layer
    from napari_spatial_impute.layers.paint import prepare_mask
    from napari_spatial_impute.layers.sample_view import SampleView

    rows = []
    for n in sizes:
        spatial, mask, ids, names, result = fake_sample(n)
        for view_kind in ("labels", "points"):
            viewer = ViewerModel()
            data, kw, _ = cells_points_layer(spatial, "cells")
            cells = viewer.add_points(data, **kw)
            masks = [prepare_mask(mask, ids, names, names, name="m")] if view_kind == "labels" else []
            view = SampleView(viewer, cells, masks)
            view.attach(result)
            view.show("imputed:G0")
            cpu = []
            for g in ("G1", "G2", "G3", "G4"):
                t0 = time.process_time()
                view.show(f"imputed:{g}")
                cpu.append(time.process_time() - t0)
            row = {"cells": n, "view": view_kind, "paint_px": int(masks[0].mask.size) if masks else 0,
                   "switch_cpu_model_s": round(float(np.median(cpu)), 3)}
            rows.append(row)
            print(row, flush=True)
    return rows


def stall_sample(n_cells: int = 18_301):
    """18,301 real Xenium cells on the bundled sample's 150-gene panel, with a label mask from their centroids."""
    from scipy.spatial import cKDTree

    from napari_spatial_impute.datasets import load_xenium_sample
    from napari_spatial_impute.io.detect import read_sample
    from napari_spatial_impute.io.spatial_sample import SampleLabels, SpatialSample

    full = read_sample(Path(__file__).resolve().parents[2] / "shared/datasets/xenium_mouse_brain_ctx_hp").adata
    panel = list(load_xenium_sample()[0].var_names)
    sub = full[:n_cells, panel].copy()
    xy = np.asarray(sub.obsm["spatial"], np.float64)
    lo = np.floor(xy.min(0)) - 10
    px = 2.0  # µm per pixel
    w, h = (np.ceil((xy.max(0) - lo) / px) + 10).astype(int)
    yy, xx = np.mgrid[0:h, 0:w]
    d, nearest = cKDTree(xy).query(np.c_[xx.ravel() * px + lo[0], yy.ravel() * px + lo[1]], k=1)
    mask = np.where(d < 7.0, nearest + 1, 0).astype(np.int32).reshape(h, w)
    affine = np.array([[px, 0, lo[0]], [0, px, lo[1]], [0, 0, 1]])
    labels = SampleLabels("cells", mask, affine, {i + 1: str(n) for i, n in enumerate(sub.obs_names)})
    return SpatialSample(sub, labels=[labels], platform="xenium", path="xenium 18k")


class StackSampler:
    """Samples the main thread's Python stack every ``every`` s in a daemon thread; :meth:`report` names what
    ran in the GUI thread during each heartbeat gap above ``min_gap`` s (the cause of a stall)."""

    def __init__(self, every: float = 0.004):
        import threading

        self.every, self.samples, self.main = every, [], threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        import threading

        self.imports = []  # (time, thread, module) of every first import: what a worker compiles / loads

        def hook(event, args):
            if event == "import":
                self.imports.append((time.perf_counter(), threading.current_thread().name, str(args[0])))

        sys.addaudithook(hook)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()

    def _run(self):
        import traceback

        while not self._stop.wait(self.every):
            frame = sys._current_frames().get(self.main)
            if frame is not None:
                stack = traceback.extract_stack(frame)
                self.samples.append((time.perf_counter(), [f"{Path(f.filename).name}:{f.lineno} {f.name}"
                                                           for f in stack[-40:]]))

    def report(self, gaps: list[tuple[float, float]], min_gap: float = 0.05, depth: int = 14) -> None:
        from collections import Counter

        for start, end in gaps:
            if end - start < min_gap:
                continue
            inside = [s for t, s in self.samples if start <= t <= end]
            print(f"--- gap {1000 * (end - start):.0f} ms, {len(inside)} samples")
            for stack, n in Counter(" | ".join(s[-depth:][::-1]) for s in inside).most_common(3):
                print(f"  {n:3d}× {stack}")
            near = [(t, th, m) for t, th, m in self.imports if start - 0.02 <= t <= end]
            if near:
                tops = Counter((th, m.split(".")[0]) for _, th, m in near)
                print("  imports: " + ", ".join(f"{m} ({th}) ×{n}" for (th, m), n in tops.most_common(8)))


def bench_stall(trace: bool = False, show: bool = False, start_after: float | None = None) -> dict:
    """One session in this process. ``start_after``: seconds after docking to start the run (default: once the
    dock's warm-up worker is done, as a user choosing a reference file would; the warm-up is then reported)."""
    import tempfile

    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_spatial_impute.datasets import XENIUM_DIR, sample_path
    from napari_spatial_impute.layers import sample_to_layers

    # a new user's settings (no remembered reference read when the dock opens)
    os.environ["NAPARI_SPATIAL_IMPUTE_CONFIG"] = tempfile.mkdtemp(prefix="nsi_config_")
    sample = stall_sample()
    viewer = napari.Viewer(show=show)  # show: the canvas repaints too (software OpenGL here: 0.1–0.3 s each)
    viewer.window.resize(1400, 900)
    app = QApplication.instance()
    for data, kw, kind in sample_to_layers(sample):
        getattr(viewer, f"add_{kind}")(data, **kw)
    gaps, spans, last = [], [], [time.perf_counter()]
    sampler = StackSampler() if trace else None

    def beat():
        now = time.perf_counter()
        gaps.append(now - last[0])
        spans.append((last[0], now))
        last[0] = now

    def spin(seconds: float) -> None:
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            app.processEvents()
            time.sleep(0.002)

    timer = QTimer()
    timer.timeout.connect(beat)
    timer.start(10)
    if sampler is not None:
        sampler.start()
    spin(0.1)
    t_dock = time.perf_counter()  # docking the widget: it makes the (hidden) value-image layer of the mask
    _, w = viewer.window.add_plugin_dock_widget("napari-spatial-impute", "Impute genes")
    spin(1.0 if start_after is None else start_after)
    while start_after is None and not w.warmed_up and time.perf_counter() - t_dock < 300:
        spin(0.002)  # the dock's worker: devices, and the first imports of a run (torch, matplotlib, kNN)
    warm_up_done = w.warmed_up
    t_start = time.perf_counter()  # the run: choose the reference … result shown, genes switched
    w.reference_file.value = str(sample_path("reference.h5ad", XENIUM_DIR))
    while w.picker.list.count() == 0 and time.perf_counter() - t_start < 60:
        spin(0.002)
    w.picker.mode.value = "all genes the panel lacks"
    w.method.value = "knn"
    w.run()
    while (w._worker is not None or w.view is None) and time.perf_counter() - t_start < 600:
        spin(0.002)
    spin(0.5)
    for gene in w.result.var_names[:5]:  # switching genes is part of the session (a user's clicks)
        w.colour.show(f"imputed:{gene}")
        spin(0.3)
    timer.stop()
    if sampler is not None:
        sampler.stop()
        sampler.report(spans[1:])
    ends = np.asarray([e for _, e in spans[1:]])
    g = np.asarray(gaps[1:]) - 0.010
    run, dock = g[ends > t_start], g[(ends > t_dock) & (ends <= t_start)]
    row = {"cells": sample.adata.n_obs, "genes": int(w.result.n_vars), "mask_px": int(sample.labels[0].data.size),
           "run_s": round(time.perf_counter() - t_start, 1), "beats": len(run),
           "max_stall_ms": round(1000 * float(run.max()), 1),
           "p99_stall_ms": round(1000 * float(np.percentile(run, 99)), 1),
           "dock_max_stall_ms": round(1000 * float(dock.max(initial=0.0)), 1),
           "dock_to_run_s": round(t_start - t_dock, 1), "warm_up_done_at_start": warm_up_done,
           "load_avg": round(os.getloadavg()[0], 1)}
    print(json.dumps(row), flush=True)
    viewer.close()
    return row


def stall_sessions(args) -> list[dict]:
    """The first session after an install or update (fresh bytecode: every module compiled while it is first
    imported, in a child process with an empty ``PYTHONPYCACHEPREFIX``), then the next one (bytecode cached)."""
    import subprocess
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory(prefix="fresh_pyc_") as cache:
        for label in ("first (fresh bytecode)", "next (bytecode cached)"):
            cmd = [sys.executable, __file__, "--stall-once"] + (["--trace"] if args.trace else []) + \
                (["--show"] if args.show else []) + \
                (["--start-after", str(args.start_after)] if args.start_after is not None else [])
            out = subprocess.run(cmd, env={**os.environ, "PYTHONPYCACHEPREFIX": cache}, capture_output=True,
                                 text=True, check=True).stdout
            print(out, end="", flush=True)
            row = json.loads(out.strip().splitlines()[-1])
            rows.append({"session": label, **row})
    print("| session | dock → run (s) | dock max stall (ms) | run (s) | max stall (ms) | p99 stall (ms) | load |\n"
          "|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['session']} | {r['dock_to_run_s']} | {r['dock_max_stall_ms']:.0f} | {r['run_s']} | "
              f"{r['max_stall_ms']:.0f} | {r['p99_stall_ms']:.0f} | {r['load_avg']} |")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--switch", action="store_true")
    ap.add_argument("--stall", action="store_true", help="first (fresh bytecode) and next session, in children")
    ap.add_argument("--stall-once", action="store_true", help="one session in this process")
    ap.add_argument("--trace", action="store_true", help="with --stall: name what ran during each gap > 50 ms")
    ap.add_argument("--show", action="store_true", help="with --stall: a shown window (repaints counted)")
    ap.add_argument("--start-after", type=float, default=None,
                    help="with --stall: start the run this many s after docking (default: after the warm-up)")
    args = ap.parse_args(argv)
    both = not (args.switch or args.stall or args.stall_once)
    OUT.mkdir(exist_ok=True)
    if args.switch or both:
        model = bench_switch_model()
        rows = bench_switch()
        for r in rows:
            r.update(next(m for m in model if m["cells"] == r["cells"] and m["view"] == r["view"]))
        (OUT / "napari_scale.json").write_text(json.dumps(rows, indent=2))
        print("| cells | view | our CPU, no canvas (s) | CPU in a Qt viewer (s) | total incl. redraw (s) |\n"
              "|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['cells']:,} | {r['view']} | {r['switch_cpu_model_s']:.3f} | {r['switch_cpu_s']:.3f} | "
                  f"{r['switch_total_s']:.2f} |")
    if args.stall_once:
        bench_stall(args.trace, args.show, args.start_after)
    elif args.stall or both:
        (OUT / "napari_stall.json").write_text(json.dumps(stall_sessions(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
