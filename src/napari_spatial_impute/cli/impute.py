"""``napari-spatial-impute impute SPATIAL REFERENCE ...`` (imports no torch until the command runs)."""

from __future__ import annotations

import sys

from .. import UNS_KEY
from ..errors import InputError
from .common import check_outputs, progress_bar, read_gene_list, write_json


def add_parser(sub) -> None:
    """Add the ``impute`` sub-command to an argparse subparsers."""
    p = sub.add_parser(
        "impute", help="impute genes of a scRNA-seq reference onto spatial cells (or cross-validate)",
        description="Impute reference genes missing from the spatial data (default), the genes named by "
                    "--genes, or with --cv K evaluate the method by K-fold cross-validation over shared genes.")
    p.add_argument("spatial", help="spatial cells: an AnnData .h5ad (counts in layers['counts'], .raw or X; "
                                   "obsm['spatial']) or an instrument folder (Xenium, CosMx, MERSCOPE, Visium, legacy "
                                   "ST) or SpatialData .zarr, read without its images and transcripts")
    p.add_argument("reference", help="scRNA-seq reference as scverse keeps it: an AnnData .h5ad / .zarr (counts in "
                                     "layers['counts'], .raw or X; symbols or Ensembl ids, e.g. CELLxGENE), or Cell "
                                     "Ranger's filtered_feature_bc_matrix.h5 or filtered_feature_bc_matrix/ folder")
    p.add_argument("--method", default="auto",
                   help="auto | knn | stimpute | spaim (default auto: inner cross-validation on the measured genes "
                        "picks the method or blend, recorded in var['auto_method'] / var['expected_r'])")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--genes", help="comma-separated genes to impute (case-insensitive)")
    g.add_argument("--genes-file", metavar="FILE", help="text file with the genes to impute (one per line)")
    g.add_argument("--all", action="store_true", help="impute every reference gene missing from the spatial data "
                                                       "(default: the --n-top-genes most variable of them)")
    p.add_argument("--n-top-genes", type=int, default=2000, metavar="N",
                   help="with no genes named: impute the N most variable reference genes the panel lacks "
                        "(scanpy seurat_v3 on counts; default 2000)")
    p.add_argument("--reference-values", choices=["auto", "counts", "log1p"], default="auto",
                   help="what the reference's X holds when no counts are found elsewhere (default auto: find counts "
                        "in layers['counts'] / .raw / X and refuse log-normalised data)")
    p.add_argument("--spatial-values", choices=["auto", "counts", "log1p"], default="auto",
                   help="the same for the spatial data")
    p.add_argument("--cv", type=int, metavar="K", help="K-fold cross-validation over shared genes instead")
    p.add_argument("--out", help="output .h5ad, or .zarr to write results larger than memory chunk by chunk "
                                 "(with --cv: CV predictions of shared genes)")
    p.add_argument("--metrics", help="metrics JSON (with --cv)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default auto)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="method parameter, e.g. --param k=50 (repeatable)")
    p.add_argument("--cluster-key", help="reference obs column with cell types (spaim)")
    p.add_argument("--gene-embeddings", metavar="SOURCE",
                   help="stimpute gene graph: 'bundled' (default), 'none', a table (.npz/.parquet/.csv: gene → vector) "
                        "or a protein FASTA (needs --esm-checkpoint)")
    p.add_argument("--esm-checkpoint", metavar="PT", help="local fair-esm ESM-2 checkpoint for a FASTA (stimpute)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--dask", metavar="SCHEDULER", help="run prediction on a dask.distributed cluster "
                                                       "(address, or 'local' for a LocalCluster)")
    p.add_argument("--zarr", metavar="PATH", help="with --dask: workers write predictions chunk by chunk here")
    p.add_argument("--chunk-size", type=int, default=50_000, help="cells per prediction task (with --dask)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_impute)


def run_impute(args) -> int:
    from .. import api
    from ..io.anndata_io import read_reference, write_h5ad_safely
    from ..io.detect import read_cells
    from ..io.results import is_zarr_path, write_result
    from ..params import parse_key_values

    outputs = [p for p in (args.out, args.metrics) if p]
    if args.cv is None and not args.out:
        raise InputError("No output given.", "pass --out OUT.h5ad.")
    if args.cv is not None and not outputs:
        raise InputError("--cv needs somewhere to write results.", "pass --metrics METRICS.json and/or --out.")
    if args.n_top_genes < 1:
        raise InputError(f"--n-top-genes {args.n_top_genes} is not valid.",
                         "give a number of genes ≥ 1, or --all for every reference gene the panel lacks.")
    if args.chunk_size < 1:
        raise InputError(f"--chunk-size {args.chunk_size} is not valid.", "give a number of cells ≥ 1.")
    check_outputs(outputs, args.overwrite)
    params = parse_key_values(args.param)
    if args.cluster_key:
        params["cluster_key"] = args.cluster_key
    if args.gene_embeddings:
        params["gene_embeddings"] = args.gene_embeddings
    if args.esm_checkpoint:
        params["esm_checkpoint"] = args.esm_checkpoint
    from ..models.params_spec import validate_params

    params = validate_params(args.method, params, seed=args.seed)  # before reading anything
    spatial = read_cells(args.spatial)
    reference = read_reference(args.reference)
    genes = [g for g in args.genes.split(",") if g.strip()] if args.genes else None
    if args.genes_file:
        genes = read_gene_list(args.genes_file)
    values = {"reference_values": args.reference_values, "spatial_values": args.spatial_values}
    bar, close = progress_bar(args.quiet, f"{args.method}")

    def cb(event) -> None:  # the run plan and the match report are printed, not only shown on the bar
        if event.stage in ("plan", "report"):
            print(event.message, file=sys.stderr)
        if bar is not None:
            bar(event)

    try:
        if args.cv is not None:
            result = api.cross_validate(spatial, reference, args.method, args.cv, seed=args.seed,
                                        device=args.device, callback=cb, method_params=params, **values)
            close()
            if args.metrics:
                write_json(result.metrics, args.metrics)
            if args.out:
                out = api.to_anndata(result.prediction, spatial, result.genes,
                                     var=result.gene_annotations, uns={"cv": {k: v for k, v in result.metrics.items()
                                                                              if k != "per_gene"}})
                write_result(out, args.out, overwrite=args.overwrite)  # .zarr or .h5ad, as the path says
            m = result.metrics
            print(f"{m['method']}: {m['n_genes']} genes × {m['n_cells']} cells, {args.cv}-fold CV: "
                  f"median PCC {m['pcc_median']:.3f}, mean PCC {m['pcc_mean']:.3f}, median SSIM "
                  f"{m['ssim_median']:.3f} ({m['seconds']:.1f} s)")
        else:
            to_zarr = is_zarr_path(args.out)
            if args.dask:  # same inputs, targets and plan as without --dask; --out x.zarr written by the driver
                from ..distributed import impute_dask

                out = impute_dask(spatial, reference, args.method, genes, scheduler=args.dask, seed=args.seed,
                                  device=args.device, callback=cb, out_zarr=args.zarr, chunk_size=args.chunk_size,
                                  all_genes=args.all, n_top_genes=args.n_top_genes, out=args.out if to_zarr else None,
                                  overwrite=args.overwrite, **values, **params)
            else:
                out = api.impute(spatial, reference, args.method, genes, seed=args.seed, device=args.device,
                                 callback=cb, all_genes=args.all, n_top_genes=args.n_top_genes,
                                 out=args.out if to_zarr else None, overwrite=args.overwrite, **values, **params)
            close()
            if not to_zarr:
                write_h5ad_safely(out, args.out, overwrite=args.overwrite)
            info = out.uns[UNS_KEY]
            device = info.get("device_detail", info["device"])
            print(f"{info['method']}: imputed {out.n_vars} genes for {out.n_obs} cells on {device} "
                  f"in {info['seconds']:.1f} s → {args.out}")
    finally:
        close()
    return 0
