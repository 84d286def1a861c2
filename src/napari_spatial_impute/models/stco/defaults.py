"""STco's parameters and their defaults (read by :mod:`..params_spec` through the model's module; their valid
values are in its one table) and the number of top genes scored apart."""

from __future__ import annotations

#: image backbones by name: the ImageNet EfficientNet-Lites, compact ResNets (trained end to end), a user ViT or
#: TorchScript file; the pretrained ones stay frozen unless ``finetune``
LITE_VARIANTS = ("lite0", "lite1", "lite2")
BACKBONES = (*LITE_VARIANTS, "resnet_small", "resnet_large", "vit", "torchscript")
PRETRAINED_BACKBONES = (*LITE_VARIANTS, "vit", "torchscript")

#: how context patches are cut (see ``context_cut`` below); also the default of the patch-cutting functions
CONTEXT_CUT = "box"
#: spatial smoothing radii (µm) the validation chooses from (``smoothing_choices``)
SMOOTHING_CHOICES = (0.0, 100.0, 200.0)
DEFAULTS = dict(backbone="lite0", backbone_path=None, finetune=False, patch_um=150.0, patch_px=112,
                n_genes=500, embed_dim=256, epochs=30, batch_size=128, lr=1e-3, weight_decay=0.05,
                temperature=0.07, top_k=50, weighting="linear", n_views=8, tta=2, use_position=True,
                dropout=0.5, feature_batch=64, stain="macenko", stain_augment=True, validation="loso",
                knn_k=50, smoothing_choices=list(SMOOTHING_CHOICES), predictor="auto", context=4.0,
                context_cut=CONTEXT_CUT, ridge_alpha=1e4, ridge_rank=10, ridge_smoothing_um=100.0, ridge_taps="all",
                krr_alpha=0.3, blend="equal", feature_norm="global", jitter_um=11.0,
                jitter_contrastive=False)
#: ``weighting`` of the top-k retrieved spots: "linear" (∝ cosine similarity, as STco), "softmax" (learned temperature)
#: or "uniform". ``stain``: "macenko" | "none". ``validation``: "loso" (leave each training section out), "last" (hold
#: out the last section) or "none" (no validation: the equal blend of the members, smoothed 100 µm, as a one-section
#: bundle predicts). ``predictor``: "auto" (the validated blend) or one of
#: "contrastive", "feature_ridge", "feature_krr", "feature_knn", "colour_ridge". ``ridge_alpha``: the ridge penalty of
#: ``feature_ridge`` (on standardised features); ``ridge_rank``: its reduced rank (0 = full); ``ridge_smoothing_um``:
#: its training features smoothed over each section's spots (σ µm); ``ridge_taps``: "all" (mean / sd of every Lite0
#: block's output) or "stages" (four stage ends, the choice before). ``krr_alpha``: the penalty of ``feature_krr`` (0:
#: none; RBF kernel ridge on the feature ridge's features). ``blend``: "equal" (the equal mean of the contrastive model,
#: the feature ridge and the feature kernel ridge unless one predictor validates clearly better) or "grid" (weights
#: searched on a grid of quarters, the choice before the feature ridge). ``feature_norm``: "global" (features as the
#: backbone gives them) or "section" (each section's / slide's frozen backbone features z-scored by its own statistics
#: before the heads, the kNN and the feature ridge, removing a slide's shift of every feature; no gain measured within
#: C2–C5, as scanned or as "another lab" copies: benchmarks/bench_stco_shift.py). ``context``: > 1 adds a context patch
#: of ``context`` × ``patch_um`` around each spot (same ``patch_px``; its backbone features are concatenated to the
#: patch's; frozen backbones only), 0 = none (bundles from before it load with 0). ``context_cut``: "box" (each
#: context crop resampled from the window box-reduced once: ≈ 3× less cutting work, −0.002 within C2–C5, inside the
#: 0.004 that moving every spot by 1 px costs; the default since the "resize" default missed the 2-minute 10k slide
#: on a slow machine: histology_generalisation.md §000000000) or "resize" (each crop resized alone; bundles from
#: before load with it). ``jitter_um``: the feature ridge and kernel ridge read each spot's taps averaged over its
#: cut and four cuts moved diagonally by ±``jitter_um`` in x and y (training and spot prediction; whole-slide tiles
#: keep one cut; 0 = one cut, as bundles from before it load): histology_generalisation.md §0000000000.
#: ``jitter_contrastive``: the contrastive member's embedding also averages the four moved cuts' pooled features (from
#: the same backbone passes as their taps; prediction only, spots only): histology_generalisation.md §00000000000.
#: Defaults were chosen by
#: leave-one-section-out within her2st C2–C5 (benchmarks/histology_generalisation.md), never on C6.
N_TOP = 50  #: the most expressed training genes, scored apart by :func:`~napari_spatial_impute.evaluate_histology`
