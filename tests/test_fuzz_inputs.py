"""Fuzzing the readers and the parameter parser with a seeded generator of bad inputs (no extra dependency;
runs in seconds). The contract: the parser and the API raise nothing but InputError; napari's ``get_reader``
returns None or a function and never raises; the reader function returns layers (a list) and never raises."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest

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
