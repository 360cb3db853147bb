"""Choose TTV's weights and iterations on validation subjects of the synthetic cohort (issue #7).

The search behind ``TTVConfig``'s defaults (``stnet_lib/deconvolution/ttv.py``):

* volumes: ``--n-subjects`` subjects of :mod:`stnet_lib.simulation` drawn from validation seeds
  (``VALIDATION_SEED + i``; the tests use other seeds), 64×64×6 voxels of 3.6×3.6×5 mm, 50 frames,
  each at every SNR of ``--snr`` (Rician, σ = median brain S0 / SNR; default 10 and 20, the noise
  levels the method exists for), taken through the library's pipeline (eq. 1–2, AIF/VOF, k_AV);
* grid: g_s × g_t × n_iter (the dimensionless weights of the module docstring);
* criterion: CBF RMSE against the truth over the brain, averaged over volumes; Tmax mean absolute
  error is printed beside it, with sSVD, cSVD and oSVD at their default thresholds as references.

Usage: ``python bench/tune_ttv.py [--n-subjects 2] [--snr 10 20] [--out table.csv]``
(about 10 min on 2 CPU cores for the default grid).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from stnet_lib.deconvolution.tuning import cohort_volume, grid_search, method_errors

VALIDATION_SEED = 7000
GRID = {"weights_spatial": (0.01, 0.03, 0.1, 0.3), "weights_temporal": (1e-3, 3e-3, 1e-2), "n_iters": (100,)}
SETTING = ["weight_spatial", "weight_temporal", "n_iter"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subjects", type=int, default=2)
    parser.add_argument("--snr", type=float, nargs="+", default=[10.0, 20.0])
    parser.add_argument("--out", help="CSV file for the full table")
    args = parser.parse_args()
    torch.set_num_threads(1)  # many small solves: two threads thrash on a shared 2-core machine
    pd.set_option("display.width", 160)
    volumes = {f"subject {i} SNR {snr:g}": cohort_volume(np.random.default_rng(VALIDATION_SEED + i), snr=snr)
               for i in range(args.n_subjects) for snr in args.snr}
    svd = pd.concat([method_errors(v.c_tissue, v.c_aif, v.dt_s, v.mask, v.cbf, v.tmax,
                                   {"ssvd": "ssvd", "csvd": "csvd", "osvd": "osvd"}).assign(volume=label)
                     for label, v in volumes.items()])
    print("SVD methods at their default thresholds:")
    print(svd.pivot(index="method", columns="volume", values=["cbf_rmse", "tmax_mae_s"]).round(2).to_string())
    print(svd.groupby("method")[["cbf_rmse", "cbf_bias", "tmax_mae_s"]].mean().round(3).to_string())
    start = time.perf_counter()
    table = grid_search(volumes, **GRID)
    print(f"\nTTV grid ({len(table)} runs, {time.perf_counter() - start:.0f} s):")
    print(table.pivot(index=SETTING, columns="volume", values="cbf_rmse").round(2).to_string())
    summary = table.groupby(SETTING)[["cbf_rmse", "cbf_bias", "tmax_mae_s"]].mean().sort_values("cbf_rmse")
    print("\nMean over volumes, best CBF RMSE first:")
    print(summary.round(3).to_string())
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
