"""GPU out of memory → smaller chunks → CPU with a warning (device.chunks_with_fallback), tested with injected
allocation errors; the kNN neighbour search, stImpute's and SpaIM's prediction use it and give the same numbers
after halving or on the CPU."""

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
    # on the CPU the starting chunk size again (host memory is not the GPU's), not one row at a time
    assert calls[4:] == [(0, 8, "cpu"), (8, 10, "cpu")]


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
    # one chunk of all 200 queries (the bank is small), halved on each OOM (200 → 100 → 50), then the four
    # 50-row chunks at the size that fit: the chunk never grows back, nothing is searched twice once it fits
    assert seen == [200, 100, 50, 50, 50, 50]
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


# --- the models' batched device prediction (stImpute, SpaIM) ------------------------------------------------

GENES = ["Gad2", "Vip", "Plp1"]


@pytest.fixture(scope="module")
def small_data(osmfish):
    import napari_spatial_impute as nsi

    spatial, reference = osmfish
    cells = np.sort(np.random.default_rng(0).choice(spatial.n_obs, 400, replace=False))
    data, _ = nsi.prepare(spatial[cells].copy(), reference, GENES)
    return data


@pytest.fixture(scope="module")
def stimpute_model(small_data):
    from napari_spatial_impute.models.stimpute import STImputer

    # chunk_mb=1: the GNN runs in batches of ~19 cells, so the prediction has many chunks
    return STImputer(k=10, gene_embeddings="none", rounds=1, ae_epochs=2, gnn_epochs=1, hidden=8, latent=8,
                     reliability=False, max_train_cells=300, chunk_mb=1, seed=0, device="cpu").fit(small_data)


def test_stimpute_gnn_batches_halve_on_oom_and_stay_small(stimpute_model, small_data, monkeypatch):
    from napari_spatial_impute.models.stimpute import prediction

    expected = stimpute_model.predict(small_data)
    chunk = stimpute_model._chunk_cells(len(stimpute_model.genes_))
    assert chunk > 8
    real, sizes = prediction.GraphRows.forward, []

    def forward(self, gnn, x):
        sizes.append(x.shape[1])  # (genes, cells, features)
        if x.shape[1] > 8:
            raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 2 GiB")
        return real(self, gnn, x)

    monkeypatch.setattr(prediction.GraphRows, "forward", forward)
    monkeypatch.setattr(prediction, "_BLOCK_CELLS", 2 * chunk)  # several blocks of cells (one on a real slide)
    got = stimpute_model.predict(small_data)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    failed = [s for s in sizes if s > 8]
    halvings = [chunk >> i for i in range(8) if chunk >> i > 8]
    assert failed == halvings  # halved in the first block only: later blocks start from the size that fitted
    assert sum(s for s in sizes if s <= 8) == small_data.n_cells  # every cell predicted exactly once


def test_stimpute_falls_back_to_cpu_when_the_gpu_is_full(stimpute_model, small_data, monkeypatch):
    """The model's device is an accelerator where every allocation fails: the prediction finishes on the CPU,
    with a warning, with the CPU's numbers, and never goes back to the accelerator once it has left it."""
    import torch

    from napari_spatial_impute.models.stimpute import prediction

    expected = stimpute_model.predict(small_data)
    real, devices = prediction._Placement._build, []

    def build(self, device, what):
        devices.append(device)
        if device != "cpu":
            raise _oom()
        return real(self, device, what)

    monkeypatch.setattr(prediction._Placement, "_build", build)
    monkeypatch.setattr(stimpute_model, "_torch", lambda: (torch, torch.device("cuda")))
    with pytest.warns(RuntimeWarning, match="continuing on the CPU"):
        got = stimpute_model.predict(small_data)
    np.testing.assert_array_equal(got, expected)
    first_cpu = devices.index("cpu")
    assert first_cpu > 0 and set(devices[:first_cpu]) == {"cuda"} and set(devices[first_cpu:]) == {"cpu"}
    assert devices.count("cpu") == 2  # the autoencoder and the GNN's parts, each made once on the CPU


@pytest.fixture(scope="module")
def spaim_model(small_data):
    from napari_spatial_impute.models.spaim import SpaIMImputer

    return SpaIMImputer(hidden=(32, 16), style_dim=8, epochs=2, n_models=2, batch_size=8, anchor_weight=0.5,
                        seed=0, device="cpu").fit(small_data)


def test_spaim_prediction_halves_then_falls_back_to_cpu(spaim_model, small_data, monkeypatch):
    import torch

    from napari_spatial_impute.models.spaim import SpaIMImputer

    genes = list(small_data.reference_genes[:20])  # 20 reference genes: three batches of 8
    expected = spaim_model.predict(small_data)
    expected_many, _ = spaim_model.raw_predict(genes)
    real, calls = SpaIMImputer._raw, []

    def raw(self, rows, dev):
        calls.append((len(rows), str(dev)))
        if len(rows) > 3:
            raise MemoryError
        return real(self, rows, dev)

    monkeypatch.setattr(SpaIMImputer, "_raw", raw)
    np.testing.assert_allclose(spaim_model.predict(small_data), expected, rtol=1e-5, atol=1e-6)
    got_many, _ = spaim_model.raw_predict(genes)  # the inner CV's path: one batch, same fallback
    np.testing.assert_allclose(got_many, expected_many, rtol=1e-5, atol=1e-6)
    assert calls[0] == (3, "cpu") and (20, "cpu") in calls and max(n for n, _ in calls if n <= 3) == 3

    def raw_gpu_full(self, rows, dev):
        calls.append((len(rows), str(dev)))
        if str(dev) != "cpu":
            raise _oom()
        return real(self, rows, dev)

    calls.clear()
    monkeypatch.setattr(SpaIMImputer, "_raw", raw_gpu_full)
    monkeypatch.setattr(spaim_model, "_torch_device", lambda: torch.device("cuda"))
    with pytest.warns(RuntimeWarning, match="continuing on the CPU"):
        got = spaim_model.predict(small_data)
    np.testing.assert_array_equal(got, expected)
    assert [c[0] for c in calls if c[1] == "cuda"] == [3, 3, 2, 1]  # batch 8 (3 genes) halved to 1, then the CPU
    assert [c for c in calls if c[1] == "cpu"] == [(3, "cpu")]  # the CPU at the starting batch size again


def test_the_device_is_described_for_people(osmfish):
    """The CLI's last line and the widget's status say what ran the model: "cpu (N threads)" / "cuda (<GPU>)"."""
    import torch

    import napari_spatial_impute as nsi
    from napari_spatial_impute.device import describe_device

    n = torch.get_num_threads()
    assert describe_device("cpu") == f"cpu ({n} thread{'s' if n > 1 else ''})"
    assert describe_device("mps") == "mps"
    spatial, reference = osmfish
    info = nsi.impute(spatial, reference, genes=["Gad2"], device="cpu").uns["napari_spatial_impute"]
    assert info["device"] == "cpu" and info["device_detail"].startswith("cpu (")
