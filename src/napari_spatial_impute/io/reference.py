"""References as scverse users keep them: find the counts, recognise normalised values, pick the gene identifier.

A reference may hold raw counts in ``layers["counts"]``, in ``.raw.X`` or in ``X``; ``X`` is often
log-normalised (``uns["log1p"]`` set by scanpy) or scaled. Genes may be Ensembl ids in ``var_names`` with
symbols in a column (CELLxGENE: ``feature_name``; 10x read with ``gene_ids``: ``gene_symbols``) or the reverse.
:func:`ingest` returns the counts (sparse stays sparse), the identifier that best matches the spatial panel,
and a report saying which matrix and which identifier were used. Nothing is ever normalised twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError
from ..preprocessing import gene_key
from .values import VALUE_KINDS, check_all_finite, check_declared, check_values, declare_hint

#: ``var`` columns that commonly hold gene identifiers, most common first.
IDENTIFIER_COLUMNS = ("feature_name", "gene_symbols", "gene_symbol", "gene_name", "gene_names", "symbol",
                      "symbols", "gene", "genes", "gene_ids", "gene_id", "feature_id", "ensembl_id", "ensembl")


@dataclass
class ReferenceReport:
    """Which matrix and which gene identifier were used, and what was noticed on the way."""

    matrix: str
    values: str
    identifier: str
    n_matched: int
    n_genes: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"matrix": self.matrix, "values": self.values, "identifier": self.identifier,
                "n_matched": self.n_matched, "n_genes": self.n_genes, "notes": list(self.notes)}

    def text(self) -> str:
        lines = [f"reference counts from {self.matrix} ({self.values}); genes identified by {self.identifier}: "
                 f"{self.n_matched} of the panel matched among {self.n_genes} reference genes."]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


def _candidates(adata) -> list[tuple[str, str | None]]:
    """(matrix label, layer key) candidates in the order scverse users keep counts."""
    out: list[tuple[str, str | None]] = []
    if "counts" in adata.layers:
        out.append(("layers['counts']", "counts"))
    for key in ("raw_counts", "count", "umi", "UMI"):
        if key in adata.layers:
            out.append((f"layers[{key!r}]", key))
    if adata.raw is not None:
        out.append((".raw.X", "__raw__"))
    out.append(("X", None))
    return out


def _matrix(adata, key: str | None):
    if key is None:
        return adata.X, adata.var_names
    if key == "__raw__":
        return adata.raw.X, adata.raw.var_names
    return adata.layers[key], adata.var_names


def _scan(adata, rows: int | None = None):
    """``(label, matrix, var_names, ValueCheck)`` of each candidate counts matrix in turn, in
    :func:`_candidates`' order; judged from the first ``rows`` cells only when given."""
    log1p_flag = "log1p" in adata.uns
    for label, key in _candidates(adata):
        X, names = _matrix(adata, key)
        if X is not None:
            yield label, X, names, check_values(X if rows is None else X[:rows], log1p_flag=log1p_flag and key is None)


def find_counts(adata, *, values: str = "auto", what: str = "reference", flag: str = "--reference-values"):
    """The matrix to normalise: ``(matrix, var_names of that matrix, label, kind, notes)``.

    ``values``: ``"auto"`` (find counts, refuse log/scaled data), ``"counts"`` (use ``X`` as counts), or
    ``"log1p"`` (``X`` is ``log1p`` of normalised values: it is turned back with ``expm1``, never re-logged).
    """
    if values is None:
        values = "auto"
    if values not in VALUE_KINDS:
        raise InputError(f"Unknown value declaration {values!r} for the {what}.",
                         f"use one of: {', '.join(VALUE_KINDS)}.")
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(f"The {what} is empty ({adata.n_obs} cells × {adata.n_vars} genes).",
                         "point at a file with cells in rows and genes in columns.")
    notes: list[str] = []
    if values in ("counts", "log1p"):
        check_declared(adata.X, values, what, flag)
    if values in ("counts", "log1p"):
        check_all_finite(adata.X, what, "X")
    if values == "counts":
        looks = check_values(adata.X, log1p_flag="log1p" in adata.uns)
        if looks.kind == "log1p":
            import warnings

            msg = (f"The {what}'s X is declared counts but looks {looks.reason}: it is used as counts as "
                   f"declared; if it is log data, declare auto (counts are found in layers / .raw) or log1p.")
            warnings.warn(msg, UserWarning, stacklevel=3)
            notes.append(msg)
        return adata.X, adata.var_names, "X", "counts (declared)", notes
    if values == "log1p":
        X = adata.X
        X = X.expm1() if sp.issparse(X) else np.expm1(np.asarray(X, dtype=np.float32))
        notes.append("X declared log1p-normalised: expm1 applied, then normalised once (no second log).")
        return X, adata.var_names, "X", "log1p (declared)", notes
    seen, kinds = [], set()
    for label, X, names, check in _scan(adata):
        seen.append(f"{label}: {check.reason}")
        kinds.add(check.kind)
        if check.kind == "invalid":
            check_all_finite(X, what, label)  # names the first cell with NaN; values beyond float32 go on
        if check.kind == "counts":
            check_all_finite(X, what, label)
            if label != "X":
                x_kind = check_values(adata.X, log1p_flag="log1p" in adata.uns).kind
                notes.append(f"counts taken from {label}; X holds {x_kind} values and is not used.")
            return X, names, label, "counts", notes
        if check.kind == "linear":
            check_all_finite(X, what, label)
            notes.append(f"{label} holds non-integer linear values ({check.reason}); accepted as counts-like.")
            return X, names, label, "linear", notes
    if not seen:
        raise InputError(f"The {what} has no values: X is None and it has no counts layer or .raw.",
                         "keep raw counts in X, layers['counts'] or .raw.")
    if kinds == {"empty"}:
        raise InputError(f"The {what} is all zeros (" + "; ".join(seen) + "): there is nothing to learn from.",
                         "check that the right file / layer was exported (the counts may have been dropped).")
    if "invalid" in kinds:
        raise InputError(f"The {what} holds NaN, infinite or out-of-range values (" + "; ".join(seen) + ").",
                         "fix or drop those cells / genes (e.g. adata = adata[:, np.isfinite(adata.X).all(0)]), "
                         "or keep the raw counts in layers['counts'].")
    if kinds <= {"scaled", "empty"}:
        raise InputError(f"The {what} holds centred / scaled values and no raw counts (" + "; ".join(seen) + ").",
                         "keep raw counts in layers['counts'] or .raw (scanpy: adata.layers['counts'] = "
                         "adata.X.copy() before sc.pp.normalize_total and sc.pp.scale).")
    raise InputError(
        f"The {what} holds no raw counts: " + "; ".join(seen) + ".",
        "keep raw counts in layers['counts'] or .raw (scanpy: adata.layers['counts'] = adata.X.copy() before "
        f"sc.pp.normalize_total), or declare the values as log1p: {declare_hint(flag, 'log1p')}.")


def var_of(adata, label: str, names) -> pd.DataFrame:
    """The ``var`` describing the genes of the matrix ``label`` (``.raw.var`` for ``.raw.X``, unless it is bare
    and names the same genes as ``var``)."""
    if label != ".raw.X":
        return adata.var
    var = adata.raw.var
    if len(var.columns) == 0 and list(map(str, names)) == list(map(str, adata.var_names)):
        return adata.var
    return var


def counts_genes(adata, *, values: str = "auto", rows: int = 2000) -> tuple[pd.DataFrame, object, str]:
    """``(var, var_names, matrix label)`` of the matrix :func:`find_counts` takes the counts from, judged from the
    first ``rows`` cells only (a backed file is not read whole): the genes a gene picker lists. ``X``'s genes
    when no matrix holds counts (the run then stops and says why)."""
    if values in ("counts", "log1p"):
        return adata.var, adata.var_names, "X"
    n = min(int(rows), adata.n_obs)
    for label, _X, names, check in _scan(adata, n) if n else ():
        if check.kind in ("counts", "linear"):
            return var_of(adata, label, names), names, label
    return adata.var, adata.var_names, "X"


def identifier_candidates(var: pd.DataFrame, var_names) -> dict[str, list[str]]:
    """``{label: names}`` for ``var_names`` and every identifier-like ``var`` column."""
    out = {"var_names": list(map(str, var_names))}
    cols = [c for c in IDENTIFIER_COLUMNS if c in var.columns]
    cols += [c for c in var.columns if c not in cols and re.search(r"(symbol|gene|feature|ensembl)", str(c), re.I)
             and (var[c].dtype == object or isinstance(var[c].dtype, pd.CategoricalDtype))]
    for c in cols:
        out[f"var[{c!r}]"] = [str(v) for v in var[c].astype(str)]
    return out


def gene_aliases(var: pd.DataFrame) -> dict[str, str]:
    """Each other identifier of an ingested reference's genes (its identifier columns and original names, keyed
    by :func:`gene_key`) → the gene's name in ``var.index``; the first gene wins a shared alias."""
    out: dict[str, str] = {}
    cols = [c for c in (*IDENTIFIER_COLUMNS, "var_names_original") if c in var.columns]
    names = list(map(str, var.index))
    for c in cols:
        for alias, name in zip(var[c].astype(str), names):
            if alias not in ("", "nan", "None"):
                out.setdefault(gene_key(alias), name)
    return out


def choose_identifier(var: pd.DataFrame, var_names, panel) -> tuple[str, list[str], int]:
    """The identifier (label, names, n matched) that matches the most panel genes (case-insensitive,
    Ensembl versions ignored); ``var_names`` wins ties."""
    panel_keys = {gene_key(g) for g in panel}
    best = None
    for label, names in identifier_candidates(var, var_names).items():
        n = len(panel_keys & {gene_key(n) for n in names})
        if best is None or n > best[2]:
            best = (label, names, n)
    return best


_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$", re.I)


def _identifier_name(label: str) -> str:
    """``"var['feature_name']"`` → ``"feature_name"``; ``"var_names"`` stays."""
    m = re.fullmatch(r"var\[(['\"])(.*)\1\]", label)
    return m.group(2) if m else label


def _is_ensembl(names) -> bool:
    names = [str(n) for n in names if str(n) not in ("", "nan", "None")]
    return bool(names) and sum(bool(_ENSEMBL.match(n)) for n in names) >= 0.8 * len(names)


def _kind(names) -> str:
    """"Ensembl ids (ENSMUSG…)" or "symbols" (for messages)."""
    names = [str(n) for n in names]
    if not _is_ensembl(names):
        return "symbols"
    prefixes = sorted({re.match(r"^ENS[A-Z]*G", n, re.I).group(0).upper() for n in names if _ENSEMBL.match(n)})
    return f"Ensembl ids ({', '.join(p + '…' for p in prefixes[:3])})"


def _describe_other_identifiers(var: pd.DataFrame, ident: str, names) -> None:
    """Name the identifiers other than the chosen one descriptively: ``gene_id`` (Ensembl) / ``gene_symbol``,
    from the original ``var_names`` or a known identifier column (a column already so named is left alone)."""
    chosen = _identifier_name(ident)
    others = [] if ident == "var_names" else [list(map(str, names))]
    others += [[str(v) for v in var[c].astype(str)] for c in IDENTIFIER_COLUMNS
               if c in var.columns and c != chosen and c not in ("gene_id", "gene_symbol")]
    for values in others:
        if len(set(values)) < 0.5 * len(values):  # not an identifier (e.g. a gene biotype)
            continue
        col = "gene_id" if _is_ensembl(values) else "gene_symbol"
        if col not in var.columns:
            var[col] = values


def unique_names(names: list[str]) -> tuple[list[str], list[str]]:
    """Make names unique (``Gene``, ``Gene-1``, … like anndata) and list the repeated ones."""
    seen: dict[str, int] = {}
    out, dups = [], []
    upper = {}
    for name in names:
        key = name.upper()
        if key in upper:
            upper[key] += 1
            new = f"{name}-{upper[key]}"
            while new.upper() in seen:
                upper[key] += 1
                new = f"{name}-{upper[key]}"
            dups.append(name)
            out.append(new)
            seen[new.upper()] = 1
        else:
            upper[key] = 0
            seen[key] = 1
            out.append(name)
    return out, dups


def ingest(adata, panel, *, values: str = "auto", what: str = "reference"):
    """A reference AnnData → (counts AnnData with gene names matching ``panel``'s identifier, report).

    The returned AnnData shares the counts matrix (sparse stays sparse, nothing copied unless needed),
    has ``var_names`` in the identifier that best matches the spatial ``panel`` (the reference's own
    spelling), the other identifiers as ``var`` columns, and the reference's ``obs``.
    """
    import anndata as ad

    X, names, label, kind, notes = find_counts(adata, values=values, what=what)
    var = var_of(adata, label, names).copy()
    ident, chosen, n_matched = choose_identifier(var, names, panel)
    if n_matched == 0:
        ex_ref = ", ".join(chosen[:3])
        ex_sp = ", ".join(list(map(str, panel))[:3])
        cols = [c for c in var.columns if c in IDENTIFIER_COLUMNS]
        where = "var_names" + (f" or var columns {', '.join(cols)}" if cols else " (no identifier column in var)")
        kinds = (f" The spatial panel names genes by {_kind(panel)}, the {what} by {_kind(chosen)}."
                 if _kind(panel) != _kind(chosen) else "")
        raise InputError(
            f"The spatial data and the {what} share no gene, compared in {where} ignoring case: {what} e.g. "
            f"{ex_ref}; spatial e.g. {ex_sp}.{kinds}",
            f"check that the {what} is of the panel's species (symbols differing only in case, e.g. human GAD2 / "
            "mouse Gad2, do match; other species' genes do not) and that it names genes with the panel's "
            "identifier (symbols or Ensembl ids, in var_names or a var column such as feature_name / "
            "gene_symbols); if its symbols are missing, add them as a var column.")
    chosen, dups = unique_names(chosen)
    if dups:
        notes.append(f"{len(dups)} repeated gene names in {ident} made unique with -1, -2 suffixes "
                     f"(e.g. {', '.join(sorted(set(dups))[:3])}).")
    var["identifier"] = _identifier_name(ident)  # which identifier the genes were matched (and are named) by
    if ident != "var_names":
        var["var_names_original"] = list(map(str, names))  # kept for compatibility; gene_id / gene_symbol below
    _describe_other_identifiers(var, ident, names)
    suffixed = [n for n in chosen if re.search(r"-\d+$", n) and n.rsplit("-", 1)[0] in set(chosen)]
    if suffixed and not dups:
        notes.append(f"{len(suffixed)} genes carry -N suffixes of earlier de-duplication (e.g. {suffixed[0]}).")
    var.index = pd.Index(chosen)
    out = ad.AnnData(X=X, obs=adata.obs.copy(), var=var)
    report = ReferenceReport(label, kind, ident, n_matched, len(chosen), notes)
    out.uns["reference_ingestion"] = report.as_dict()
    return out, report
