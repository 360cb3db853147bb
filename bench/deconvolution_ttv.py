"""TTV speed: voxels/s on a 128×128×10×50 volume (issue #7), beside the paper's 6.9 s per 10,000 voxels.

Prints voxels/s of ``ttv_residues`` (wall clock, and from the process's CPU time: the figure for
uncontended cores when other jobs share the machine) at its defaults (all 163,840 voxels in the mask), its ratio to a
naive Chambolle–Pock loop in the same run (out-of-place torch ops, ``torch.diff`` and padding,
timed on a few iterations and scaled to the same count) and to cSVD, and the paper's figure for
Fang's TTV (1,450 voxels/s). Goal: ≥ 10,000 voxels/s on the 2-core CPU.

Usage: ``python bench/deconvolution_ttv.py [--device cpu|cuda] [--threads 2]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from stnet_lib.deconvolution import svd, ttv
from stnet_lib.deconvolution._matrices import circulant_aif_matrix
from stnet_lib.experiments.ttv_tuning import make_ttv_phantom

PAPER_VOXELS_PER_S = 10_000 / 6.9


def _volume() -> tuple[np.ndarray, np.ndarray, float]:
    """128×128×10×50 curves: a 32×32×10 phantom (SNR 20) tiled 4×4 in-plane."""
    small = make_ttv_phantom(np.random.default_rng(0), shape=(32, 32, 10), snr=20.0)
    return np.tile(small.c_tissue, (4, 4, 1, 1)), small.c_aif, small.dt_s


def _naive_iterations(c, a_mat, k, config, n_iter) -> None:
    """The same iteration written plainly: new tensors every step, torch.diff, padding."""
    tau = config.step_balance / (config.weight_spatial * 4.0)
    sigma = 0.99 / (tau * 16.0)
    prox = torch.linalg.inv(torch.eye(a_mat.shape[0]) + tau * a_mat.T @ a_mat)
    offset = (tau * c @ a_mat) @ prox
    weights = [config.weight_spatial] * 3 + [config.weight_temporal]
    duals = [torch.zeros_like(torch.diff(k, dim=d)) for d in range(4)]
    k_bar = k
    for _ in range(n_iter):
        duals = [torch.clamp(y + sigma * torch.diff(k_bar, dim=d), -w, w) for d, (y, w) in enumerate(zip(duals, weights))]
        adjoint = sum(F.pad(y, (0, 0) * (3 - d) + (1, 0)).narrow(d, 0, k.shape[d])
                      - F.pad(y, (0, 0) * (3 - d) + (0, 1)).narrow(d, 0, k.shape[d]) for d, y in enumerate(duals))
        k_new = (k + tau * adjoint) @ prox + offset
        k_bar, k = 2 * k_new - k, k_new


def measure(device: str = "cpu", threads: int = 2) -> dict:
    """Seconds of TTV (wall clock and process CPU time), of the naive loop and of cSVD on the volume."""
    torch.set_num_threads(threads)
    c_tissue, c_aif, dt_s = _volume()
    n_vox = int(np.prod(c_tissue.shape[:3]))
    config = ttv.TTVConfig()
    ttv.ttv_residues(c_tissue[:16, :16, :2], c_aif, dt_s, config=config, device=device)  # warm-up
    start, cpu_start = time.perf_counter(), time.process_time()
    ttv.ttv_residues(c_tissue, c_aif, dt_s, config=config, device=device)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    start = time.perf_counter()
    svd.csvd(torch.from_numpy(c_tissue.reshape(n_vox, -1)).to(device), torch.from_numpy(c_aif).to(device), dt_s)
    csvd_seconds = time.perf_counter() - start
    a_mat = torch.as_tensor(circulant_aif_matrix(c_aif, dt_s), dtype=torch.float32)
    c = torch.zeros(c_tissue.shape[:3] + (a_mat.shape[0],))
    c[..., : c_tissue.shape[-1]] = torch.from_numpy(c_tissue / c_tissue.max())
    n_naive = 10
    start = time.perf_counter()
    _naive_iterations(c, a_mat / torch.linalg.matrix_norm(a_mat, 2), c.clone(), config, n_naive)
    naive_seconds = (time.perf_counter() - start) * config.n_iter / n_naive
    return {"shape": c_tissue.shape, "n_voxels": n_vox, "n_iter": config.n_iter, "seconds": seconds,
            "cpu_seconds": cpu_seconds, "naive_seconds": naive_seconds, "csvd_seconds": csvd_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    m = measure(args.device, args.threads)
    n_vox, seconds = m["n_voxels"], m["seconds"]
    print(f"TTV ({m['n_iter']} iterations, {args.device}, {args.threads} threads) on {m['shape']}: "
          f"{seconds:.2f} s, {n_vox / seconds:,.0f} voxels/s ({10_000 * seconds / n_vox:.2f} s per 10,000 voxels); "
          f"CPU time {m['cpu_seconds']:.1f} s, i.e. {n_vox * args.threads / m['cpu_seconds']:,.0f} voxels/s on "
          f"{args.threads} uncontended cores")
    print(f"  naive loop: {n_vox / m['naive_seconds']:,.0f} voxels/s (×{m['naive_seconds'] / seconds:.1f} slower); "
          f"cSVD: {n_vox / m['csvd_seconds']:,.0f} voxels/s; paper's Fang TTV: {PAPER_VOXELS_PER_S:,.0f} voxels/s "
          f"(ours ×{n_vox / seconds / PAPER_VOXELS_PER_S:.1f}); goal 10,000 voxels/s: "
          f"{'met' if n_vox / seconds >= 10_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
