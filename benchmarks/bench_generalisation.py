"""Benchmark: does H&E prediction travel? her2st patient C (sections C2–C6), no choice made on C6.

Stages (each appends to benchmarks/out/generalisation.json; the markdown tables go to stdout):

* ``select``  — hyper-parameters by leave-one-section-out **within C2–C5** (train on three, score the fourth):
  stain normalisation / augmentation on or off, head epochs, test-time views. The best mean top-50 Pearson of
  what the model predicts picks the defaults (C6 never seen).
* ``final``   — train C2–C5 → predict C6 and perturbed C6 copies (HED re-stain, JPEG quality 30, Gaussian
  blur σ = 2 px, 0.5× resolution), for every variant and the bundle's baselines (its feature kNN and colour
  ridge, unblended), seeds 0–2: mean ± sd, train and predict seconds.
* ``loso``    — leave-one-section-out within C2–C6 with the defaults (seed 0).
* ``context-select`` / ``context-final`` — the multi-scale context idea (``context=2``: a 300 µm patch's
  features beside the 150 µm patch's) against the default: LOSO within C2–C5, then C6 with seeds 0–2;
  ``context-select:default`` runs one arm, ``context-select@1`` with seed 1.
* ``single-section`` — one training section (no validation): each member and the equal blend, within C2–C5;
  ``single-section-c6``: each of C2–C5 alone → C6.
* ``expected-r`` — the bundle's per-gene expected r (its validation) against the r reached on a section it never
  saw: LOSO within C2–C5, then C6 (default model, seeds 0–2).

Run:  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_generalisation.py select final loso
Features are cached (NAPARI_SPATIAL_IMPUTE_CACHE, default the user cache): the first stage pays for them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "her2st_subset"
OUT = ROOT / "benchmarks" / "out"
IMAGES = {"C2": "C2_5714_HE_BT_C2.jpg", "C3": "C3_5714_HE_BT_D1.jpg", "C4": "C4_5714_HE_BT_D2.jpg",
          "C5": "C5_5714_HE_BT_E1.jpg", "C6": "C6_5714_HE_BT_E2.jpg"}
VARIANTS = {  # name: STco parameters (on top of the package defaults)
    "default": {},  # stain norm + aug, context patch, validated blend
    "contrastive only": {"predictor": "contrastive"},
    "no stain normalisation": {"stain": "none"},
    "no stain augmentation": {"stain_augment": False},
    "as before #14 (no norm / aug, contrastive, tta 4)": {"stain": "none", "stain_augment": False,
                                                          "predictor": "contrastive", "tta": 4},
}


def sections() -> dict:
    from napari_spatial_impute.io import read_st_section

    return {s: read_st_section(DATA / f"ST-cnts/{s}.tsv.gz", DATA / f"ST-spotfiles/{s}_selection.tsv",
                               DATA / "ST-imgs" / img) for s, img in IMAGES.items()}


def perturbed_c6(c6) -> dict:
    """C6 re-stained / re-scanned in silico (written once to benchmarks/out/perturbed)."""
    from PIL import Image

    from napari_spatial_impute.io.sections import set_spot_coordinates
    from napari_spatial_impute.models.stco.stain import blur, hed_jitter

    Image.MAX_IMAGE_PIXELS = None
    folder = OUT / "perturbed"
    folder.mkdir(parents=True, exist_ok=True)
    info = c6.uns["histology"]
    px = info["pixel_size_um"]
    out = {"C6": c6}
    specs = {"HED re-stain": ("hed.png", 1.0), "JPEG q30": ("jpeg30.jpg", 1.0), "blur σ=2": ("blur2.png", 1.0),
             "0.5× resolution": ("half.png", 2.0)}
    img = None
    for name, (fname, scale) in specs.items():
        path = folder / fname
        if not path.is_file():  # written under a temporary name, so an interrupted run leaves no truncated copy
            tmp = path.with_name(f"partial-{fname}")
            if img is None:
                img = np.asarray(Image.open(info["image"]).convert("RGB"))
            if name == "HED re-stain":  # stronger haematoxylin, paler eosin, a bluish shift
                arr = np.concatenate([hed_jitter(img[i:i + 512], [1.3, 0.75, 1.0], [0.03, -0.02, 0.0])
                                      for i in range(0, len(img), 512)])
                Image.fromarray(arr).save(tmp)
            elif name == "JPEG q30":
                Image.fromarray(img).save(tmp, quality=30)
            elif name == "blur σ=2":
                Image.fromarray(blur(img, 2.0)).save(tmp)
            else:
                Image.fromarray(img).resize((img.shape[1] // 2, img.shape[0] // 2), Image.LANCZOS).save(tmp)
            tmp.replace(path)
        a = c6.copy()
        rest = {k: v for k, v in info.items() if k not in ("pixel_size_um", "image")}
        set_spot_coordinates(a, c6.obsm["spatial_px"] / scale, px * scale, image=str(path), **rest)
        out[name] = a
    return out


def train(secs, names, seed, params):
    from napari_spatial_impute import train_histology

    t0 = time.perf_counter()
    model = train_histology([secs[s] for s in names], seed=seed, device="cpu", **params)
    return model, time.perf_counter() - t0


def evaluate(model, section, **kwargs) -> dict:
    from napari_spatial_impute import evaluate_histology

    t0 = time.perf_counter()
    m = evaluate_histology(model, section, **kwargs)
    row = {k: v for k, v in m.items() if k not in ("per_gene", "gene_match")}
    return row | {"predict_s": time.perf_counter() - t0}


def save(key: str, value) -> None:
    path = OUT / "generalisation.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=1, default=float))


def stage_select(secs) -> dict:
    """LOSO within C2–C5 for a small grid; returns the chosen parameters."""
    inner = ["C2", "C3", "C4", "C5"]
    grid = {"stain+aug, 30 ep": {}, "no stain norm": {"stain": "none"}, "no aug": {"stain_augment": False},
            "neither": {"stain": "none", "stain_augment": False}, "15 ep": {"epochs": 15}, "60 ep": {"epochs": 60}}
    results = {}
    for name, params in grid.items():
        scores = {"model": [], "contrastive": [], "tta1": [], "tta4": []}
        for held in inner:
            model, _ = train(secs, [s for s in inner if s != held], 0, params)
            m = evaluate(model, secs[held])
            scores["model"].append(m["pcc_mean_top50"])
            scores["contrastive"].append(m["pcc_mean_top50_contrastive"])
            for tta in (1, 4):  # test-time views: only the contrastive part changes
                model.cfg["tta"] = tta
                scores[f"tta{tta}"].append(evaluate(model, secs[held])["pcc_mean_top50"])
        results[name] = {k: float(np.mean(v)) for k, v in scores.items()} | {"per_fold": scores}
        print(name, {k: round(v, 3) for k, v in results[name].items() if k != "per_fold"}, flush=True)
    save("select", results)
    print("\n| setting (LOSO within C2–C5) | model top-50 | contrastive top-50 | model, tta 1 | model, tta 4 |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['model']:.3f} | {r['contrastive']:.3f} | {r['tta1']:.3f} | {r['tta4']:.3f} |")
    return results


def stage_final(secs, arms=None, seeds=(0, 1, 2)) -> dict:
    tests = perturbed_c6(secs["C6"])
    results = {}
    for vname in arms or list(VARIANTS):
        params = VARIANTS[vname]
        runs = []
        for seed in seeds:
            model, t_train = train(secs, ["C2", "C3", "C4", "C5"], seed, params)
            run = {"train_s": t_train, "weights": model.weights, "smoothing_um": model.choice["smoothing_um"]}
            for tname, sec in tests.items():
                run[tname] = evaluate(model, sec)
            runs.append(run)
            print(vname, seed, {t: round(run[t]["pcc_mean_top50"], 3) for t in tests}, f"{t_train:.0f}s",
                  run["weights"], flush=True)
        results[vname] = runs
    save("final" if arms is None else "final_" + ",".join(arms), results)
    table(results, list(tests))
    return results


def _ms(values) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f}"


def table(results: dict, tests: list[str]) -> None:
    print("\n| variant / baseline (train C2–C5) | " + " | ".join(tests) + " | train s | predict s (C6) |")
    print("|---|" + "---|" * (len(tests) + 2))
    for vname, runs in results.items():
        cells = [_ms([r[t]["pcc_mean_top50"] for r in runs]) for t in tests]
        print(f"| {vname} | " + " | ".join(cells) + f" | {np.mean([r['train_s'] for r in runs]):.0f} "
              f"| {np.mean([r['C6']['predict_s'] for r in runs]):.1f} |")
    runs = results[next(iter(results))]  # the parts and baselines the default bundle carries (unblended)
    for comp, label in (("contrastive", "part: the contrastive model alone"),
                        ("feature_krr", "part: frozen Lite0 mid-level kernel ridge"),
                        ("feature_ridge", "baseline: frozen Lite0 mid-level ridge"),
                        ("feature_knn", "baseline: frozen Lite0 kNN (k=50)"),
                        ("colour_ridge", "baseline: colour/texture ridge")):
        if f"pcc_mean_top50_{comp}" not in runs[0]["C6"]:
            continue
        cells = [_ms([r[t][f"pcc_mean_top50_{comp}"] for r in runs]) for t in tests]
        print(f"| {label} | " + " | ".join(cells) + " | — | — |")


def stage_loso(secs, seed: int = 0) -> dict:
    """Leave each of C2–C6 out in turn (train on the other four), default model, one seed (``loso@S``)."""
    names = list(IMAGES)
    cols = {"model": "model", "contrastive": "contrastive", "feature_ridge": "Lite0 mid-level ridge",
            "feature_krr": "Lite0 mid-level kernel ridge", "feature_knn": "Lite0 kNN", "colour_ridge": "colour ridge"}
    results = {}
    for held in names:
        model, t_train = train(secs, [s for s in names if s != held], seed, {})
        m = evaluate(model, secs[held])
        results[held] = {k: m[f"pcc_mean_top50_{k}" if k != "model" else "pcc_mean_top50"] for k in cols
                         if k == "model" or f"pcc_mean_top50_{k}" in m}
        results[held] |= {"train_s": t_train, "weights": model.weights}
        print(held, results[held], flush=True)
    save("loso" if seed == 0 else f"loso_seed{seed}", results)
    cols = {k: v for k, v in cols.items() if all(k in r for r in results.values())}
    print("\n| held-out section (train on the other four) | " + " | ".join(cols.values()) + " |")
    print("|---|" + "---|" * len(cols))
    for held, r in results.items():
        print(f"| {held} | " + " | ".join(f"{r[k]:.3f}" for k in cols) + " |")
    print("| mean | " + " | ".join(f"{np.mean([r[k] for r in results.values()]):.3f}" for k in cols) + " |")
    return results


# "default": before the switch to context patches; since the feature ridge, "context 2x" includes it. Arms that do
# not name a context_cut cut as the package does: "resize" up to histology_generalisation.md §00000000, "box" since
# §000000000 (add "resized context" settings to an arm to reproduce an earlier figure)
CONTEXT_ARMS = {"default": {"context": 0.0}, "context 2x": {"context": 2.0}, "context 3x": {"context": 3.0},
                "context 4x": {"context": 4.0},
                # §0000: the feature ridge as before (four stage ends, full rank, unsmoothed) and as now
                "ridge as before": {"context": 4.0, "ridge_taps": "stages", "ridge_rank": 0,
                                    "ridge_smoothing_um": 0.0},
                "ridge v2": {"context": 4.0, "ridge_taps": "all", "ridge_rank": 10, "ridge_smoothing_um": 100.0},
                # §000000: the deeper / wider ImageNet EfficientNet-Lite1 / Lite2 as the frozen backbone
                "lite1": {"backbone": "lite1"}, "lite2": {"backbone": "lite2"},
                # §000000: the feature kernel ridge as a third member of the equal blend (default) and without
                "krr blend": {"krr_alpha": 0.3}, "no krr": {"krr_alpha": 0.0},
                "box context": {"context_cut": "box"}, "resized context": {"context_cut": "resize"},
                # §0000000: what moving every spot by one pixel (x and y) costs: the noise floor of a patch change
                # ("shift_px": not an STco parameter; the sections' spots are moved before anything is cut)
                "spots moved 1 px": {"shift_px": 1.0},
                # with the default and the +1 px arm: three cutting positions for C6's error bar (context-final)
                "spots moved -1 px": {"shift_px": -1.0},
                # §0000000000: the feature ridges' taps averaged over five cuts (default) or one cut, as before
                "jitter 11 um": {"jitter_um": 11.0}, "one cut": {"jitter_um": 0.0},
                "jitter 11 um spots moved 1 px": {"jitter_um": 11.0, "shift_px": 1.0},
                "jitter 11 um spots moved -1 px": {"jitter_um": 11.0, "shift_px": -1.0},
                # the contrastive member also averages its embedding over the five cuts (prediction only: each
                # fold's model is also scored with it off, paired)
                "contrastive reads five cuts": {"jitter_contrastive": True},
                "contrastive reads its own cut": {"jitter_contrastive": False}}


def arm(secs: dict, name: str) -> tuple[dict, dict]:
    """(the sections as the arm sees them, its STco parameters) of a CONTEXT_ARMS entry."""
    params = dict(CONTEXT_ARMS[name])
    shift = params.pop("shift_px", 0.0)
    return (shifted(secs, shift) if shift else secs), params


def shifted(secs: dict, px: float) -> dict:
    """Copies of the sections with every spot moved by ``px`` image pixels in x and y (µm positions kept)."""
    out = {}
    for name, a in secs.items():
        b = a.copy()
        b.obsm["spatial_px"] = np.asarray(a.obsm["spatial_px"], dtype=np.float64) + px
        out[name] = b
    return out


def stage_context_select(secs, arms=None, seed: int = 0) -> dict:
    """Multi-scale context (a 2× patch beside the patch) against the default, LOSO within C2–C5."""
    inner = ["C2", "C3", "C4", "C5"]
    results = {}
    for name in arms or list(CONTEXT_ARMS):
        per_fold, contrastive, one_cut, paired, paired_contrastive = {}, {}, {}, {}, {}
        arm_secs, params = arm(secs, name)
        for held in inner:
            model, t_train = train(arm_secs, [s for s in inner if s != held], seed, params)
            m = evaluate(model, arm_secs[held])
            per_fold[held], contrastive[held] = m["pcc_mean_top50"], m["pcc_mean_top50_contrastive"]
            if params.get("jitter_contrastive"):  # the same model, its contrastive member on the own cut only
                model.cfg["jitter_contrastive"] = False
                off = evaluate(model, arm_secs[held])
                paired[held] = off["pcc_mean_top50"]
                paired_contrastive[held] = off["pcc_mean_top50_contrastive"]
                model.cfg["jitter_contrastive"] = True
            elif model.jitters:  # also as a whole-slide tile reads it: one cut per spot
                one_cut[held] = evaluate(model, arm_secs[held], jitter=False)["pcc_mean_top50"]
            print(name, held, round(per_fold[held], 3), round(contrastive[held], 3), f"{t_train:.0f}s", model.weights,
                  f"one cut {one_cut[held]:.3f}" if one_cut else "",
                  f"contrastive on its own cut: model {paired[held]:.3f}, contrastive {paired_contrastive[held]:.3f}"
                  if paired else "", flush=True)
        results[name] = {"model": float(np.mean(list(per_fold.values()))),
                         "contrastive": float(np.mean(list(contrastive.values()))), "per_fold": per_fold,
                         "per_fold_contrastive": contrastive, "per_fold_one_cut": one_cut,
                         "per_fold_paired": paired, "per_fold_paired_contrastive": paired_contrastive}
        save(f"context_select_{name}_seed{seed}", results[name])
    print(f"\n| arm (LOSO within C2–C5, seed {seed}) | model top-50 | contrastive | " + " | ".join(inner) + " |")
    print("|---|---|---|" + "---|" * len(inner))
    for name, r in results.items():
        print(f"| {name} | {r['model']:.3f} | {r['contrastive']:.3f} | "
              + " | ".join(f"{r['per_fold'][h]:.3f}" for h in inner) + " |")
    return results


def stage_context_final(secs, arms=None, seeds=(0, 1, 2)) -> dict:
    """Train C2–C5 → C6 (unperturbed), seeds 0–2, per arm."""
    results = {}
    for name in arms or list(CONTEXT_ARMS):
        runs = []
        arm_secs, params = arm(secs, name)
        for seed in seeds:
            model, t_train = train(arm_secs, ["C2", "C3", "C4", "C5"], seed, params)
            runs.append(evaluate(model, arm_secs["C6"]) | {"train_s": t_train, "weights": model.weights})
            print(name, seed, round(runs[-1]["pcc_mean_top50"], 3), f"{t_train:.0f}s", flush=True)
        results[name] = runs
        save(f"context_final_{name}", runs)
        print(f"| {name} | {_ms([r['pcc_mean_top50'] for r in runs])} "
              f"| {_ms([r['pcc_mean_top50_contrastive'] for r in runs])} |", flush=True)
    return results


def stage_expected_r(secs, seeds=(0, 1, 2)) -> dict:
    """The bundle's per-gene expected r (its leave-one-training-section-out validation) against the r each gene
    reaches on a section it never saw: LOSO within C2–C5 (three training sections), then C2–C5 → C6. Default
    model; nothing is chosen here."""
    from scipy.stats import spearmanr

    from napari_spatial_impute import evaluate_histology

    inner = ["C2", "C3", "C4", "C5"]
    keys = ("pcc_mean_top50", "expected_r_mean_top50", "expected_r_spearman", "expected_r_mae", "by_mean", "by_sd")
    rows = {}
    print("| held out (trained on the others of C2–C5) | top-50 r reached | top-50 expected r | Spearman over the "
          "genes, expected vs reached | mean abs(expected − reached) | … ranked by training mean instead | … by "
          "training sd |\n|---|---|---|---|---|---|---|")
    for held in inner + ["C6"]:
        runs = []
        for seed in seeds:
            model, _ = train(secs, [s for s in inner if s != held], seed, {})
            m = evaluate_histology(model, secs[held])
            genes = list(m["per_gene"])
            reached = [m["per_gene"][g]["pcc"] for g in genes]
            cols = [model.genes.index(g) for g in genes]  # the trivial rankings: expression level, spread
            m["by_mean"] = spearmanr(np.asarray(model.expr_mean)[cols], reached).statistic
            m["by_sd"] = spearmanr(np.asarray(model.expr_std)[cols], reached).statistic
            runs.append({k: float(m[k]) for k in keys})
        rows[held] = runs
        print(f"| {held} | " + " | ".join(_ms([r[k] for r in runs]) for k in keys) + " |", flush=True)
    save("expected_r", rows)
    return rows


def stage_single_section(secs, seeds=(0, 1, 2), inner=("C2", "C3", "C4", "C5"), targets=None) -> dict:
    """A user with one training section: nothing to validate on, so the bundle predicts what ``unvalidated()``
    names ("model"). Each of ``inner`` trains a model alone (seeds), which predicts each other section of ``inner``
    (or each of ``targets``): its members alone and their equal blend, unsmoothed and smoothed 100 µm (top-50 of
    the training section)."""
    from napari_spatial_impute.api.histology import truth_for
    from napari_spatial_impute.models.stco.fallback import EQUAL_BLEND, pearson_per_gene
    from napari_spatial_impute.progress import run_to_end

    arms = ("model", "contrastive", "feature_ridge", "feature_krr", "equal blend", "equal blend, 100 um")
    rows = {}
    for seed in seeds:
        scores = {a: [] for a in arms}
        for train_on in inner:
            model, _ = train(secs, [train_on], seed, {})
            assert not model.choice["validated_on"]
            own = dict(model.choice)
            for held in targets or [h for h in inner if h != train_on]:
                truth, genes, _ = truth_for(model, secs[held])
                cols = [model.genes.index(g) for g in genes]
                top = [i for i, g in enumerate(genes) if g in set(model.top_genes)]
                parts = run_to_end(model.predict_section_steps(secs[held], parts=True))
                xy = np.asarray(secs[held].obsm["spatial"])[:, :2]
                preds = {"model": parts["model"], **{a: parts[a] for a in arms[1:4]}}
                for arm_name, sigma in (("equal blend", 0.0), ("equal blend, 100 um", 100.0)):
                    model.choice = {**own, "weights": {k: 1.0 / len(EQUAL_BLEND) for k in EQUAL_BLEND},
                                    "smoothing_um": sigma}
                    preds[arm_name] = model.combine({k: parts[k] for k in EQUAL_BLEND}, xy)
                model.choice = own
                for a in arms:
                    scores[a].append(float(np.mean(pearson_per_gene(truth, preds[a][:, cols])[top])))
                print(seed, train_on, "→", held, {a: round(v[-1], 3) for a, v in scores.items()}, flush=True)
        rows[seed] = {a: float(np.mean(v)) for a, v in scores.items()}
        key = "single_section" if targets is None else "single_section_to_" + "_".join(targets)
        save(f"{key}_seed{seed}", {"mean": rows[seed], "per_pair": scores, "model_predicts": own["weights"]})
    where = "each other of C2–C5" if targets is None else ", ".join(targets)
    print(f"\n| one training section → {where}, mean top-50 r | " + " | ".join(f"seed {sd}" for sd in seeds)
          + " | mean ± sd |\n|---|" + "---|" * (len(seeds) + 1))
    for a in arms:
        per_seed = " | ".join(f"{rows[sd][a]:.3f}" for sd in seeds)
        print(f"| {a} | {per_seed} | {_ms([rows[sd][a] for sd in seeds])} |")
    return rows


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: the benchmark needs ../shared/datasets/her2st_subset")
    OUT.mkdir(parents=True, exist_ok=True)
    secs = sections()
    stages = argv or ["select", "final", "loso"]
    for stage in stages:
        t0 = time.perf_counter()
        stage, _, arms = stage.partition(":")  # context-select:default,context 2x runs those arms only
        stage, _, seed = stage.partition("@")  # context-select@1: seed 1
        arms, seed = [a for a in arms.split(",") if a] or None, int(seed or 0)
        {"select": stage_select, "final": lambda s, a=arms: stage_final(s, a),
         "loso": lambda s, sd=seed: stage_loso(s, sd),
         "context-select": lambda s, a=arms, sd=seed: stage_context_select(s, a, sd),
         "context-final": lambda s, a=arms: stage_context_final(s, a),
         "expected-r": stage_expected_r, "single-section": stage_single_section,
         "single-section-c6": lambda s: stage_single_section(s, targets=["C6"])}[stage](secs)
        print(f"[{stage}: {time.perf_counter() - t0:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
