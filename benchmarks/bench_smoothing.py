"""Whole-slide smoothing of predictions (``models.stco.fallback.smooth``): time and traced memory on a dense tile
grid, against the plain formula that held every neighbour pair at once (the code before blocks of rows).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_smoothing.py [--side 120] [--tile-um 25] [--sigma 200]

Prints one line per implementation: seconds, peak traced MB (tracemalloc), and the largest difference.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np


def plain(values: np.ndarray, xy_um: np.ndarray, sigma_um: float) -> np.ndarray:
    """Every pair within 3σ as one sparse matrix (the formula before blocks of rows)."""
    from scipy.sparse import csr_matrix, identity
    from scipy.spatial import cKDTree

    tree = cKDTree(np.asarray(xy_um, np.float64))
    d = tree.sparse_distance_matrix(tree, 3 * sigma_um, output_type="coo_matrix")
    w = csr_matrix((np.exp(-0.5 * (d.data / sigma_um) ** 2), (d.row, d.col)), shape=(len(values),) * 2)
    w = w + identity(len(values), format="csr") * (1.0 - w.diagonal())
    return (np.asarray(w @ values) / np.asarray(w.sum(axis=1))).astype(np.float32)


def main() -> None:
    from napari_spatial_impute.models.stco.fallback import smooth

    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=120, help="tiles per side (120: 14,400 tiles)")
    ap.add_argument("--tile-um", type=float, default=25.0)
    ap.add_argument("--sigma", type=float, default=200.0)
    ap.add_argument("--genes", type=int, default=50)
    args = ap.parse_args()
    grid = np.stack(np.meshgrid(np.arange(args.side) * args.tile_um, np.arange(args.side) * args.tile_um),
                    -1).reshape(-1, 2)
    values = np.random.default_rng(0).normal(size=(len(grid), args.genes)).astype(np.float32)
    out = {}
    for name, f in (("blocks (smooth)", smooth), ("every pair at once", plain)):
        tracemalloc.start()
        t0 = time.perf_counter()
        out[name] = f(values, grid, args.sigma)
        sec = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        print(f"{name}: {len(grid):,} tiles, σ {args.sigma:g} µm: {sec:.1f} s, peak traced {peak:,.0f} MB")
    a, b = out.values()
    print(f"largest difference: {np.abs(a - b).max():.2e}")


if __name__ == "__main__":
    main()
