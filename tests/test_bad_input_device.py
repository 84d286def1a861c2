"""GPU out of memory → smaller chunks → CPU with a warning (device.chunks_with_fallback), tested with injected
allocation errors; the kNN neighbour search uses it and gives the same neighbours after halving."""

from __future__ import annotations

import numpy as np
import pytest

from napari_spatial_impute.errors import InputError


def _oom():
    import torch

    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_chunks_halve_then_fall_back_to_cpu():
    from napari_spatial_impute.device import chunks_with_fallback

    calls = []

    def step(start, stop, device):
        calls.append((start, stop, device))
        if device != "cpu":
            raise _oom()
        return np.arange(start, stop)

    with pytest.warns(RuntimeWarning, match="continuing on the CPU"):
        parts = list(chunks_with_fallback(10, 8, "cuda", step, what="the test step"))
    assert np.concatenate([r for _, _, r in parts]).tolist() == list(range(10))
    assert [c[1] - c[0] for c in calls if c[2] == "cuda"] == [8, 4, 2, 1]  # halved down to one row
    assert all(c[2] == "cpu" for c in calls[4:])


def test_memory_errors_halve_the_chunk_and_other_errors_propagate():
    from napari_spatial_impute.device import chunks_with_fallback, is_out_of_memory

    sizes = []

    def step(start, stop, device):
        sizes.append(stop - start)
        if stop - start > 3:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: not enough memory")
        return stop - start

    assert sum(r for _, _, r in chunks_with_fallback(10, 10, "cpu", step)) == 10
    assert sizes[:3] == [10, 5, 2]
    assert is_out_of_memory(MemoryError()) and is_out_of_memory(_oom())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))

    def broken(start, stop, device):
        raise ValueError("not a memory problem")

    with pytest.raises(ValueError):
        list(chunks_with_fallback(4, 2, "cuda", broken))

    def always(start, stop, device):
        raise MemoryError

    with pytest.raises(InputError, match="Out of memory"):
        list(chunks_with_fallback(4, 2, "cpu", always))


def test_knn_neighbour_search_survives_injected_oom(monkeypatch):
    import torch

    from napari_spatial_impute.models.knn import cosine_topk
    from napari_spatial_impute.progress import run_to_end

    rng = np.random.default_rng(0)
    query, bank = rng.normal(size=(200, 12)).astype(np.float32), rng.normal(size=(300, 12)).astype(np.float32)
    expected = run_to_end(cosine_topk(query, bank, 5))
    real, seen = torch.topk, []

    def topk(x, k, dim=-1):
        seen.append(x.shape[0])
        if x.shape[0] > 50:
            raise _oom()
        return real(x, k, dim=dim)

    monkeypatch.setattr(torch, "topk", topk)
    got = run_to_end(cosine_topk(query, bank, 5))
    assert max(s for s in seen if s <= 50) <= 50 and seen[0] == 200
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
