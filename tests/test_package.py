import subprocess
import sys


def _imported_after(modules: str, watched: tuple[str, ...]) -> list[str]:
    """Which of ``watched`` a fresh interpreter has in sys.modules after importing ``modules``."""
    code = f"import sys; import {modules}; print(','.join(m for m in {watched!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    return [m for m in out.split(",") if m]


def test_import_is_light():
    """Importing the package (what napari does at start-up) pulls in no torch, napari or Qt."""
    heavy = ("torch", "napari", "PyQt6", "qtpy", "anndata", "scanpy")
    assert _imported_after("napari_spatial_impute, napari_spatial_impute.cli", heavy) == []


def test_reader_detection_is_light(tmp_path):
    """npe2 asks ``get_reader`` about every path dropped on napari: deciding reads names (an .h5ad's group names,
    an instrument folder's file names) and imports no pandas / anndata / torch; opening comes later."""
    (tmp_path / "x.h5ad").write_bytes(b"not hdf5")
    xenium = tmp_path / "xenium_out"
    xenium.mkdir()
    (xenium / "cells.csv.gz").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    code = ("import sys; from napari_spatial_impute._reader import get_reader; "
            f"print(get_reader({str(tmp_path / 'x.h5ad')!r}).__name__, get_reader({str(xenium)!r}).__name__, "
            f"get_reader({str(tmp_path / 'empty')!r}), "
            "*[m for m in ('pandas', 'anndata', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["read_layers", "read_layers", "None"]


def test_core_modules_do_not_import_qt():
    core = ("napari_spatial_impute.api, napari_spatial_impute.models.knn, napari_spatial_impute.metrics, "
            "napari_spatial_impute.io, napari_spatial_impute.layers")
    assert _imported_after(core, ("napari", "PyQt6", "qtpy", "magicgui")) == []


def test_manifest_validates():
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("napari-spatial-impute")
    assert pm.name == "napari-spatial-impute"
    assert {w.display_name for w in pm.contributions.widgets} >= {"Impute genes", "Predict genes from H&E"}
    ids = {c.id for c in pm.contributions.commands}
    for c in pm.contributions.commands:
        assert c.id.startswith("napari-spatial-impute.")
    assert "napari-spatial-impute.sample_osmfish" in ids


def test_device_auto_is_available():
    from napari_spatial_impute.device import available_devices, resolve_device

    assert resolve_device("auto") in available_devices()
    assert resolve_device("cpu") == "cpu"


def test_citation_cff_loads_and_matches_the_package():
    """CITATION.cff is valid YAML, its version is the package's (one place: ``__version__``), and it cites every
    method the package re-implements with full author lists and a DOI or code repository."""
    from pathlib import Path

    import pytest

    yaml = pytest.importorskip("yaml")
    import napari_spatial_impute

    cff = yaml.safe_load((Path(__file__).resolve().parents[1] / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert str(cff["version"]) == napari_spatial_impute.__version__
    refs = {r["notes"].split(" (")[0]: r for r in cff["references"]}
    for method in ("stImpute", "SpaIM", "STco", "ESM-2 protein embeddings"):
        ref = refs[method]
        assert ref["title"] and (ref.get("doi") or ref.get("repository-code"))
        assert all(a.get("family-names") and a.get("given-names") for a in ref["authors"])  # no "et al."
    assert len(refs["SpaIM"]["authors"]) == 8 and len(refs["STco"]["authors"]) == 3
