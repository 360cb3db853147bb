"""Automatic AIF (issue #14): how many arterial curves its mean needs (decision 0050, "At least five", "the mean of ten").

For subjects of the synthetic cohort (``bench/automatic_aif.py``'s: quick grid, every realism feature,
seeds ``seed + i``), the brain-median oSVD CBF with the automatic AIF over that with the simulation's
own arterial mask (no VOF in either), for each ``ArterialSearch.min_arterial_voxels`` given.

    python bench/aif_min_voxels.py [--min-voxels 5 10 20] [--seed 500] [--subjects 80]

Prints, per minimum: the fraction of subjects within ±15 %, the median ratio, its range and the median
number of voxels averaged. With the background screen (``ArterialSearch.min_baseline_n_sd = 10``) and the
chosen minimum of 10, within ±15 %: seeds 500–579 93.8 %, 800–879 90.0 % (development), 600–679
92.5 %, 900–979 95.0 %, 1000–1079 96.2 % (the last two measured once, after the choice); before the
screen, with 5 curves, 90.0 %, 86.2 %, 91.2 %, 88.8 %, 91.2 %.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools

import numpy as np

import stnet_lib.curves as curves
from automatic_aif import subject_scans
from stnet_lib.aif import ArterialSearch, find_arterial_masks
from stnet_lib.pipeline import compute_maps


def ratios(min_voxels: list[int], seed: int, n_subjects: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per minimum: the CBF ratios and the voxel counts of the automatic AIF, one per subject."""
    out = {m: ([], []) for m in min_voxels}
    default = curves.find_arterial_masks
    try:
        for i in range(n_subjects):
            scans, _ = subject_scans("quick", seed + i, has_lesion=i % 4 != 3)
            true = compute_maps(scans["true"], "osvd")
            brain = scans["auto"].brain_mask & np.isfinite(true.cbf)
            reference = np.nanmedian(true.cbf[brain])
            for m in min_voxels:  # prepare_curves looks the search up in its module: swap the settings there
                curves.find_arterial_masks = functools.partial(find_arterial_masks,
                                                               config=ArterialSearch(min_arterial_voxels=m))
                found = curves.prepare_curves(scans["auto"]).scan.aif_mask
                auto = compute_maps(dataclasses.replace(scans["true"], aif_mask=found), "osvd")
                out[m][0].append(np.nanmedian(auto.cbf[brain]) / reference)
                out[m][1].append(int(found.sum()))
    finally:
        curves.find_arterial_masks = default
    return {m: (np.array(r), np.array(n)) for m, (r, n) in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-voxels", nargs="+", type=int, default=[5, 10, 20])
    parser.add_argument("--seed", type=int, default=500)
    parser.add_argument("--subjects", type=int, default=80)
    args = parser.parse_args()
    for m, (ratio, voxels) in ratios(args.min_voxels, args.seed, args.subjects).items():
        print(f"seeds {args.seed}–{args.seed + args.subjects - 1}, at least {m} voxels: "
              f"{np.mean(np.abs(ratio - 1) <= 0.15):.1%} within ±15 %, median {np.median(ratio):.3f}, "
              f"range {ratio.min():.3f}–{ratio.max():.3f}, voxels median {np.median(voxels):.0f}")


if __name__ == "__main__":
    main()
