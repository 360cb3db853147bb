"""Noise robustness of the deconvolution methods on unseen synthetic subjects (issue #7's criterion).

Runs :func:`stnet_lib.experiments.noise_study.noise_study` (every method at its defaults; the AIF from
the noise-free series) and prints, per SNR, the errors pooled over the subjects' brain voxels and
TTV's ratios: CBF RMSE against the truth over the best SVD method's (issue #7 asks for ≤ 0.85),
the CBF change caused by the noise over the least noisy SVD method's, and Tmax MAE over the better
of cSVD and oSVD (≤ 1). The report's ``baselines`` notebook shows the same study (``quick``: seeds
9101–9106; ``paper``: 9101–9120 at SNR 40, 20, 10, 5).

Usage: ``python bench/noise_study.py [--first-seed 9101] [--n-subjects 20] [--snr 40 20 10 5]
[--shape 256 256 3] [--voxel-mm 0.9 0.9 5] [--out table.csv]`` (about 11 min for the default 20
subjects on the paper's grid at 4 SNRs on 2 CPU cores; ``--shape 64 64 6 --voxel-mm 3.6 3.6 5``,
the quick cohort's coarser voxels, about 50 s).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from stnet_lib.experiments.noise_study import noise_study, noise_study_summary
from stnet_lib.experiments.ttv_tuning import pooled_errors, ratios_to_svd
from stnet_lib.profiles import NoiseStudyPlan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-seed", type=int, default=9101)
    parser.add_argument("--n-subjects", type=int, default=20)
    parser.add_argument("--snr", type=float, nargs="+", default=[40.0, 20.0, 10.0, 5.0])
    parser.add_argument("--shape", type=int, nargs=3, default=list(NoiseStudyPlan().shape), help="subject grid (x y z); the paper's in-plane grid")
    parser.add_argument("--voxel-mm", type=float, nargs=3, default=list(NoiseStudyPlan().voxel_mm), help="voxel size [mm]; the paper's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", help="CSV file for the per-SNR summary")
    args = parser.parse_args()
    torch.set_num_threads(2)
    seeds = range(args.first_seed, args.first_seed + args.n_subjects)
    start = time.perf_counter()
    errors, noise_induced = noise_study(seeds, args.snr, shape=tuple(args.shape), voxel_mm=tuple(args.voxel_mm),
                                        device=args.device, progress=True)
    summary = noise_study_summary(errors, noise_induced)
    print(f"{args.n_subjects} subjects (seeds {seeds[0]}–{seeds[-1]}, {args.shape} voxels of {args.voxel_mm} mm), "
          f"{time.perf_counter() - start:.0f} s")
    wide = summary.pivot(index="snr", columns="method", values=["cbf_rmse", "noise_cbf_rmse", "tmax_mae_s"])
    pd.set_option("display.width", 200)
    print(wide.sort_index(ascending=False).round(2).to_string())
    ratios = ratios_to_svd(pooled_errors(errors, ["snr"]), ["snr"]).assign(
        noise_ratio=ratios_to_svd(pooled_errors(noise_induced, ["snr"]), ["snr"])["cbf_ratio"]
    ).sort_index(ascending=False)
    print("\nTTV / best SVD method (CBF RMSE; issue #7: ≤ 0.85), / least noisy SVD method (noise-induced CBF "
          "change), / better of cSVD and oSVD (Tmax MAE; ≤ 1):")
    print(ratios.round(3).to_string())
    worst = ratios_to_svd(errors, ["snr", "seed"])["cbf_ratio"].groupby("snr").agg(["median", "max"])
    print("\nPer subject, TTV / best SVD method (CBF RMSE):")
    print(worst.sort_index(ascending=False).round(3).to_string())
    if args.out:
        summary.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
