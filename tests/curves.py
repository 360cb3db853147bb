"""Noise-free tissue and arterial curves with a known answer, for the physics round trips.

An independent forward model written for the tests: a gamma-variate AIF and an exponential
residue convolved on a fine time grid (0.05 s), shifted by a delay, sampled every TR.
"""

import numpy as np

from stnet_lib.constants import K_H, RHO_G_PER_ML

FINE_DT_S = 0.05


def gamma_variate(time_s, *, t0_s=10.0, alpha=3.0, beta_s=1.5, peak_mM=6.0):
    """Gamma-variate AIF [mM] peaking at ``peak_mM`` (Madsen 1992)."""
    shifted = np.clip(time_s - t0_s, 0.0, None)
    curve = shifted**alpha * np.exp(-shifted / beta_s)
    return peak_mM * curve / curve.max()


def tissue_curves(cbf, cbv, *, delay_s=0.0, tr_s=1.0, n_frames=60, kh=K_H, rho=RHO_G_PER_ML):
    """Arterial (N,) and tissue (len(cbf), N) concentrations [mM] for CBF [ml/100g/min], CBV [ml/100g].

    C_t(t) = (ρ/k_H)·F·(C_a ⊗ R)(t − delay), R(t) = exp(−t/MTT), MTT = 60·CBV/CBF.
    """
    cbf = np.atleast_1d(np.asarray(cbf, dtype=float))
    cbv = np.broadcast_to(np.asarray(cbv, dtype=float), cbf.shape)
    fine_t = np.arange(0, n_frames * tr_s, FINE_DT_S)
    c_aif_fine = gamma_variate(fine_t)
    mtt_s = 60.0 * cbv / cbf
    residue = np.exp(-fine_t[None, :] / mtt_s[:, None])
    flow_per_s = cbf / 6000.0  # ml/g/s
    conv = np.array([np.convolve(c_aif_fine, r)[: fine_t.size] for r in residue]) * FINE_DT_S
    c_tissue_fine = (rho / kh) * flow_per_s[:, None] * conv
    frames = np.arange(n_frames) * tr_s
    c_aif = np.interp(frames, fine_t, c_aif_fine)
    c_tissue = np.array([np.interp(frames - delay_s, fine_t, c, left=0.0) for c in c_tissue_fine])
    return c_aif, c_tissue
