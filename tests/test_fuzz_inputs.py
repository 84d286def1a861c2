"""Fuzzing the readers and the parameter parser with a seeded generator of bad inputs (no extra dependency;
runs in seconds). The contract: the parser and the API raise nothing but InputError; napari's ``get_reader``
returns None or a function and never raises; the reader function returns layers (a list) and never raises."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest

from _badinput import checksum
from napari_spatial_impute.errors import InputError

RNG_SEEDS = range(4)
ALPHABET = string.ascii_letters + string.digits + "=_-.,[]{}\" '\\:/+eE\t"
VALUES = ["1", "-1", "0", "2.5", "1e400", "NaN", "Infinity", "-Infinity", "true", "null", "[]", "[1]", "[1,2]",
          "[512,256]", '"x"', "{}", "abc", "", "=", "1=2", "0x10", "1_000"]


def _random_items(rng: np.random.Generator, names: list[str]) -> list[str]:
    items = []
    for _ in range(int(rng.integers(0, 4))):
        kind = rng.integers(0, 4)
        if kind == 0:  # pure noise
            items.append("".join(rng.choice(list(ALPHABET), int(rng.integers(0, 12)))))
        else:  # a real or near-real name with an odd value
            name = str(rng.choice(names + ["seed", "device", "kk", "K", "k ", "cluster_key", "tile_um"]))
            items.append(f"{name}={rng.choice(VALUES)}")
    return items


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_parameter_parser_and_validation_raise_only_input_errors(seed):
    from napari_spatial_impute.models.params_spec import param_specs, validate_params
    from napari_spatial_impute.params import parse_key_values

    rng = np.random.default_rng(seed)
    methods = ["knn", "stimpute", "spaim", "stco"]
    names = sorted({n for m in methods for n in param_specs(m)})
    for _ in range(300):
        items = _random_items(rng, names)
        method = str(rng.choice(methods + ["KNN", "nope"]))
        seed_value = rng.choice([0, 1, -1, 2**40, 2.5, "3", None, True])
        try:
            params = parse_key_values(items)
            out = validate_params(method, params, seed=seed_value)
        except InputError as err:
            assert str(err) and "\n" not in str(err)
            continue
        specs = param_specs(method)
        assert set(out) <= set(specs)
        json.dumps(out, default=list)  # validated values are plain, storable values


def _garbage_files(rng: np.random.Generator, folder: Path, real: list[Path]) -> list[Path]:
    """Files a user might drop on napari: random bytes with known suffixes, truncated real files, instrument
    folders holding garbage."""
    out = []
    for i, suffix in enumerate([".h5ad", ".csv", ".tif", ".jpg", ".png", ".zarr", ".txt", ".parquet", ""]):
        p = folder / f"noise{i}{suffix}"
        p.write_bytes(rng.bytes(int(rng.integers(0, 2000))))
        out.append(p)
    for i, src in enumerate(real):
        raw = src.read_bytes()
        for j, frac in enumerate(rng.uniform(0.05, 0.95, 2)):
            p = folder / f"cut{i}_{j}{src.suffix}"
            p.write_bytes(raw[: int(len(raw) * frac)])
            out.append(p)
        flipped = bytearray(raw)
        for pos in rng.integers(0, len(raw), 20):
            flipped[pos] ^= 0xFF
        p = folder / f"flip{i}{src.suffix}"
        p.write_bytes(bytes(flipped))
        out.append(p)
    for name, files in {"xenium": ["experiment.xenium", "cells.csv.gz", "cell_feature_matrix.h5"],
                        "cosmx": ["x_exprMat_file.csv", "x_metadata_file.csv"],
                        "merscope": ["cell_by_gene.csv", "cell_metadata.csv"],
                        "st": ["ST-cnts/A1.tsv.gz", "ST-spotfiles/A1_selection.tsv", "ST-imgs/A1_x.jpg"]}.items():
        d = folder / name
        for f in files:
            (d / f).parent.mkdir(parents=True, exist_ok=True)
            (d / f).write_bytes(rng.bytes(int(rng.integers(0, 500))))
        out.append(d)
    return out


@pytest.mark.parametrize("seed", RNG_SEEDS[:2])
def test_napari_reader_never_raises(tmp_path, seed, sample_paths, monkeypatch):
    import napari_spatial_impute._reader as reader

    monkeypatch.setattr(reader, "_notify", lambda *a, **k: None)
    rng = np.random.default_rng(seed)
    for path in _garbage_files(rng, tmp_path, [sample_paths[0]]):
        fn = reader.get_reader(str(path))
        assert fn is None or callable(fn)
        if fn is not None:
            layers = fn(str(path))
            assert isinstance(layers, list)
    assert reader.get_reader(["a", "b"]) is None and reader.get_reader(str(tmp_path / "missing.h5ad")) in (
        None, reader.read_layers)


@pytest.mark.parametrize("seed", RNG_SEEDS[:2])
def test_api_readers_raise_only_input_errors(tmp_path, seed, sample_paths):
    from napari_spatial_impute.io.anndata_io import read_reference, read_spatial
    from napari_spatial_impute.io.detect import read_sample
    from napari_spatial_impute.io.images import read_plain_image

    rng = np.random.default_rng(seed)
    for path in _garbage_files(rng, tmp_path, [sample_paths[0]]):
        for fn in (read_spatial, read_reference, read_plain_image, read_sample):
            try:
                fn(path)
            except InputError:
                pass


# ---- the CLI's argv: random numeric flags and --param KEY=VALUE through main(argv) ---------------------------
NUMBERS = ["0", "-1", "1", "2", "3", "7", "25", "nan", "inf", "-inf", "1e400", "2.5", "", "x", "0x10", "1_000",
           "99999999999999999999", "-99999999999"]
PARAM_VALUES = ["0", "-1", "1", "2", "5", "nan", "inf", "-inf", "1e400", "true", "false", "none", "null", "[]", "[1]",
                "[0,0]", "[8,4]", "abc", "", "2.5", "1e-30", "0.5", "99999999999", "knn", "blend", "similarity"]
METHODS = ["knn", "auto", "stimpute", "spaim", "KNN", "nope", "", "stco"]
#: added (unless the generator drew the same name) so that a valid combination runs in a fraction of a second
CHEAP = {"stimpute": {"ae_epochs": "1", "gnn_epochs": "1", "rounds": "1", "reliability": "false",
                      "gene_embeddings": "none", "max_train_cells": "200"},
         "spaim": {"epochs": "1", "n_models": "1", "expected_r": "false", "hidden": "[16,8]", "style_dim": "4"},
         "auto": {"candidates": "knn", "folds": "2", "cv_cells": "100"},
         "knn": {"cv_cells": "100"}}
N_CANDIDATES = 20  # reference genes the fuzzed spatial panel lacks


@pytest.fixture(scope="module")
def cli_files(osmfish, tmp_path_factory):
    """300 cells of the bundled pair; the spatial panel lacks 20 of the reference's 33 genes, so --n-top-genes
    and --all choose among them."""
    spatial, reference = osmfish
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("cli_fuzz")
    sp = spatial[np.sort(rng.choice(spatial.n_obs, 300, replace=False))]
    sp[:, sp.var_names[:-N_CANDIDATES]].copy().write_h5ad(folder / "spatial.h5ad")
    reference[np.sort(rng.choice(reference.n_obs, 400, replace=False))].copy().write_h5ad(folder / "reference.h5ad")
    return folder / "spatial.h5ad", folder / "reference.h5ad"


def _flag_value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def _random_impute_argv(rng: np.random.Generator, files, out: Path) -> list[str]:
    from napari_spatial_impute.models.params_spec import param_specs

    method = str(rng.choice(METHODS + ["knn", "auto", "stimpute", "spaim"]))  # mostly real ones
    argv = ["impute", *map(str, files), "--method", method, "--quiet", "--device", "cpu"]
    if rng.random() < 0.3:
        argv += ["--cv", str(rng.choice(NUMBERS + ["2", "3"])), "--metrics", str(out / "m.json")]
    else:
        argv += ["--out", str(out / "o.h5ad")]
    if rng.random() < 0.4:
        argv += ["--genes", "Gad2,Vip"]
    elif rng.random() < 0.2:
        argv += ["--all"]
    for flag, fine in (("--chunk-size", ["1", "64", "1_000"]), ("--seed", ["0", "7", "4294967295"]),
                       ("--n-top-genes", ["25", "2000"])):
        if rng.random() < 0.35:  # half of them a value the flag takes
            argv += [flag, str(rng.choice(NUMBERS if rng.random() < 0.5 else fine))]
    try:
        names = sorted(param_specs(method))
    except InputError:  # an unknown method: any name
        names = ["k"]
    drawn = []
    for _ in range(int(rng.choice([0, 0, 1, 2]))):
        name = str(rng.choice(names + ["seed", "device", "kk", "tile_um", "cluster_key", "folds"]))
        drawn.append(name)
        argv += ["--param", f"{name}={rng.choice(PARAM_VALUES)}"]
    for name, value in CHEAP.get(method.lower(), {}).items():
        if name not in drawn:
            argv += ["--param", f"{name}={value}"]
    return argv


def _random_histology_argv(rng: np.random.Generator, folder: Path, out: Path) -> list[str]:
    """``histology train`` on a section whose files do not exist: whatever the flags, the answer is exit 2 (a bad
    value, or then the missing file), and the parameters are checked before it."""
    missing = [str(folder / n) for n in ("C9.tsv.gz", "C9_selection.tsv", "C9.jpg")]
    argv = ["histology", "train", "--section", *missing, "--out", str(out / "model"), "--device", "cpu", "--quiet"]
    for flag in ("--epochs", "--seed", "--n-genes"):
        if rng.random() < 0.5:
            argv += [flag, str(rng.choice(NUMBERS))]
    for _ in range(int(rng.integers(0, 3))):
        name = str(rng.choice(["tile_um", "patch_px", "patch_um", "tta", "knn_k", "dropout", "temperature", "k",
                               "backbone", "stain", "n_views", "lr", "seed"]))
        argv += ["--param", f"{name}={rng.choice(PARAM_VALUES)}"]
    return argv


def _run_cli(argv: list[str], capsys) -> tuple[int, str]:
    import traceback

    from napari_spatial_impute.cli import main

    try:
        rc = main(argv)
    except SystemExit as stop:  # argparse refusing a flag's value: usage + "error: ...", exit 2
        rc = stop.code
    except BaseException:  # noqa: BLE001 - any other exception is the bug this test looks for
        pytest.fail(f"{' '.join(argv[1:])}\n{traceback.format_exc()}")
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("seed", range(3))
def test_cli_argv_fuzz_exit_codes_and_nothing_written(seed, cli_files, tmp_path, capsys):
    """Random numeric flags and --param KEY=VALUE through the CLI's main(argv): exit 0 with exactly the outputs
    asked for, or exit 2 with one "error:" message and nothing written; never a traceback; the inputs unchanged."""
    rng = np.random.default_rng(1000 + seed)
    sums = [checksum(p) for p in cli_files]
    seen = {0: 0, 2: 0}
    for i in range(72):
        out = tmp_path / f"run{i}"
        out.mkdir()
        if i % 4 == 3:
            argv = _random_histology_argv(rng, tmp_path, out)
        else:
            argv = _random_impute_argv(rng, cli_files, out)
        rc, err = _run_cli(argv, capsys)
        written = sorted(p.name for p in out.iterdir())
        what = f"{' '.join(argv[1:])}\n{err[-1500:]}"
        assert "Traceback" not in err, what
        assert rc in (0, 2), what
        if rc == 2:
            assert "error: " in err and written == [], what
        else:
            assert argv[0] == "impute" and written == sorted(Path(argv[argv.index(f) + 1]).name
                                                             for f in ("--out", "--metrics") if f in argv), what
        seen[rc] += 1
    assert [checksum(p) for p in cli_files] == sums
    assert seen[0] >= 2 and seen[2] >= 20, seen  # both kinds were exercised


# Two more the fuzz test found, fixed at the root: auto's inner `folds` beside the CV's own folds (was a
# TypeError), and --n-top-genes ≤ 0 (0 → no genes, -1 → all but one: a negative slice)
def test_auto_inner_folds_with_cv(cli_files, tmp_path, capsys):
    rc, err = _run_cli(["impute", *map(str, cli_files), "--method", "auto", "--cv", "2", "--metrics",
                        str(tmp_path / "m.json"), "--quiet", "--device", "cpu", "--param", "candidates=knn",
                        "--param", "folds=2"], capsys)
    assert rc == 0, err
    assert json.loads((tmp_path / "m.json").read_text())["pcc_median"] > 0.05


@pytest.mark.parametrize("flag", ["--n-top-genes", "--chunk-size"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_counts_that_must_be_positive_are_refused(cli_files, tmp_path, capsys, flag, value):
    rc, err = _run_cli(["impute", *map(str, cli_files), "--method", "knn", "--out", str(tmp_path / "o.h5ad"),
                        "--quiet", "--device", "cpu", flag, value], capsys)
    assert rc == 2 and flag in err and "≥ 1" in err and "Traceback" not in err
    assert not (tmp_path / "o.h5ad").exists()


def test_few_candidate_genes_still_get_chosen(osmfish):
    """scanpy's seurat_v3 (scikit-misc's loess) fails on a handful of genes: the seurat flavour takes over."""
    from napari_spatial_impute.preprocessing import select_variable_genes

    _, reference = osmfish
    genes = list(reference.var_names[:8])
    chosen, how = select_variable_genes(reference[:500].copy(), genes, 3)
    assert len(chosen) == 3 and set(chosen) <= set(genes) and "top 3 of 8" in how


# ---- what the fuzz test found, fixed at the root (declared ranges; the code paths that crashed) ------------------
@pytest.mark.parametrize(("method", "param", "words"), [
    ("knn", "cv_cells=-5", "cv_cells=-5 is not valid"),  # was: ValueError "negative dimensions" after reading
    ("knn", "cv_cells=0", "int ≥ 4"),  # was: expected r from an inner CV on no cells
    ("auto", "cv_cells=-3", "cv_cells=-3 is not valid"),
    ("auto", "folds=1", "folds=1 is not valid"),  # was: silently 2
    ("auto", "screen_folds=0", "screen_folds=0 is not valid"),  # was: ValueError "need at least one array"
    ("stimpute", "gnn_cells=0", "gnn_cells=0 is not valid"),  # was: the GNN silently never trained
])
def test_found_ranges_are_refused_before_reading(cli_files, tmp_path, capsys, monkeypatch, method, param, words):
    import napari_spatial_impute.io.anndata_io as io

    monkeypatch.setattr(io, "_read", lambda *a, **k: pytest.fail("inputs were read before the parameters"))
    rc, err = _run_cli(["impute", *map(str, cli_files), "--method", method, "--genes", "Gad2,Vip", "--quiet",
                        "--out", str(tmp_path / "o.h5ad"), "--param", param], capsys)
    assert rc == 2 and words in err and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_auto_screen_covering_every_fold_runs(cli_files, tmp_path, capsys):
    """screen_folds ≥ the inner folds (capped by the measured genes) screens on every fold: nothing left to run
    afterwards (was: ValueError from concatenating no folds)."""
    rc, err = _run_cli(["impute", *map(str, cli_files), "--method", "auto", "--genes", "Gad2,Vip", "--quiet",
                        "--device", "cpu", "--out", str(tmp_path / "o.h5ad"), "--param", "screen_folds=99",
                        "--param", "candidates=knn,stimpute", "--param", "folds=2", "--param", "cv_cells=100"], capsys)
    assert rc == 0, err
    import anndata as ad

    info = json.loads(ad.read_h5ad(tmp_path / "o.h5ad").uns["napari_spatial_impute"]["model_info"])
    # every input gene screened: the 13 measured genes less the 2 named as targets
    assert info["inner_folds"] == 2 and info["screen"]["stimpute"]["genes"] == 11


def test_stimpute_without_gnn_epochs_over_two_rounds(cli_files, tmp_path, capsys):
    """gnn_epochs=0 (declared valid) with 2 rounds: the autoencoder's M-step runs on the untrained GNN
    (was: UnboundLocalError)."""
    rc, err = _run_cli(["impute", *map(str, cli_files), "--method", "stimpute", "--genes", "Gad2", "--quiet",
                        "--device", "cpu", "--out", str(tmp_path / "o.h5ad"), "--param", "gnn_epochs=0",
                        "--param", "rounds=2", "--param", "ae_epochs=1", "--param", "gene_embeddings=none",
                        "--param", "reliability=false"], capsys)
    assert rc == 0 and (tmp_path / "o.h5ad").is_file(), err
