import sys
from pathlib import Path

from napari_spatial_impute import cache
from napari_spatial_impute.cache import cache_dir


def test_env_override_wins_and_folder_is_created(tmp_path, monkeypatch):
    root = tmp_path / "my cache"
    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CACHE", str(root))
    assert cache_dir() == root
    sub = cache_dir("esm2")
    assert sub == root / "esm2"
    assert sub.is_dir()


def test_platform_default_without_override(tmp_path, monkeypatch):
    monkeypatch.delenv("NAPARI_SPATIAL_IMPUTE_CACHE", raising=False)
    monkeypatch.setattr(cache, "_user_cache_root", lambda: tmp_path / "platform" / "napari-spatial-impute")
    assert cache_dir("patches") == tmp_path / "platform" / "napari-spatial-impute" / "patches"
    assert (tmp_path / "platform" / "napari-spatial-impute" / "patches").is_dir()


def test_fallback_without_platformdirs_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "platformdirs", None)  # import fails → built-in fallback
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    root = cache._user_cache_root()
    if sys.platform == "win32":
        assert root == tmp_path / "local" / "napari-spatial-impute" / "Cache"
    elif sys.platform == "darwin":
        assert root == Path.home() / "Library" / "Caches" / "napari-spatial-impute"
    else:
        assert root == tmp_path / "xdg" / "napari-spatial-impute"


def test_platformdirs_default_names_the_package(monkeypatch):
    monkeypatch.delenv("NAPARI_SPATIAL_IMPUTE_CACHE", raising=False)
    assert cache._user_cache_root().name in ("napari-spatial-impute", "Cache")
