import sys
from pathlib import Path

import numpy as np

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


def _entry(kind: str, name: str, size: int, age_s: float) -> Path:
    """A cache file of ``size`` bytes last used ``age_s`` seconds ago."""
    import os
    import time

    path = cache_dir(kind) / name
    path.write_bytes(b"x" * size)
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_prune_evicts_least_recently_used_to_the_cap_and_never_esm2(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CACHE", str(tmp_path))
    old = _entry("features", "old.npz", 400, 300)
    used = _entry("patches", "used.npz", 400, 200)
    new = _entry("features", "new.npz", 400, 100)
    esm = _entry("esm2", "gene.npy", 5000, 1000)
    cache.touch(used)  # a cache hit: now the most recently used
    assert cache.prune(limit=900) == 400
    assert not old.exists() and used.exists() and new.exists() and esm.exists()
    assert cache.prune(limit=100, keep=new) == 400  # the file just written goes last
    assert new.exists() and not used.exists()
    assert cache.usage() == {"esm2": (1, 5000), "features": (1, 400), "patches": (0, 0)}


def test_store_npz_round_trips_and_the_cap_comes_from_the_environment(tmp_path, monkeypatch):
    import numpy as np
    import pytest

    from napari_spatial_impute.errors import InputError

    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CACHE", str(tmp_path))
    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CACHE_MAX_GB", "1")
    assert cache.max_bytes() == 10**9
    path = cache.store_npz(cache_dir("features") / "a.npz", features=np.arange(6.0).reshape(2, 3))
    with np.load(path) as z:
        assert z["features"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert not list(path.parent.glob("*partial*"))
    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CACHE_MAX_GB", "0")  # keeps nothing
    cache.store_npz(cache_dir("features") / "b.npz", features=np.zeros(3))
    assert cache.usage()["features"] == (0, 0)
    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CACHE_MAX_GB", "inf")  # no cap
    assert cache.max_bytes() == float("inf")
    for bad in ("lots", "nan", "-1"):
        monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CACHE_MAX_GB", bad)
        with pytest.raises(InputError, match="MAX_GB"):
            cache.max_bytes()
    # a bad cap does not stop the work the cache serves: the write warns
    with pytest.warns(UserWarning, match="MAX_GB"):
        cache.store_npz(cache_dir("features") / "c.npz", features=np.zeros(3))


def test_clear_and_prune_touch_only_the_package_kinds(tmp_path, monkeypatch):
    import os
    import time

    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CACHE", str(tmp_path))  # a shared folder, say ~/.cache
    other = tmp_path / "someone-else" / "model.bin"
    other.parent.mkdir()
    other.write_bytes(b"x" * 100)
    feats = _entry("features", "f.npz", 100, 10)
    esm = _entry("esm2", "g.npy", 100, 10)
    stale = cache_dir("patches") / "p.123.456.partial.npz"  # left by a process that died two hours ago
    stale.write_bytes(b"x" * 100)
    t = time.time() - 7200
    os.utime(stale, (t, t))
    fresh = cache_dir("patches") / "q.123.789.partial.npz"  # another process writing now
    fresh.write_bytes(b"x" * 100)
    assert set(cache.usage()) == {"features", "esm2", "patches"}
    cache.prune(limit=10**9)
    assert not stale.exists() and fresh.exists() and feats.exists()
    assert cache.clear() == (2, 200)  # default: patches and features (the fresh partial file included)
    assert esm.exists() and other.exists()
    assert cache.clear(["esm2"]) == (1, 100) and other.exists()


def test_a_damaged_entry_is_removed_and_made_again(tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CACHE", str(tmp_path))
    path = cache.entry("features", "k.npz")
    assert cache.load_npz(path, "features") is None  # missing
    cache.store_npz(path, features=np.arange(4.0))
    assert cache.load_npz(path, "features")[0].tolist() == [0, 1, 2, 3]
    path.write_bytes(path.read_bytes()[:20])  # truncated by a crash or a full disk
    assert cache.load_npz(path, "features") is None and not path.exists()


def test_cli_shows_and_clears_the_cache(tmp_path, monkeypatch, capsys):
    from napari_spatial_impute.cli import main

    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CACHE", str(tmp_path))
    _entry("features", "f.npz", 3_000_000, 10)
    _entry("esm2", "g.npy", 1000, 10)
    assert main(["cache"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out and "features" in out and "3.0 MB" in out and "5.00 GB" in out
    assert main(["cache", "--clear", "nonsense"]) == 2
    assert "no kind nonsense" in capsys.readouterr().err
    assert main(["cache", "--clear", "patches"]) == 0  # nothing cached of that kind: nothing to do
    assert "removed 0 files" in capsys.readouterr().out
    assert main(["cache", "--clear", "features"]) == 0
    assert "removed 1 files (3.0 MB)" in capsys.readouterr().out
    assert cache.usage() == {"esm2": (1, 1000), "features": (0, 0)}
    assert main(["cache", "--clear"]) == 0  # patches and features: the ESM-2 embeddings stay
    assert cache.usage() == {"esm2": (1, 1000), "features": (0, 0)}
    assert main(["cache", "--clear", "esm2"]) == 0
    assert cache.usage() == {"esm2": (0, 0), "features": (0, 0)}


def test_a_failed_cache_write_warns_and_leaves_nothing(tmp_path, monkeypatch):
    import numpy as np
    import pytest

    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CACHE", str(tmp_path))

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.warns(UserWarning, match="No space left on device"):
        cache.store_npz(cache_dir("features") / "c.npz", features=np.zeros(3))
    assert not list((tmp_path / "features").iterdir())


def test_restained_features_are_cached_per_batch_size(tmp_path, monkeypatch):
    """A view's re-staining draws run through its batches in turn, so the features depend on the batch size: a
    cache entry written with one batch size is not served to another (the model would depend on what ran
    before)."""
    import torch

    from napari_spatial_impute.models.stco.features import features_steps
    from napari_spatial_impute.progress import run_to_end

    monkeypatch.setenv("NAPARI_SPATIAL_IMPUTE_CACHE", str(tmp_path / "cache"))

    class Mean(torch.nn.Module):
        out_dim = 3

        def forward(self, x):
            return x.mean(dim=(2, 3))

    rng = np.random.default_rng(0)
    patches = rng.integers(60, 230, (12, 16, 16, 3), dtype=np.uint8)

    def feats(batch, use_cache=True):
        return run_to_end(features_steps(Mean(), patches, [0, 1], device="cpu", batch=batch, augment=True,
                                         backbone_key="mean-test", use_cache=use_cache))

    fresh4, fresh8 = feats(4, False), feats(8, False)
    assert not np.allclose(fresh4[1], fresh8[1])  # the re-stained view differs with the batch size
    np.testing.assert_array_equal(fresh4[0], fresh8[0])  # the plain view does not
    np.testing.assert_array_equal(feats(4), fresh4)
    np.testing.assert_array_equal(feats(8), fresh8)  # not batch 4's entry
    np.testing.assert_array_equal(feats(8), fresh8)  # served from its own entry
