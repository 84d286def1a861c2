"""Per-section feature standardisation (``feature_norm``) under a simulated change of lab: her2st C2–C5 only
(leave one section out; C6 is scored by ``bench_generalisation.py final`` once the choice is made).

Each held-out section is scored as scanned and as a **"another lab" copy**: H&E re-stained (haematoxylin ×1.3,
eosin ×0.75, +0.03 / −0.02 OD), blurred (σ = 1.5 px), scanned at half the resolution (its pixel size doubled)
and saved as JPEG quality 40, written once to ``benchmarks/out/perturbed_lab``. The model of each fold is
trained on the three other sections, as scanned, with ``feature_norm="global"`` and ``"section"``; each of its
predictors is scored on both copies (top-50 mean Pearson, the package's blend = "model").

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_stco_shift.py [SEED ...]   (≈ 6 min per seed, 2 cores)
"""

from __future__ import annotations

import sys

import numpy as np
from bench_generalisation import OUT, save, sections

INNER = ["C2", "C3", "C4", "C5"]
ARMS = {"global": {"feature_norm": "global"}, "section": {"feature_norm": "section"}}
PARTS = ("model", "contrastive", "feature_ridge", "feature_knn")


def lab_copy(section, name: str):
    """The section with its image replaced by the "another lab" copy (pixel size doubled)."""
    from PIL import Image

    from napari_spatial_impute.io.sections import set_spot_coordinates
    from napari_spatial_impute.models.stco.stain import blur, hed_jitter

    Image.MAX_IMAGE_PIXELS = None
    info = section.uns["histology"]
    path = OUT / "perturbed_lab" / f"{name}.jpg"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        img = np.asarray(Image.open(info["image"]).convert("RGB"))
        img = np.concatenate([hed_jitter(img[i:i + 512], [1.3, 0.75, 1.0], [0.03, -0.02, 0.0])
                              for i in range(0, len(img), 512)])
        img = blur(img, 1.5)
        small = Image.fromarray(img).resize((img.shape[1] // 2, img.shape[0] // 2), Image.LANCZOS)
        small.save(path, quality=40)
    out = section.copy()
    rest = {k: v for k, v in info.items() if k not in ("pixel_size_um", "image")}
    set_spot_coordinates(out, section.obsm["spatial_px"] / 2.0, info["pixel_size_um"] * 2.0, image=str(path),
                         **rest)
    return out


def run(secs, seed: int) -> dict:
    from napari_spatial_impute.models.stco.expression import section_expression
    from napari_spatial_impute.models.stco.fallback import pearson_per_gene
    from napari_spatial_impute.models.stco.model import STco
    from napari_spatial_impute.progress import run_to_end

    labs = {s: lab_copy(secs[s], s) for s in INNER}
    rows: dict = {}
    for held in INNER:
        train = [secs[s] for s in INNER if s != held]
        for arm, params in ARMS.items():
            m = STco(seed=seed, device="cpu", **params).fit(train)
            idx = [m.genes.index(g) for g in m.top_genes]
            truth = section_expression(secs[held], m.top_genes, m.target_sum)
            for copy, sec in (("as scanned", secs[held]), ("another lab", labs[held])):
                out = run_to_end(m.predict_section_steps(sec, parts=True))
                for p in PARTS:
                    score = float(pearson_per_gene(truth, out[p][:, idx]).mean())
                    rows.setdefault(f"{arm} | {copy} | {p}", {})[held] = score
            print(held, arm, {k: round(v[held], 3) for k, v in rows.items() if k.startswith(arm)}, flush=True)
    print(f"\n| LOSO within C2–C5, seed {seed}: feature_norm, held-out copy, predictor | "
          + " | ".join(INNER) + " | mean |")
    print("|---|" + "---|" * (len(INNER) + 1))
    for key, by in rows.items():
        print(f"| {key} | " + " | ".join(f"{by[h]:.3f}" for h in INNER) + f" | {np.mean(list(by.values())):.3f} |")
    return rows


def main(argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    secs = {s: getattr(a, "adata", a) for s, a in sections().items() if s in INNER}
    for seed in [int(a) for a in argv] or [0]:
        save(f"shift@{seed}", run(secs, seed))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
