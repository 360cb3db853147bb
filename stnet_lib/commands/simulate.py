"""``stnet simulate``: write a profile's synthetic stroke cohort (NIfTI files + data_manifest.csv)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .._validation import StnetInputError
from ..manifest import write_manifest
from ..paths import DATA_DIR, ROOT
from ..profiles import PROFILES
from ..simulation.cohort import root_manifest_table, simulate_cohort

log = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "simulate", help="write a synthetic stroke cohort with exact ground truth",
        description="Simulate a profile's synthetic DSC-MRI stroke cohort into --out (default data/<profile>). "
                    "Subjects already complete are kept; an interrupted run leaves no half-written subject.")
    parser.add_argument("--profile", default="quick", choices=tuple(PROFILES), help="cohort size and grid (default quick)")
    parser.add_argument("--out", type=Path, help="cohort folder (default data/<profile>)")
    parser.add_argument("--seed", type=int, help="override the profile's seed")
    parser.add_argument("--limit", type=int, help="simulate only the first N subjects")
    parser.add_argument("--jobs", type=int, default=1,
                        help="subjects simulated at once, one process each (identical files for any value)")
    parser.add_argument("--no-noise", action="store_true", help="noise-free float32 series (for checks)")
    parser.add_argument("--rapid-like", action="store_true",
                        help="also write RAPID-like reference maps (fixed oSVD on the noise-free curves)")
    parser.add_argument("--verify", action="store_true", help="check kept subjects' SHA-256 checksums, not only sizes")
    parser.add_argument("--root-manifest", action="store_true",
                        help="only (re)write the repository's data_manifest.csv indexing every profile under data/")
    return parser


def run(args) -> int:
    if args.root_manifest:
        path = write_manifest(root_manifest_table(DATA_DIR, ROOT, [p.cohort for p in PROFILES.values()]), ROOT / "data_manifest.csv")
        print(f"wrote {path}")
        return 0
    if args.limit is not None and args.limit < 1:
        raise StnetInputError(f"--limit must be a positive number of subjects; got {args.limit}")
    if args.jobs < 1:
        raise StnetInputError(f"--jobs must be a positive number of processes; got {args.jobs}")
    profile = PROFILES[args.profile].cohort
    out = args.out or DATA_DIR / profile.name
    table = simulate_cohort(profile, out, seed=args.seed, noise=not args.no_noise, verify=args.verify, limit=args.limit,
                            rapid_like=args.rapid_like, jobs=args.jobs)
    print(f"wrote {len(table)} subjects and {out / 'data_manifest.csv'}")
    return 0
