"""Sub-frame Tmax (issue #15): every method's Tmax error against the simulation's truth, per TR and peak rule.

Noise-free tissue curves of the synthetic cohort's kind (stnet_lib/experiments/tmax_curves.py, from
``stnet_lib.simulation``: its AIF, its five residue shapes, exponential dispersion, curves
computed on a 0.05 s grid and sampled every TR over a 100 s window) with delays 0–8 s in steps of
0.25 s, every shape, MTT {3, 5, 8, 12} s and dispersion {0.5, 1, 2, 3} s (2,640 voxels); the
true AIF. The truth is the simulation's: delay + argmax of the dispersed residue on the fine grid.
For TR 1, 1.5 and 2 s, each method's residues are computed once and Tmax read from them by each
rule of ``tmax_eq7``: ``"sample"`` (before issue #15), ``"parabola"`` (sSVD's and TTV's),
``"bandlimited"`` (cSVD's and oSVD's: the exact maximum of the trigonometric interpolation,
circulant residues only), and ``"fourier16"``, the same maximum found by brute force on a 16×
finer interpolation (the slow form rejected in decision 0041, kept as a cross-check). oSVD runs
twice: with the TR-invariant OI (the default) and with Wu et al.'s per-sample OI ("osvd-per-sample",
before decision 0074). TTV runs with its voxels one apart in x, outside each other's mask
neighbourhood, so that its spatial TV couples none of them (only its temporal TV acts).

    python bench/tmax_subframe.py [--methods ssvd csvd osvd osvd-per-sample ttv] [--tr 1 1.5 2]

Prints one row per (method, TR, rule): mean absolute error, bias, 95th percentile and worst [s]
against the truth, and the delay-tracking error: the mean and worst |error − its median over the
33 delays of the same residue (shape, MTT, dispersion)|, the part of the error that changes when
only the delay moves (a rule that follows the delay continuously has none; the frame grid
gives ≈ TR/4); then the time each rule takes on 100,000 residues of 100 samples.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from stnet_lib.experiments.tmax_curves import DISPERSIONS_S, curves, tracking_error, voxel_grid
from stnet_lib.deconvolution import deconvolve
from stnet_lib.maps import peak_index, tmax_eq7

RULES = ("sample", "parabola", "bandlimited", "fourier16")


def fourier_tmax(residue: np.ndarray, dt_s: float, *, wrap: bool, upsample: int = 16, chunk: int = 1 << 13):
    """Tmax [s] at the maximum of the trigonometric interpolation, by brute force on a finer grid."""
    length = residue.shape[-1]
    period = length if wrap else 2 * (length - 1)
    out = np.empty(residue.shape[0])
    for start in range(0, residue.shape[0], chunk):
        block = residue[start : start + chunk]
        if not wrap:
            block = np.concatenate([block, block[:, -2:0:-1]], axis=-1)  # even about 0 and L − 1: no jump
        spectrum = np.fft.rfft(block, axis=-1)
        if period % 2 == 0:
            spectrum[:, -1] *= 0.5  # split the Nyquist term between ±f_N: a real interpolant
        fine = np.fft.irfft(spectrum, n=period * upsample, axis=-1)
        if not wrap:
            fine = fine[:, : (length - 1) * upsample + 1]
        out[start : start + chunk] = peak_index(fine, wrap=wrap) / upsample
    return out * dt_s


def tmax_by_rule(residue: np.ndarray, dt_s: float, *, wrap: bool, rule: str) -> np.ndarray | None:
    if rule == "fourier16":
        return fourier_tmax(residue, dt_s, wrap=wrap)
    if rule == "bandlimited" and not wrap:
        return None  # sSVD's linear residue has no period
    return tmax_eq7(residue, dt_s, wrap=wrap, peak=rule)


def residues(method: str, c_tissue: np.ndarray, c_aif: np.ndarray, tr_s: float) -> tuple[np.ndarray, bool]:
    """Flow-scaled residues (n_vox, L) of ``method`` and whether they are circulant."""
    if method == "ttv":  # voxels at even x, gaps between them: no spatial TV coupling
        volume = np.zeros((2 * len(c_tissue), 1, 1, c_tissue.shape[1]))
        volume[::2, 0, 0] = c_tissue
        mask = np.zeros(volume.shape[:3], bool)
        mask[::2] = True
        maps = deconvolve(volume, c_aif, tr_s, "ttv", mask=mask)
        return maps.residue[mask], True
    if method == "osvd-per-sample":
        return deconvolve(c_tissue, c_aif, tr_s, "osvd", oi_reference_tr_s=None).residue, True
    return deconvolve(c_tissue, c_aif, tr_s, method).residue, method != "ssvd"


def errors(estimate: np.ndarray, grid: pd.DataFrame) -> dict:
    """Error against the truth, and the delay-tracking error (see the module docstring) [s]."""
    error = estimate - grid.tmax_true_s.to_numpy()
    tracking = tracking_error(error, grid)
    return {"mae_s": np.abs(error).mean(), "bias_s": error.mean(), "p95_s": np.percentile(np.abs(error), 95),
            "worst_s": np.abs(error).max(), "tracking_mae_s": tracking.mean(), "tracking_worst_s": tracking.max()}


def measure(methods, trs, dispersions_s) -> pd.DataFrame:
    grid = voxel_grid(dispersions_s)
    rows = []
    for tr_s in trs:
        c_aif, c_tissue = curves(grid, tr_s)
        for method in methods:
            k, wrap = residues(method, c_tissue, c_aif, tr_s)
            for rule in RULES:
                tmax = tmax_by_rule(k, tr_s, wrap=wrap, rule=rule)
                if tmax is None:
                    continue
                rows.append({"method": method, "tr_s": tr_s, "rule": rule, **errors(tmax, grid)})
    return pd.DataFrame(rows)


def timing(n_vox: int = 100_000, length: int = 100) -> dict:
    residue = np.random.default_rng(0).standard_normal((n_vox, length))
    seconds = {}
    for rule in RULES:
        start = time.perf_counter()
        tmax_by_rule(residue, 1.0, wrap=True, rule=rule)
        seconds[rule] = time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["ssvd", "csvd", "osvd", "osvd-per-sample", "ttv"])
    parser.add_argument("--tr", nargs="+", type=float, default=[1.0, 1.5, 2.0])
    parser.add_argument("--dispersion", nargs="+", type=float, default=list(DISPERSIONS_S))
    args = parser.parse_args()
    table = measure(args.methods, args.tr, args.dispersion)
    with pd.option_context("display.width", 120, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    print("seconds per 100,000 residues of 100 samples:", {k: round(v, 3) for k, v in timing().items()})


if __name__ == "__main__":
    main()
