"""Noise-free curves of the synthetic cohort's kind on a grid of delays, for Tmax checks (issue #15).

Built from ``stnet_lib.simulation``'s own pieces (its AIF, its five residue shapes, exponential
dispersion, curves on a 0.05 s grid sampled every TR), with its truth: Tmax = delay + argmax of
the dispersed residue on the fine grid. Used by tests/test_maps_tmax.py and bench/tmax_subframe.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from stnet_lib.simulation.synthesis import tissue_concentration
from stnet_lib.simulation.vascular import RESIDUE_SHAPES, arterial_input, residue_peak_time_s

FINE_STEP_S = 0.05
#: Acquisition length [s]: 100, 67 and 50 frames at TR 1, 1.5 and 2 s, the same window for every
#: TR (with 50 frames at TR 1 s the slowest curves are cut off, which is another effect).
DURATION_S = 100.0
#: A typical AIF of the cohort (middle of the ranges in simulation.subject.draw_acquisition).
AIF = {"t0_s": 14.0, "alpha": 3.5, "beta_s": 1.6, "peak_mM": 7.5, "recirc_delay_s": 9.0,
       "recirc_fraction": 0.15, "recirc_tau_s": 12.0}
DELAYS_S = np.arange(0.0, 8.0001, 0.25)
MTTS_S = (3.0, 5.0, 8.0, 12.0)
DISPERSIONS_S = (0.5, 1.0, 2.0, 3.0)


def voxel_grid(dispersions_s=DISPERSIONS_S, mtts_s=MTTS_S, delays_s=DELAYS_S) -> pd.DataFrame:
    """Every combination of delay, residue shape, MTT and dispersion (one row per voxel), with the truth."""
    rows = itertools.product(delays_s, range(len(RESIDUE_SHAPES)), mtts_s, dispersions_s)
    grid = pd.DataFrame(list(rows), columns=["delay_s", "shape", "mtt_s", "dispersion_s"])
    peak_s = residue_peak_time_s(grid["shape"].to_numpy(), grid.mtt_s.to_numpy(), grid.dispersion_s.to_numpy())
    grid["tmax_true_s"] = grid.delay_s + peak_s
    return grid


def curves(grid: pd.DataFrame, tr_s: float) -> tuple[np.ndarray, np.ndarray]:
    """True AIF (N,) and noise-free tissue curves (n_vox, N) [mM] sampled every ``tr_s`` (a multiple of 0.05 s)."""
    n_sub, n_frames = int(round(tr_s / FINE_STEP_S)), int(round(DURATION_S / tr_s))
    n_fine = (n_frames - 1) * n_sub + 1
    c_all = arterial_input((np.arange(2 * n_fine) / 2.0 - 0.5) * FINE_STEP_S, **AIF)
    c_half, c_aif = c_all[0::2], c_all[1::2][::n_sub]
    delay_steps = np.round(grid.delay_s.to_numpy() / FINE_STEP_S).astype(np.int64)
    c_tissue = tissue_concentration(c_half, FINE_STEP_S, n_sub, n_frames, cbf=np.full(len(grid), 40.0),
                                    mtt_s=grid.mtt_s.to_numpy(), dispersion_s=grid.dispersion_s.to_numpy(),
                                    shape=grid["shape"].to_numpy(), delay_steps=delay_steps)
    return c_aif, c_tissue.astype(np.float64)


def tracking_error(error_s: np.ndarray, grid: pd.DataFrame) -> np.ndarray:
    """|error − its median over the delays of the same residue (shape, MTT, dispersion)| [s].

    The part of the Tmax error that changes when only the delay moves: none for an estimator that
    follows the delay continuously, about TR/4 on average for one on the frame grid.
    """
    error = pd.Series(np.asarray(error_s, dtype=np.float64), index=grid.index)
    median = error.groupby([grid["shape"], grid.mtt_s, grid.dispersion_s]).transform("median")
    return (error - median).abs().to_numpy()
