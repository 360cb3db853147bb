"""``stnet evaluate``: the paper's metrics of one or more methods' maps against a cohort's reference maps."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
from pathlib import Path

from .._validation import StnetInputError
from ..constants import TMAX_THRESHOLD_S
from ..evaluation import SEGMENTATION_SOURCES, EvaluationConfig, evaluate_manifest
from ..experiments.evaluation_tables import write_tables
from ..io import atomic_write
from ..manifest import SPLITS, load_manifest
from ..metrics import CONVENTIONS

log = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``stnet evaluate`` and its options to ``subparsers``."""
    parser = subparsers.add_parser(
        "evaluate", help="PSNR, SSIM, PCC, SCC, NRMSE, AUC, Dice, IoU, HD95 and paired tests",
        description="Compare predicted maps (<pred>/<subject_id>/{cbv,cbf,mtt,tmax}.nii.gz) with the "
                    "manifest's reference maps; write per_subject.csv, summary.csv, paired_tests.csv "
                    "and tables.md.")
    parser.add_argument("--manifest", required=True, type=Path, help="data_manifest.csv")
    parser.add_argument("--pred", required=True, action="append", metavar="[NAME=]DIR",
                        help="folder of one method's maps (repeat for more methods; NAME defaults "
                             "to the folder's name)")
    parser.add_argument("--out", required=True, type=Path, help="output folder for the tables")
    parser.add_argument("--split", default="test", choices=SPLITS + ("all",),
                        help="subjects of this split, or all (default test)")
    parser.add_argument("--convention", default="standard", choices=CONVENTIONS,
                        help="PSNR/SSIM convention: standard, or paper (the authors' per-slice code)")
    parser.add_argument("--threshold-s", type=float, default=TMAX_THRESHOLD_S,
                        help=f"Tmax threshold of the hypoperfusion masks [s] (default {TMAX_THRESHOLD_S:g})")
    parser.add_argument("--segmentation-reference", default="tmax", choices=SEGMENTATION_SOURCES,
                        help="reference of the segmentation table: reference Tmax > threshold, or the "
                             "manifest's lesion_mask (subjects with has_lesion_label only)")
    parser.add_argument("--data-range", action="append", default=[], metavar="MAP=VALUE",
                        help="standard PSNR/SSIM range of a map in its units, e.g. cbf=100 (repeatable; "
                             "default: each subject's reference range in the brain)")
    return parser


def run(args) -> int:
    """Evaluate the ``--pred`` folders against the manifest and write the tables; return 0."""
    methods = _pred_dirs(args.pred)
    config = EvaluationConfig(convention=args.convention, threshold_s=args.threshold_s,
                              data_range=_data_ranges(args.data_range))
    manifest = load_manifest(args.manifest)
    split = None if args.split == "all" else args.split
    results = evaluate_manifest(manifest, methods, config=config, split=split,
                                segmentation_reference=args.segmentation_reference)
    comparisons = list(itertools.combinations(methods, 2))
    written = write_tables(results, args.out, config=config, comparisons=comparisons)
    with atomic_write(args.out / "evaluation.json") as tmp:
        tmp.write_text(json.dumps({"config": dataclasses.asdict(config), "split": args.split,
                                   "segmentation_reference": args.segmentation_reference,
                                   "methods": {k: str(v) for k, v in methods.items()},
                                   "manifest": str(args.manifest)}, indent=2) + "\n")
    log.info("wrote %s", args.out)
    print(f"wrote {', '.join(p.name for p in written)}, evaluation.json to {args.out}")
    return 0


def _pred_dirs(values: list[str]) -> dict[str, Path]:
    """``NAME=DIR`` or ``DIR`` (name = folder name) → {name: folder}, names unique, folders existing."""
    methods: dict[str, Path] = {}
    for value in values:
        name, _, folder = value.partition("=") if "=" in value else ("", "", value)
        folder = Path(folder)
        name = name or folder.name
        if not folder.is_dir():
            raise StnetInputError(f"--pred folder not found: {folder}")
        if name in methods:
            raise StnetInputError(f"--pred method name {name!r} given twice: use NAME=DIR to tell them apart")
        methods[name] = folder
    return methods


def _data_ranges(values: list[str]) -> dict[str, float]:
    ranges = {}
    for value in values:
        name, _, number = value.partition("=")
        try:
            ranges[name.strip()] = float(number)
        except ValueError:
            raise StnetInputError(f"--data-range must look like cbf=100; got {value!r}") from None
        if not ranges[name.strip()] > 0:
            raise StnetInputError(f"--data-range {value!r}: the range must be positive")
    return ranges
