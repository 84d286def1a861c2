"""Before a run: which genes to impute by default, and how big / slow / memory-hungry the run will be."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import InputError

#: default number of target genes when none are named: the reference's most variable genes the panel lacks
DEFAULT_N_TOP_GENES = 2000
#: rough CPU seconds: fixed cost (training, inner CV), per spatial cell, per cell × 1,000 target genes, and per
#: cell when the result goes to disk. From benchmarks/README.md and benchmarks/accuracy.md: kNN 1.3 M cells × 50
#: genes in memory 85 s; stImpute 1.3 M × 50 genes 402 s (≈ 0.26 ms per predicted cell); auto on 18k cells 89 s,
#: of which its inner CV is most; SpaIM trains on the slide itself. The width terms are fitted to the two
#: out-of-core kNN rows of the Width section (200,000 cells × 20,000 genes: 262 CPU s; 1 M × 2,000: 352 CPU s):
#: 53 µs per cell and 1,000 genes (search, gather, block writes), 180 µs per cell to write the store.
_FIXED_SECONDS = {"knn": 1.0, "stimpute": 40.0, "spaim": 60.0, "auto": 80.0}
_SECONDS_PER_CELL = {"knn": 6.5e-5, "stimpute": 2.6e-4, "spaim": 8e-3, "auto": 8e-4}
_SECONDS_PER_CELL_KGENE = 5.3e-5
_SECONDS_PER_CELL_TO_DISK = 1.8e-4


def available_memory_bytes() -> int:
    """Physical memory of this machine (bytes); 16 GiB when the platform does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16 << 30


@dataclass
class RunPlan:
    """What a run will cost, estimated from the cell and gene counts and the method."""

    n_cells: int
    n_genes: int
    n_reference: int
    method: str
    output_bytes: int
    peak_bytes: int
    seconds: float
    to_disk: bool
    memory_bytes: int

    @property
    def fits_in_memory(self) -> bool:
        return self.peak_bytes < 0.7 * self.memory_bytes

    def text(self) -> str:
        where = "written to disk chunk by chunk" if self.to_disk else "held in memory"
        return (f"{self.n_cells:,} cells × {self.n_genes:,} genes ({self.method}): result {_gb(self.output_bytes)} "
                f"({where}), peak memory ≈ {_gb(self.peak_bytes)} of {_gb(self.memory_bytes)}, "
                f"≈ {_duration(self.seconds)} on this machine")

    def as_dict(self) -> dict:
        return {"n_cells": self.n_cells, "n_genes": self.n_genes, "output_bytes": self.output_bytes,
                "peak_bytes": self.peak_bytes, "seconds": self.seconds, "to_disk": self.to_disk}


def _gb(n: float) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**28 else f"{n / 2**20:.0f} MB"


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"


def plan_run(n_cells: int, n_genes: int, n_reference: int, n_shared: int, method: str, *,
             to_disk: bool = False, chunk_bytes: int = 512 << 20) -> RunPlan:
    """Estimate output size, peak memory and time of imputing ``n_genes`` for ``n_cells`` cells."""
    output = 4 * n_cells * n_genes
    inputs = 4 * (n_cells * n_shared + n_reference * (n_shared + n_genes))
    peak = inputs + (min(output, chunk_bytes) if to_disk else output) + (256 << 20)
    method = str(method).lower()
    per_cell = (_SECONDS_PER_CELL.get(method, 1e-3) + _SECONDS_PER_CELL_KGENE * n_genes / 1000
                + (_SECONDS_PER_CELL_TO_DISK if to_disk else 0.0))
    seconds = _FIXED_SECONDS.get(method, 60.0) + n_cells * per_cell
    return RunPlan(n_cells, n_genes, n_reference, method, output, peak, seconds, to_disk, available_memory_bytes())


def check_plan(plan: RunPlan) -> None:
    """Refuse a run whose result would not fit in memory unless it goes to disk."""
    if not plan.fits_in_memory:
        fix = ("write the result to disk chunk by chunk with --out RESULT.zarr (API: impute(..., out='r.zarr'))"
               if not plan.to_disk else "impute fewer genes (--genes / --n-top-genes) or fewer cells at once")
        raise InputError(f"This run needs about {_gb(plan.peak_bytes)} of memory; the machine has "
                         f"{_gb(plan.memory_bytes)} ({plan.text()}).", fix + ".")
