"""Protein sequences → gene embeddings with a local fair-esm ESM-2 checkpoint.

Each sequence is embedded by the checkpoint's last layer, mean-pooled over residues (BOS/EOS/padding
excluded; sequences longer than 1022 residues are truncated, as fair-esm's ``extract`` does), in batches
bounded by a token budget, on the chosen device. Vectors are cached on disk, one ``.npy`` per sequence,
under a folder keyed by the checkpoint (name, size, mtime) and the sequence's SHA-256, so a second run
embeds only new sequences. Cache root: ``cache_dir``, else the package cache folder
(:func:`napari_spatial_impute.cache.root`: ``$NAPARI_SPATIAL_IMPUTE_CACHE`` or the platform's cache dir); the
folder is made when the first vector is written, and a disk that refuses the write only costs the caching.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import warnings
from pathlib import Path

import numpy as np

from ..cache import root as package_cache_root
from ..errors import InputError
from ..progress import Progress, ProgressGen
from .tables import GeneEmbeddings

MAX_RESIDUES = 1022
_GN = re.compile(r"\bGN=(\S+)")


def read_fasta(path: str | Path) -> dict[str, str]:
    """``{gene symbol: sequence}`` from a FASTA file; the symbol is ``GN=...`` (UniProt headers) if present,
    else the header's first word. Duplicate symbols (case ignored) are an :class:`InputError`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"FASTA file {path} does not exist.", "check the path.")
    records: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    current = None
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            header = line[1:].strip()
            match = _GN.search(header)
            name = match.group(1) if match else (header.split()[0] if header else "")
            if not name:
                raise InputError(f"{path.name} line {line_no}: empty FASTA header.", "put the gene symbol after '>'.")
            if name.upper() in seen:
                raise InputError(f"Duplicate gene symbol {name!r} in {path.name} (also {seen[name.upper()]!r}).",
                                 "keep one protein sequence (e.g. the canonical isoform) per gene.")
            seen[name.upper()] = name
            current = name
            records[current] = []
        elif current is None:
            raise InputError(f"{path.name} does not start with a '>' header line.", "give a FASTA file.")
        else:
            records[current].append(line.replace(" ", "").upper().rstrip("*"))
    seqs = {g: "".join(parts) for g, parts in records.items()}
    empty = [g for g, s in seqs.items() if not s]
    if empty:
        raise InputError(f"Empty sequence(s) for {empty[:5]} in {path.name}.", "give one protein sequence per gene.")
    if not seqs:
        raise InputError(f"No sequences in {path.name}.", "give a FASTA file with '>' headers.")
    return seqs


def load_esm_checkpoint(checkpoint: str | Path):
    """(model, alphabet) from a local fair-esm checkpoint via ``esm.pretrained.load_model_and_alphabet_local``.

    Without the ``<name>-contact-regression.pt`` file next to it the model is built from the checkpoint
    alone (contacts are not needed for embeddings). Any failure becomes an :class:`InputError`.
    """
    import argparse

    try:
        import esm
    except ImportError as exc:
        raise InputError("Embedding a protein FASTA needs fair-esm, which is not installed.",
                         "pip install 'napari-spatial-impute[esm]'") from exc
    _check_fair_esm(esm)
    import torch

    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise InputError(f"ESM checkpoint {path} does not exist.",
                         "download a fair-esm ESM-2 .pt file (e.g. esm2_t33_650M_UR50D.pt) and point at it.")
    if not path.stem.startswith("esm2"):
        raise InputError(f"ESM checkpoint {path.name}: the file name must start with 'esm2' (fair-esm uses the "
                         "name to pick the ESM-2 architecture).", "rename it like esm2_t33_650M_UR50D.pt.")
    regression = Path(str(path.with_suffix("")) + "-contact-regression.pt")
    try:
        # fair-esm checkpoints store their config as argparse.Namespace; allow only that class.
        with torch.serialization.safe_globals([argparse.Namespace]):
            if regression.is_file():
                model, alphabet = esm.pretrained.load_model_and_alphabet_local(str(path))
            else:
                data = torch.load(str(path), map_location="cpu")
                with warnings.catch_warnings():  # "regression weights not found": contacts are not used here
                    warnings.simplefilter("ignore", UserWarning)
                    model, alphabet = esm.pretrained.load_model_and_alphabet_core(path.stem, data, None)
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint → one clear message
        raise InputError(f"Could not read ESM-2 checkpoint {path.name}: {type(err).__name__}: {str(err)[:200]}",
                         "give an intact fair-esm ESM-2 .pt checkpoint (re-download it if it is truncated).") \
            from err
    model.eval()
    return model, alphabet


def _check_fair_esm(esm) -> None:
    """Raise :class:`InputError` when the importable ``esm`` is not fair-esm: EvolutionaryScale's ``esm`` package
    (ESM3 / ESM C) has the same top-level name but no ESM-2 loaders, and whichever was installed last wins."""
    import importlib

    pretrained = getattr(esm, "pretrained", None)
    if pretrained is None:
        try:
            pretrained = importlib.import_module("esm.pretrained")
        except Exception:  # noqa: BLE001 - not there, or another package's module failing to import
            pretrained = None
    if all(hasattr(pretrained, f) for f in ("load_model_and_alphabet_local", "load_model_and_alphabet_core")):
        return
    try:
        from importlib.metadata import packages_distributions

        owners = ", ".join(packages_distributions().get("esm", [])) or "unknown"
    except Exception:  # noqa: BLE001 - only used to say which distribution it is
        owners = "unknown"
    where = getattr(esm, "__file__", None) or "?"
    raise InputError(f"The 'esm' module importable here ({where}, distribution: {owners}) is not fair-esm: it has "
                     "no esm.pretrained ESM-2 loaders. EvolutionaryScale's 'esm' package (ESM3 / ESM C) uses the "
                     "same top-level name as fair-esm, so the two cannot share an environment.",
                     "install the [esm] extra in an environment without EvolutionaryScale's esm: "
                     "pip uninstall esm && pip install 'napari-spatial-impute[esm]' (or use a separate venv).")


def checkpoint_key(checkpoint: str | Path) -> str:
    """A cache key for a checkpoint file: its name, size and modification time."""
    p = Path(checkpoint).expanduser().resolve()
    st = p.stat()
    return f"{p.stem}-{hashlib.sha256(f'{p}|{st.st_size}|{st.st_mtime_ns}'.encode()).hexdigest()[:12]}"


def _seq_hash(seq: str) -> str:
    return hashlib.sha256(seq.encode()).hexdigest()[:32]


def _store(folder: Path, key: str, vec: np.ndarray, hint: str) -> bool:
    """Cache one vector (temporary name, then rename); ``False`` (with a warning naming ``hint``) when the disk
    refuses."""
    tmp = folder / f".{key}.{os.getpid()}.npy"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(tmp, vec)
        tmp.replace(folder / f"{key}.npy")
    except OSError as err:
        with contextlib.suppress(OSError):  # (a root that is a file: not even a missing file to unlink)
            tmp.unlink()
        warnings.warn(f"Could not write the ESM-2 cache in {folder} ({err}); embedding without caching. Free some "
                      f"disk or {hint}.", RuntimeWarning, stacklevel=2)
        return False
    return True


def embed_sequences_steps(sequences: dict[str, str], checkpoint: str | Path, *, device: str = "auto",
                          cache_dir: str | Path | None = None,
                          batch_tokens: int = 4096) -> ProgressGen[GeneEmbeddings]:
    """Embed ``{gene: protein sequence}`` with an ESM-2 checkpoint (mean over residues, last layer)."""
    import torch

    from ..device import resolve_device

    if not Path(checkpoint).expanduser().is_file():
        raise InputError(f"ESM checkpoint {checkpoint} does not exist.",
                         "download a fair-esm ESM-2 .pt file (e.g. esm2_t33_650M_UR50D.pt) and point at it.")
    base = Path(cache_dir).expanduser() if cache_dir else package_cache_root()
    folder = base / "esm2" / checkpoint_key(checkpoint)  # made only when a vector is written
    hint = "pass a writable cache_dir" if cache_dir else "point $NAPARI_SPATIAL_IMPUTE_CACHE at a writable folder"
    vectors: dict[str, np.ndarray] = {}
    todo = []
    for gene, seq in sequences.items():
        seq = seq[:MAX_RESIDUES]
        cached = folder / f"{_seq_hash(seq)}.npy"
        if cached.is_file():
            vectors[gene] = np.load(cached, allow_pickle=False)
        else:
            todo.append((gene, seq))
    n_cached = len(vectors)
    if todo:
        model, alphabet = load_esm_checkpoint(checkpoint)
        dev = torch.device(resolve_device(device))
        model = model.to(dev)
        layer = int(model.num_layers)
        convert = alphabet.get_batch_converter()
        todo.sort(key=lambda item: len(item[1]))
        batches, current, width = [], [], 0
        for item in todo:
            size = len(item[1]) + 2
            if current and max(width, size) * (len(current) + 1) > batch_tokens:
                batches.append(current)
                current, width = [], 0
            current.append(item)
            width = max(width, size)
        if current:
            batches.append(current)
        writable = True
        done = 0
        for b, batch in enumerate(batches):
            _, _, tokens = convert(batch)
            with torch.inference_mode():
                reps = model(tokens.to(dev), repr_layers=[layer])["representations"][layer].float().cpu()
            for i, (gene, seq) in enumerate(batch):
                vec = reps[i, 1:len(seq) + 1].mean(0).numpy().astype(np.float32)
                vectors[gene] = vec
                if writable:
                    writable = _store(folder, _seq_hash(seq), vec, hint)
            done += len(batch)
            yield Progress(b + 1, len(batches), f"ESM-2 embedded {done}/{len(todo)} sequences", "embeddings")
    genes = list(sequences)
    emb = GeneEmbeddings(genes, np.stack([vectors[g] for g in genes]), f"ESM-2 {Path(checkpoint).name}",
                         {"checkpoint": str(checkpoint), "cached": n_cached, "embedded": len(todo),
                          "cache_dir": str(folder)})
    return emb


def embed_fasta_steps(fasta: str | Path, checkpoint: str | Path, *, device: str = "auto",
                      cache_dir: str | Path | None = None, batch_tokens: int = 4096) -> ProgressGen[GeneEmbeddings]:
    """Read a FASTA file (gene symbol in each header) and embed its sequences; see the module docstring."""
    seqs = read_fasta(fasta)
    return (yield from embed_sequences_steps(seqs, checkpoint, device=device, cache_dir=cache_dir,
                                             batch_tokens=batch_tokens))
