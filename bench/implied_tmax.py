"""The implied-Tmax check (decision 0082) on the synthetic cohort, where Tmax is known, and the real slice read through it.

For each physiological subject of a cohort's manifest (default ``data/quick``, written by ``make
report``; its true arterial mask), per method (oSVD, cSVD and the shipped ST-Net), brain medians of:

* the method's Tmax minus the true Tmax (the method's own Tmax bias),
* the Tmax implied at the method's own MTT map minus the true Tmax (the check's offset at that MTT),
* the Tmax implied at the true MTT map minus the true Tmax (the check's offset when the MTT is right).

Then, where ``../shared/data`` has the real slice, every method's brain-median Tmax there, corrected
by its median bias on the cohort, and the Tmax implied at its MTT there, corrected by the check's
median offset at that method's MTT: two readings per method of the slice's Tmax relative to its
automatic AIF, each carried over from a cohort with a known truth.

    python bench/implied_tmax.py [--manifest data/quick/data_manifest.csv] [--subjects 60] [--split test|all]

The library does the work (:func:`stnet_lib.experiments.implied_tmax.cohort_offsets`,
:func:`~stnet_lib.experiments.implied_tmax.corrected_readings`); the validation report shows the same
on the profile's test subjects.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

from stnet_lib.experiments.implied_tmax import cohort_offsets, corrected_readings
from stnet_lib.manifest import load_manifest
from stnet_lib.weights import shipped_checkpoint

METHODS = ("osvd", "csvd", "stnet")


def real_slice_readings(offsets: pd.DataFrame) -> pd.DataFrame | None:
    """The real slice's brain-median Tmax relative to its automatic AIF, read two ways per method [s]."""
    from stnet_lib.experiments import validation

    if not validation.REAL_DSC.is_file():
        return None
    scan = validation.real_scan()
    _, maps = validation.real_scan_summary(scan, list(METHODS), stnet={"checkpoint": shipped_checkpoint()})
    consistency, _ = validation.real_scan_tmax_consistency(scan, maps)
    return corrected_readings(consistency, offsets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default="data/quick/data_manifest.csv")
    parser.add_argument("--subjects", type=int, default=60)
    parser.add_argument("--split", default="test", help="the manifest's split (\"all\": every one)")
    args = parser.parse_args()
    args.split = None if args.split == "all" else args.split
    warnings.filterwarnings("ignore", message="this ST-Net was trained with the VOF")
    options = {method: {"checkpoint": shipped_checkpoint()} if method == "stnet" else {} for method in METHODS}
    offsets = cohort_offsets(load_manifest(args.manifest), options, n_subjects=args.subjects, split=args.split,
                             progress=True)
    pd.set_option("display.width", 200)
    print(f"\nSynthetic cohort ({offsets['subject'].nunique()} physiological subjects, true arterial mask), "
          "brain medians minus the true brain-median Tmax [s]: median (5th–95th percentile) over subjects")
    summary = offsets.drop(columns="subject").groupby("method").agg(
        lambda v: f"{np.median(v):+.2f} ({np.percentile(v, 5):+.2f} to {np.percentile(v, 95):+.2f})")
    print(summary.to_string())
    readings = real_slice_readings(offsets)
    if readings is None:
        print("\nreal slice absent: skipped")
        return
    print("\nReal slice (automatic AIF): brain-median Tmax relative to that AIF [s], as read and corrected by the cohort")
    print(readings.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
