"""Which reference genes a panel lacks (the gene picker's list) and what a run will cost (Qt-free)."""

from __future__ import annotations

from ..api.plan import DEFAULT_N_TOP_GENES, RunPlan, plan_run
from ..io.reference import choose_identifier, counts_genes
from ..preprocessing import gene_key


def gene_candidates(panel, reference, *, values: str = "auto") -> tuple[list[str], list[str], str]:
    """(reference genes the panel lacks, reference genes it measures, identifier used), matching case-insensitively
    on whichever reference identifier (var_names or a symbol column) matches the panel best. The genes are those
    of the matrix the counts come from (``.raw.var`` when the counts are in ``.raw``; ``values`` as declared)."""
    var, var_names, _ = counts_genes(reference, values=values)
    label, names, _ = choose_identifier(var, var_names, list(map(str, panel)))
    measured = {gene_key(g) for g in panel}
    missing = [n for n in names if gene_key(n) not in measured]
    shared = [n for n in names if gene_key(n) in measured]
    return missing, shared, label


def target_count(mode: str, n_missing: int, n_chosen: int, n_top: int = DEFAULT_N_TOP_GENES) -> int:
    """How many genes a run imputes: ``mode`` "top" (most variable), "all" or "chosen"."""
    if mode == "chosen":
        return n_chosen
    return n_missing if mode == "all" else min(n_top, n_missing)


def estimate(n_cells: int, n_reference: int, n_shared: int, n_targets: int, method: str,
             to_disk: bool) -> tuple[RunPlan, str | None]:
    """The run plan and, when it cannot fit in memory, the message that refuses it."""
    plan = plan_run(n_cells, n_targets, n_reference, n_shared, method, to_disk=to_disk)
    if plan.fits_in_memory:
        return plan, None
    fix = ("choose a .zarr output (written chunk by chunk)" if not to_disk
           else "impute fewer genes or fewer cells at once")
    return plan, f"Refused: about {plan.peak_bytes / 2**30:.1f} GB needed; {fix}."
