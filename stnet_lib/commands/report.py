"""``stnet report``: regenerate ``reports/<profile>/`` by executing the notebooks (:func:`stnet_lib.report.run_report`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._validation import StnetInputError
from ..profiles import PROFILES
from ..report import NOTEBOOKS, NotebookFailed, run_report


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report", help="regenerate reports/<profile>/ (tables, figures, README) from the notebooks",
        description="Execute the report notebooks for a profile into reports/<profile>/ (replaced only when every "
                    "notebook succeeds). Cohort, training and maps are cached under data/ and runs/.")
    parser.add_argument("--profile", default="quick", choices=tuple(PROFILES), help="report size (default quick)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--only", nargs="+", choices=NOTEBOOKS, metavar="NOTEBOOK",
                        help=f"run only these notebooks (of {', '.join(NOTEBOOKS)})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the ST-Net trainings (the cohort's is the profile's)")
    parser.add_argument("--manifest", type=Path,
                        help="report on this data_manifest.csv (a cohort of one's own) instead of the synthetic cohort")
    return parser


def run(args) -> int:
    if args.manifest is not None and not args.manifest.is_file():
        raise StnetInputError(f"--manifest {args.manifest} is not a file: give the path of a data_manifest.csv")
    try:
        out = run_report(args.profile, args.device, notebooks=args.only or NOTEBOOKS, seed=args.seed,
                         manifest=args.manifest)
    except NotebookFailed as error:
        print(f"stnet report: {error}", file=sys.stderr)
        return 1
    print(f"reports written to {out}")
    return 0
