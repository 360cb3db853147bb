"""Deconvolution throughput: voxels/s of sSVD, cSVD, oSVD and TTV, beside the paper's TTV figure.

sSVD, cSVD and oSVD run on 100,000 voxels × 50 frames through ``stnet_lib.deconvolution.deconvolve``
(torch, vectorized over voxels) and, in the same run, as a plain per-voxel numpy loop (dense SVD
pseudo-inverse applied voxel by voxel, oSVD trying thresholds voxel by voxel) on a subset; the
ratio is printed. TTV runs on a 128×128×10×50 volume (issue #7; ``bench/deconvolution_ttv.py``,
which also prints its CPU time), against a plainly written Chambolle–Pock loop; the paper's Fang
TTV took 6.9 s per 10,000 voxels (1,450 voxels/s); the goal here is ≥ 10,000 voxels/s on 2 cores.

    python bench/deconvolution.py [--voxels 100000] [--device cpu] [--loop-voxels 300] [--no-ttv]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling bench/deconvolution_ttv.py
from deconvolution_ttv import PAPER_VOXELS_PER_S, measure as measure_ttv  # noqa: E402

from stnet_lib.deconvolution import deconvolve  # noqa: E402
from stnet_lib.deconvolution._matrices import circulant_aif_matrix, toeplitz_aif_matrix  # noqa: E402
from stnet_lib.deconvolution.svd import OSVD_THRESHOLDS  # noqa: E402
from stnet_lib.experiments.ttv_tuning import make_ttv_phantom  # noqa: E402

TR_S, N_FRAMES = 1.5, 50


def make_curves(n_voxels: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """A noisy voxel table (n_voxels, 50) [mM] of 64 distinct noise-free curves (an 8×8 phantom slice)."""
    phantom = make_ttv_phantom(rng, shape=(8, 8, 1), n_t=N_FRAMES, tr_s=TR_S, snr=1e6, aif_snr=1e6)
    c_aif, base = phantom.c_aif, phantom.c_tissue.reshape(64, N_FRAMES)
    curves = base[rng.integers(0, 64, n_voxels)]
    return c_aif, curves + rng.normal(0, 0.02, curves.shape)


def _pinv(matrix, threshold):
    u, s, vh = np.linalg.svd(matrix)
    keep = s >= threshold * s[0]
    return (vh[keep].T / s[keep]) @ u[:, keep].T


def naive_loop(method: str, c_tissue: np.ndarray, c_aif: np.ndarray) -> None:
    """The simple implementation: SVD once, then voxel by voxel in Python (oSVD: thresholds per voxel)."""
    if method == "ssvd":
        pinv = _pinv(toeplitz_aif_matrix(c_aif, TR_S), 0.2)
        for curve in c_tissue:
            residue = pinv @ curve
            residue.max(), residue.argmax()
        return
    matrix = circulant_aif_matrix(c_aif, TR_S)
    pinvs = {t: _pinv(matrix, t) for t in (OSVD_THRESHOLDS if method == "osvd" else (0.1,))}
    for curve in c_tissue:
        padded = np.concatenate([curve, np.zeros_like(curve)])
        for threshold, pinv in pinvs.items():
            residue = pinv @ padded
            d2 = np.abs(np.diff(residue, n=2)).sum() / (residue.size * residue.max())
            if method == "csvd" or d2 <= 0.035:
                break


def rate(function, n_voxels: int, repeats: int = 3) -> float:
    """Best of ``repeats`` runs, in voxels per second."""
    best = min(_timed(function) for _ in range(repeats))
    return n_voxels / best


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voxels", type=int, default=100_000)
    parser.add_argument("--loop-voxels", type=int, default=300)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-ttv", action="store_true", help="skip TTV (about 10 s on 2 CPU cores)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    c_aif, c_tissue = make_curves(args.voxels, rng)
    print(f"{args.voxels:,} voxels × {N_FRAMES} frames, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'method':8s} {'voxels/s':>12s} {'s/10k vox':>10s} {'loop vox/s':>11s} {'speed-up':>9s}")
    for method in ("ssvd", "csvd", "osvd"):
        fast = rate(lambda: deconvolve(c_tissue, c_aif, TR_S, method, device=args.device, keep_residue=False), args.voxels)
        loop = rate(lambda: naive_loop(method, c_tissue[: args.loop_voxels], c_aif), args.loop_voxels, repeats=1)
        print(f"{method:8s} {fast:12,.0f} {1e4 / fast:10.4f} {loop:11,.0f} {fast / loop:8.0f}×")
    if not args.no_ttv:
        m = measure_ttv(args.device, torch.get_num_threads())
        fast, loop = m["n_voxels"] / m["seconds"], m["n_voxels"] / m["naive_seconds"]
        print(f"{'ttv':8s} {fast:12,.0f} {1e4 / fast:10.4f} {loop:11,.0f} {fast / loop:8.1f}×   "
              f"({'×'.join(map(str, m['shape']))}, {m['n_iter']} iterations; loop: plain Chambolle–Pock)")
        print(f"ttv against the paper's Fang TTV ({PAPER_VOXELS_PER_S:,.0f} voxels/s): ×{fast / PAPER_VOXELS_PER_S:.1f}; "
              f"goal 10,000 voxels/s {'met' if fast >= 10_000 else 'NOT met'}")
    print("paper (Fang's TTV, A100): 6.9 s per 10,000 voxels; ST-Net 0.77 s")


if __name__ == "__main__":
    main()
