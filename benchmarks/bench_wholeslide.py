"""Whole-slide H&E prediction time, tissue tiles, no spots, on three images (``--image``):

* ``c6``: her2st C6 (9288 × 9907 px JPEG, 16 % tissue);
* ``full10k``: 10240 × 10240 px JPEG fully covered with tissue (C6's densest 2048 px window, mirror-tiled);
* ``tiff40k``: 40960 × 40960 px pyramidal tiled TIFF (glass with C6 placed inside; zlib, 512 px tiles, 4
  levels, pixel size in the resolution tags; 4.8 GB as RGB), read region by region — never whole.

The synthetic images are written once to ``benchmarks/out``. An STco model with the package defaults is
trained on her2st C2–C5 and cached as a bundle in ``benchmarks/out/wholeslide_model`` (``--retrain`` to
rebuild; the training features are cached too). The prediction runs in a fresh subprocess (clean peak RSS) and
is timed end to end: decode / region reads + tissue mask + tile grid + stain estimate + patch cutting + Lite0
features + heads + retrieval + fallbacks. Bundle loading is timed apart.

    .venv/bin/python benchmarks/bench_wholeslide.py --image full10k --threads 2 [--tta 0 1 4]

Prints a markdown table and writes ``benchmarks/out/wholeslide.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "her2st_subset"
TRAIN = {"C2": "C2_5714_HE_BT_C2.jpg", "C3": "C3_5714_HE_BT_D1.jpg", "C4": "C4_5714_HE_BT_D2.jpg",
         "C5": "C5_5714_HE_BT_E1.jpg"}
TEST_IMAGE = DATA / "ST-imgs" / "C6_5714_HE_BT_E2.jpg"
MODEL_DIR = ROOT / "benchmarks" / "out" / "wholeslide_model"


def _stale(folder: Path, context_cut: str | None) -> bool:
    """No bundle in ``folder``, or one cut otherwise than asked (the package default when ``context_cut`` is
    None: a bundle of an earlier default is trained again, not timed as today's)."""
    from napari_spatial_impute.models.bundle import read_config
    from napari_spatial_impute.models.stco.defaults import DEFAULTS
    from napari_spatial_impute.models.stco.state import bundle_params

    if not (folder / "config.json").is_file():
        return True
    return bundle_params(read_config(folder))["context_cut"] != (context_cut or DEFAULTS["context_cut"])


def model_dir(context_cut: str | None) -> Path:
    """The bundle of the package defaults, or of the defaults with another ``context_cut`` (its own folder)."""
    return MODEL_DIR if context_cut is None else MODEL_DIR.with_name(f"{MODEL_DIR.name}_{context_cut}")


IMAGES = {"c6": TEST_IMAGE, "full10k": ROOT / "benchmarks" / "out" / "c6_full_10k.jpg",
          "tiff40k": ROOT / "benchmarks" / "out" / "c6_on_glass_40k.tif"}


def make_full_10k(path: Path, side: int = 10240, window: int = 2048) -> None:
    """A fully covered slide: C6's most tissue-dense window, mirror-tiled (no seams) to side × side."""
    import numpy as np
    from PIL import Image

    from napari_spatial_impute.models.stco.tiling import tissue_mask

    Image.MAX_IMAGE_PIXELS = None
    img = np.asarray(Image.open(TEST_IMAGE).convert("RGB"))
    mask, scale = tissue_mask(img[::8, ::8], 8.0)
    w = int(window / scale)
    best, where = -1.0, (0, 0)
    for y in range(0, mask.shape[0] - w, max(1, w // 8)):
        for x in range(0, mask.shape[1] - w, max(1, w // 8)):
            f = mask[y:y + w, x:x + w].mean()
            if f > best:
                best, where = f, (int(y * scale), int(x * scale))
    tile = img[where[0]:where[0] + window, where[1]:where[1] + window]
    block = np.concatenate([np.concatenate([tile, tile[:, ::-1]], 1),
                            np.concatenate([tile[::-1], tile[::-1, ::-1]], 1)], 0)
    reps = -(-side // block.shape[0])
    full = np.tile(block, (reps, reps, 1))[:side, :side]
    Image.fromarray(full).save(path, quality=90)
    print(f"wrote {path.name}: window tissue fraction {best:.2f}", flush=True)


def make_tiff_40k(path: Path, side: int = 40960, tile: int = 512, at: tuple[int, int] = (15000, 12000)) -> None:
    """A 40960 × 40960 px pyramidal tiled TIFF: glass with C6 (9288 × 9907 px) placed at (x, y) = ``at``, written
    tile by tile (level 0 is never in memory), 4 levels, zlib, the pixel size in the resolution tags."""
    import numpy as np
    import tifffile
    from PIL import Image

    from napari_spatial_impute.io import read_st_section

    Image.MAX_IMAGE_PIXELS = None
    src = Image.open(TEST_IMAGE).convert("RGB")
    px = read_st_section(DATA / "ST-cnts/C6.tsv.gz", DATA / "ST-spotfiles/C6_selection.tsv",
                         TEST_IMAGE).uns["histology"]["pixel_size_um"]
    w0, h0 = src.size

    def tiles(base: np.ndarray, n: int, ox: int, oy: int):
        h, w = base.shape[:2]
        for y in range(0, n, tile):
            for x in range(0, n, tile):
                out = np.full((tile, tile, 3), 245, np.uint8)
                a, b = max(y, oy), min(y + tile, oy + h)
                c, d = max(x, ox), min(x + tile, ox + w)
                if a < b and c < d:
                    out[a - y:b - y, c - x:d - x] = base[a - oy:b - oy, c - ox:d - ox]
                yield out

    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for level in range(4):
            f = 2 ** level
            base = np.asarray(src if f == 1 else src.resize((w0 // f, h0 // f), Image.BOX))
            n = side // f
            kw = dict(subifds=3, resolution=(1e4 / px, 1e4 / px), resolutionunit="CENTIMETER") if level == 0 else \
                dict(subfiletype=1)
            tif.write(tiles(base, n, at[0] // f, at[1] // f), shape=(n, n, 3), dtype=np.uint8, tile=(tile, tile),
                      compression="zlib", compressionargs={"level": 1}, photometric="rgb", **kw)
    print(f"wrote {path.name}: {side} × {side} px, {path.stat().st_size / 1e9:.2f} GB", flush=True)


def train_model(epochs: int | None, n_views: int | None, seed: int = 0, context_cut: str | None = None) -> float:
    """Train the STco model on C2–C5 and save it to :func:`model_dir`; returns the training seconds."""
    from napari_spatial_impute import train_histology as train
    from napari_spatial_impute.io import read_st_section

    secs = [read_st_section(DATA / f"ST-cnts/{s}.tsv.gz", DATA / f"ST-spotfiles/{s}_selection.tsv",
                            DATA / "ST-imgs" / img) for s, img in TRAIN.items()]
    t0 = time.perf_counter()
    given = (("epochs", epochs), ("n_views", n_views), ("context_cut", context_cut))
    model = train(secs, seed=seed, device="cpu", **{k: v for k, v in given if v is not None})
    seconds = time.perf_counter() - t0
    model.save(model_dir(context_cut), overwrite=True)
    return seconds


def worker(tta: int | None, tile_um: float, threads: int, image: Path = TEST_IMAGE,
           context_cut: str | None = None) -> dict:
    """Load the bundle, predict the whole slide; time, CPU time, peak RSS, stage times."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from napari_spatial_impute import load_model
    from napari_spatial_impute.models.stco.pixels import image_size
    from napari_spatial_impute.models.stco.slide import TiffSlide
    from napari_spatial_impute.models.stco.wholeslide import TILE_TTA

    t0 = time.perf_counter()
    model = load_model(model_dir(context_cut), device="cpu")
    t_load = time.perf_counter() - t0
    rss_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    stages: dict[str, float] = {}
    t1 = time.perf_counter()
    c1 = time.process_time()

    def on_progress(p) -> None:
        if p.message == "image decoded" and "decode" not in stages:
            stages["decode"] = time.perf_counter() - t1
        elif p.message.startswith("tile batch 1/") and "first_batch" not in stages:
            stages["first_batch"] = time.perf_counter() - t1

    tiff = image.suffix == ".tif"  # the TIFF states its pixel size; a JPEG does not
    res = model.predict_image(image, pixel_size_um=None if tiff else model.train_pixel_size_um,
                              callback=on_progress, tile_um=tile_um, tta=tta)
    wall = time.perf_counter() - t1
    cpu = time.process_time() - c1
    width, height = (TiffSlide(image).width, TiffSlide(image).height) if tiff else image_size(image)
    grid = res["grid"]
    return {"image": image.name, "pixel_size_um": res["pixel_size_um"], "predictor": res["weights"],
            "width": width, "height": height, "tile_um": tile_um,
            "tile_px": float(grid.step), "grid_shape": list(grid.shape), "n_tiles": int(len(res["values"])),
            "n_genes": len(res["genes"]), "tta": tta if tta is not None else TILE_TTA,
            "model_tta": int(model.cfg["tta"]), "context_cut": model.cfg["context_cut"],
            "seconds": wall, "cpu_seconds": cpu, "load_seconds": t_load,
            "stage_seconds": stages, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
            "rss_after_load_gb": rss_after_load, "threads": torch.get_num_threads(),
            "load_average_1min_end": os.getloadavg()[0],
            "finite": bool(np.isfinite(res["values"]).all())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tta", nargs="+", type=int, default=[0],
                    help="test-time rotations per tile; 0 = the default of predict_image")
    ap.add_argument("--tile-um", type=float, default=100.0)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--image", choices=list(IMAGES), default="full10k")
    ap.add_argument("--epochs", type=int, default=None, help="default: the package's")
    ap.add_argument("--n-views", type=int, default=None, help="default: the package's")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--context-cut", choices=["resize", "box"], default=None,
                    help="train / time a model with this context_cut (default: the package's, its own bundle)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "wholeslide.json"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        tta = args.tta[0] or None
        print(json.dumps(worker(tta, args.tile_um, args.threads, IMAGES[args.image], args.context_cut)))
        return 0
    if not TEST_IMAGE.is_file():
        raise SystemExit(f"{TEST_IMAGE} not found: the benchmark needs ../shared/datasets/her2st_subset")
    image = IMAGES[args.image]
    if not image.is_file():
        image.parent.mkdir(parents=True, exist_ok=True)
        (make_full_10k if args.image == "full10k" else make_tiff_40k)(image)
    train_s = None
    if args.retrain or _stale(model_dir(args.context_cut), args.context_cut):
        import torch

        torch.set_num_threads(args.threads)
        train_s = train_model(args.epochs, args.n_views, context_cut=args.context_cut)
        print(f"trained the model in {train_s:.0f} s → {model_dir(args.context_cut)}", flush=True)
    rows = []
    for tta in args.tta:
        cmd = [sys.executable, __file__, "--worker", "--tta", str(tta), "--tile-um", str(args.tile_um),
               "--threads", str(args.threads), "--image", args.image]
        if args.context_cut:
            cmd += ["--context-cut", args.context_cut]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        row = json.loads(proc.stdout.strip().splitlines()[-1]) | {"train_seconds": train_s}
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))
    print("\n| image | tile µm (px) | tissue tiles | TTA | wall s | CPU s | peak RSS GB | decode s | load s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['image']} ({r['width']}×{r['height']}) | {r['tile_um']:.0f} ({r['tile_px']:.0f}) "
              f"| {r['n_tiles']:,} | {r['tta']} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['peak_rss_gb']:.2f} "
              f"| {r['stage_seconds'].get('decode', float('nan')):.1f} | {r['load_seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
