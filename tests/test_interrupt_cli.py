"""A real Ctrl-C: the installed CLI runs in a subprocess on real data, gets SIGINT once its progress shows that
training has started, and must exit with code 130, no traceback, no output and no partial file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from _badinput import checksum


def _cli_command() -> list[str]:
    """The console script next to this interpreter (what a user runs), else the same entry point via -c."""
    script = Path(sys.executable).with_name("napari-spatial-impute")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from napari_spatial_impute.cli import main; sys.exit(main())"]


def _interrupt_when(argv: list[str], pattern: str, timeout: float = 180.0) -> tuple[int, str, float]:
    """Run the CLI, send SIGINT when ``pattern`` appears on its stderr (its progress bar); (exit code, stderr,
    seconds from SIGINT to exit)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(_cli_command() + [str(a) for a in argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env,
                            # Ctrl-C as in a terminal even if this test runs where SIGINT is ignored (a background job)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: [chunks.append(c) for c in iter(lambda: proc.stderr.read1(4096), b"")],
                              daemon=True)
    reader.start()
    found, deadline = re.compile(pattern), time.monotonic() + timeout
    try:
        while not found.search(b"".join(chunks).decode(errors="replace")):
            if proc.poll() is not None:
                pytest.fail(f"the run ended (code {proc.returncode}) before {pattern!r}:\n"
                            + b"".join(chunks).decode(errors="replace")[-2000:])
            if time.monotonic() > deadline:
                pytest.fail(f"no {pattern!r} on stderr within {timeout:.0f} s")
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    return rc, b"".join(chunks).decode(errors="replace"), took


def _check(rc: int, err: str, took: float, out_dir: Path, inputs: list[Path], sums: list[str]) -> None:
    assert rc == 130, err[-2000:]
    assert "interrupted; nothing written" in err and "Traceback" not in err, err[-2000:]
    assert list(out_dir.iterdir()) == []  # no output, no <name>.partial
    assert [checksum(p) for p in inputs] == sums
    assert took < 10.0, f"the run took {took:.1f} s to stop after Ctrl-C"


def test_ctrl_c_while_training_spaim_leaves_nothing(tmp_path):
    from napari_spatial_impute.datasets import sample_path

    inputs = [Path(str(sample_path("spatial.h5ad"))), Path(str(sample_path("reference.h5ad")))]
    sums = [checksum(p) for p in inputs]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc, err, took = _interrupt_when(["impute", *inputs, "--method", "spaim", "--genes", "Gad2,Vip", "--device", "cpu",
                                     "--seed", "0", "--out", out_dir / "imputed.h5ad"],
                                    r"model 1/\d+, epoch [2-9]\d*/")  # SpaIM's own training has started
    _check(rc, err, took, out_dir, inputs, sums)


def test_ctrl_c_while_training_histology_leaves_no_bundle(tmp_path):
    from conftest import shared_dataset

    root = shared_dataset("her2st_subset")
    inputs = [root / "ST-cnts/C2.tsv.gz", root / "ST-spotfiles/C2_selection.tsv", root / "ST-imgs/C2_5714_HE_BT_C2.jpg"]
    sums = [checksum(p) for p in inputs]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc, err, took = _interrupt_when(["histology", "train", "--section", *inputs, "--out", out_dir / "model",
                                     "--epochs", "50", "--seed", "0", "--device", "cpu",
                                     "--param", "patch_px=64", "--param", "n_views=1", "--param", "tta=1"],
                                    r"epoch [2-9]\d*/")
    _check(rc, err, took, out_dir, inputs, sums)
