"""``stnet weights``: the trained ST-Net that ships with stnet — print its record, or pack a new one.

    stnet weights
    stnet weights --pack runs/quick/best.pt --profile quick --cohort "synthetic realistic cohort" \\
        --metrics reports/quick/table2.csv --calibrate data_manifest.csv

``--pack`` writes ``stnet_default.pt`` and ``stnet_default.json`` into ``--out`` (default the
package's ``stnet_lib/weights/``), :func:`stnet_lib.weights.pack_weights`; ``--calibrate`` first
fits the uncertainty scales on the manifest's ``val`` subjects (:mod:`stnet_lib.network.uncertainty`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from .._validation import StnetInputError, check_file
from .. import weights as shipped

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``stnet weights``."""
    parser = subparsers.add_parser("weights", help="print the shipped ST-Net's record, or pack a trained one",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, metavar="CHECKPOINT", help="a trained best.pt to ship")
    parser.add_argument("--profile", help="with --pack: the training profile it was trained with (e.g. quick)")
    parser.add_argument("--cohort", help="with --pack: the cohort it was trained on, in words")
    parser.add_argument("--metrics", type=Path, help="with --pack: its test metrics table (CSV)")
    parser.add_argument("--calibrate", type=Path, metavar="MANIFEST",
                        help="with --pack: fit the uncertainty scales on this manifest's val subjects first")
    parser.add_argument("--out", type=Path, help="with --pack: folder to write into (default: the package's)")
    return parser


def _pack(args) -> int:
    if not args.profile or not args.cohort:
        raise StnetInputError("--pack needs --profile and --cohort (what the network was trained on, for its record)")
    checkpoint = check_file(args.pack, "ST-Net checkpoint")
    metrics = shipped.metrics_records(check_file(args.metrics, "metrics table")) if args.metrics else None
    with tempfile.TemporaryDirectory(prefix="stnet-weights-") as work:
        if args.calibrate is not None:
            from ..experiments.uncertainty import manifest_cases
            from ..network.uncertainty import calibrate_checkpoint

            cases, ids = manifest_cases(check_file(args.calibrate, "manifest"), "val")
            calibrated = Path(work) / "calibrated.pt"
            calibration = calibrate_checkpoint(checkpoint, cases, out=calibrated, subject_ids=ids)
            print(f"uncertainty calibrated on {len(ids)} subjects: scales "
                  + ", ".join(f"{k} {v:.2f}" for k, v in calibration.scale.items()))
            checkpoint = calibrated
        pt, record = shipped.pack_weights(checkpoint, cohort=args.cohort, profile=args.profile, metrics=metrics,
                                          folder=args.out, source=str(args.pack))
    print(f"wrote {pt} and {record}")
    return 0


def run(args) -> int:
    """Print the shipped record (exit 2 when none ships), or pack ``--pack``."""
    if args.pack is not None:
        return _pack(args)
    if any(getattr(args, name) is not None for name in ("profile", "cohort", "metrics", "calibrate", "out")):
        raise StnetInputError("--profile, --cohort, --metrics, --calibrate and --out go with --pack CHECKPOINT")
    record = shipped.read_record()
    shipped.shipped_checkpoint()  # the file matches its record
    print(f"ST-Net weights shipped with stnet: {shipped.WEIGHTS_DIR / record['file']} (sha256 verified)")
    print(json.dumps(record, indent=2))
    return 0
