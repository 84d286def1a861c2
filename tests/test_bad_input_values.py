"""Family 1 — silently wrong results: numbers that cannot be counts are refused at every entry point (CLI exit 2,
API InputError, the widget's generator returns a Failure), with nothing written and the input untouched.

Inputs are mutated copies of the bundled osmFISH + Allen pair (real data)."""

from __future__ import annotations

import numpy as np
import pytest

from _badinput import checksum, cli, dense, leftovers, log_normalised
from napari_spatial_impute.errors import InputError


def _mutate(adata, how: str):
    a = adata.copy()
    X = dense(a.X)
    if how == "zero":
        a.X = np.zeros_like(X, dtype=np.float32)
    elif how == "log":  # log1p(CP10k), scanpy's flag set
        a.X = log_normalised(X)
        a.uns["log1p"] = {"base": None}
    elif how == "log_noflag":
        a.X = log_normalised(X)
    elif how == "beyond_float32":
        X = X.astype(np.float64)
        X[0, 0] = 1e300
        a.X = X
    elif how == "nan":
        X = X.astype(np.float32)
        X[3, 2] = np.nan
        a.X = X
    elif how == "negative":  # sc.pp.scale output
        a.X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    elif how == "raw_only":  # counts only in .raw, log values in X
        a.raw = a.copy()
        a.X = log_normalised(X)
        a.uns["log1p"] = {"base": None}
    return a


CASES = [  # (side, mutation, words the message must contain)
    ("spatial", "zero", "all zeros"),
    ("reference", "zero", "all zeros"),
    ("spatial", "log", "no raw counts"),
    ("reference", "log", "no raw counts"),
    ("reference", "log_noflag", "log-normalised"),
    ("spatial", "beyond_float32", "float32"),
    ("reference", "beyond_float32", "float32"),
    ("spatial", "nan", "NaN"),
    ("reference", "negative", "negative"),
]


@pytest.fixture
def files(osmfish, tmp_path):
    spatial, reference = osmfish
    paths = {"spatial": tmp_path / "spatial.h5ad", "reference": tmp_path / "reference.h5ad"}
    spatial.write_h5ad(paths["spatial"])
    reference.write_h5ad(paths["reference"])
    return paths


@pytest.mark.parametrize("side,how,words", CASES)
def test_cli_refuses_values_that_are_not_counts(osmfish, files, tmp_path, capsys, side, how, words):
    spatial, reference = osmfish
    bad = _mutate(spatial if side == "spatial" else reference, how)
    files[side] = tmp_path / f"bad_{side}.h5ad"
    bad.write_h5ad(files[side])
    sums = {k: checksum(p) for k, p in files.items()}
    before = {p.name for p in tmp_path.iterdir()}
    rc, err = cli(["impute", files["spatial"], files["reference"], "--genes", "Gad2", "--out", tmp_path / "o.h5ad",
                   "--quiet"], capsys)
    assert rc == 2, err
    assert words.lower() in err.lower() and side.split("_")[0] in err.lower()
    assert "Traceback" not in err and err.count("\n") == 1
    assert leftovers(tmp_path, before) == set()
    assert {k: checksum(p) for k, p in files.items()} == sums


@pytest.mark.parametrize("side,how,words", [
    ("spatial", "zero", "The spatial data is all zeros"),
    ("spatial", "beyond_float32", r"The spatial data holds values up to 1e\+300, beyond float32's range"),
    ("reference", "nan", "The reference holds NaN or infinite values"),
    ("reference", "negative", "The reference holds negative values"),
])
@pytest.mark.parametrize("declared", ["counts", "log1p"])
def test_declared_values_are_still_checked(osmfish, side, how, words, declared):
    """--spatial-values / --reference-values skip the recognition of counts, never the validity checks: each
    mutation is refused by its own check (they run before the log1p size cap, which would name "not log data")."""
    import napari_spatial_impute as nsi

    spatial, reference = osmfish
    inputs = {"spatial": spatial, "reference": reference}
    inputs[side] = _mutate(inputs[side], how)
    with pytest.raises(InputError, match=words):
        nsi.impute(inputs["spatial"], inputs["reference"], "knn", ["Gad2"], device="cpu",
                   **{f"{side}_values": declared})


def test_counts_declared_as_log1p_are_refused(osmfish):
    import napari_spatial_impute as nsi

    spatial, reference = osmfish
    with pytest.raises(InputError, match="not log data"):
        nsi.impute(spatial, reference, "knn", ["Gad2"], device="cpu", reference_values="log1p")


def test_counts_in_raw_are_found_and_give_the_counts_result(osmfish):
    """Counts kept only in .raw (X log-normalised): the counts are used — the same result as plain counts."""
    import napari_spatial_impute as nsi

    spatial, reference = osmfish
    plain = nsi.impute(spatial, reference, "knn", ["Gad2"], device="cpu", seed=0)
    raw = nsi.impute(spatial, _mutate(reference, "raw_only"), "knn", ["Gad2"], device="cpu", seed=0)
    np.testing.assert_array_equal(plain.X, raw.X)
    assert ".raw" in raw.uns["napari_spatial_impute"]["gene_match"]


def test_the_widget_generator_reports_a_failure_not_a_crash(osmfish):
    """The widgets run the API generator through ``guarded``: bad values come back as a Failure message."""
    from napari_spatial_impute import api
    from napari_spatial_impute._widgets._worker import Failure, guarded
    from napari_spatial_impute.progress import run_to_end

    spatial, reference = osmfish
    out = run_to_end(guarded(api.impute_steps, _mutate(spatial, "zero"), reference, "knn", ["Gad2"],
                             device="cpu"))
    assert isinstance(out, Failure) and "all zeros" in str(out.error)


def test_non_finite_predictions_are_never_handed_out():
    from napari_spatial_impute.io.results import check_finite

    check_finite(np.ones((3, 2), np.float32), "knn")
    with pytest.raises(InputError, match="non-finite"):
        check_finite(np.array([[1.0, np.nan]]), "knn")


def test_a_jobs_own_warnings_come_back_with_its_result_whatever_other_threads_do():
    """``guarded`` keeps the warnings this package raises during a job (for the dock's status line), in the job's
    thread only, even when another thread swaps ``warnings.showwarning`` meanwhile (napari's helper workers do);
    libraries' warnings are left to napari's notifications."""
    import threading
    import warnings

    from napari_spatial_impute._widgets._worker import Warned, guarded
    from napari_spatial_impute.models.stco.patches import check_pixel_size
    from napari_spatial_impute.progress import run_to_end

    def job():
        yield from ()
        other = threading.Thread(target=lambda: warnings.warn("another thread's", UserWarning, stacklevel=2))
        other.start()
        other.join()
        warnings.showwarning = warnings._showwarning_orig  # what an ending helper worker restores
        check_pixel_size(6.87, 0.687)  # this package: 10× coarser than the model, patches upsampled
        warnings.warn("a library's notice", FutureWarning, stacklevel=2)
        return 42

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run_to_end(guarded(job))
    assert isinstance(out, Warned) and out.value == 42
    assert len(out.warnings) == 2 and "magnification" in out.warnings[0] and "upsampled" in out.warnings[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert run_to_end(guarded(lambda: (yield from ()) or 7)) == 7  # no warning: the value as it was


def test_a_sections_name_is_kept_as_spelled_in_the_magnification_warning():
    """The warning names the section as the user spelled it ("P1_C6", not "P1_c6"), and "the image" as "The image"."""
    import warnings

    from napari_spatial_impute.models.stco.patches import check_pixel_size

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        check_pixel_size(6.87, 0.687, what="P1_C6")
        check_pixel_size(6.87, 0.687)
    texts = [str(r.message) for r in rec]
    assert texts[0].startswith("P1_C6 has 6.870 µm/px") and texts[1].startswith("P1_C6 has only 22 px")
    assert texts[2].startswith("The image has 6.870 µm/px")
