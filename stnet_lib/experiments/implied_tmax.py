"""The Tmax a tissue curve implies at a given MTT: a consistency check of Tmax maps where no truth exists.

With no dispersion outside the tissue, C_t(t) = F · (C_a ⊗ R)(t) with R(t) = 1 − H(t − d), H the
transit times' distribution function: R is 1 at t = d and never larger, so **Tmax = d whatever
the residue's shape**. What the shape sets is how much the tissue curve is spread beyond the AIF,
and that spread trades against d: a curve that rises with its AIF fits a short MTT and no delay
as well as a longer MTT and a tissue that leads its AIF. Given the MTT, the trade-off is fixed and
d is the one timing left. :func:`implied_tmax_s` fits it per curve, with an exponential residue
e^{−(t−d)/MTT} (least squares over a grid of d; the scale F ≥ 0 in closed form).

A method's Tmax and MTT maps are consistent with the curves it read where its Tmax is near the
Tmax implied at its own MTT. On the real slice, where the AIF is found automatically and nothing is
known, this says which methods' Tmax the curves support (:func:`tmax_consistency`). The check's
own error off our simulator is measured on OSIPI's cases, whose residue is not exponential and
whose Tmax is known, with their AIF also moved later (:func:`osipi_implied_tmax`).
Why and what it gives: docs/decisions/0082-tmax-implied-by-mtt.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["DELAYS_S", "implied_tmax_s", "tmax_consistency", "osipi_implied_tmax"]

#: Delays tried [s] (tissue leading its AIF by up to 10 s, or following it by up to 15 s).
DELAYS_S = np.round(np.arange(-10.0, 15.0 + 1e-9, 0.05), 2)


def _shifted_models(c_aif: np.ndarray, dt_s: float, mtt_s: float, delays_s: np.ndarray, upsample: int) -> np.ndarray:
    """(T, n_delays): C_a ⊗ e^{−t/MTT} on a grid ``upsample`` times finer, sampled at t − d (0 before the start)."""
    n = c_aif.size
    lead = int(np.ceil(max(0.0, -delays_s.min()) / dt_s)) + 1  # a negative d reads past the last frame
    fine_dt = dt_s / upsample
    fine = np.arange((n + lead) * upsample) * fine_dt
    aif = np.interp(fine, np.arange(n) * dt_s, c_aif)  # the last frame held past the end
    kernel = np.exp(-fine / mtt_s) * fine_dt
    conv = np.fft.irfft(np.fft.rfft(aif, 2 * fine.size) * np.fft.rfft(kernel, 2 * fine.size))[: fine.size]
    position = (np.arange(n)[:, None] * dt_s - delays_s[None, :]) / fine_dt  # (T, n_delays), in fine steps
    low = np.floor(position).astype(int)
    frac = position - low
    inside = low >= 0
    low_c, high_c = np.clip(low, 0, fine.size - 1), np.clip(low + 1, 0, fine.size - 1)
    return np.where(inside, (1 - frac) * conv[low_c] + frac * conv[high_c], 0.0)


def implied_tmax_s(c_tissue, c_aif, dt_s: float, mtt_s, *, delays_s: np.ndarray = DELAYS_S, upsample: int = 10,
                   mtt_step_s: float = 0.1) -> np.ndarray:
    """Tmax [s] of each tissue curve at the given MTT: the delay d that best fits C_t ≈ F·(C_a ⊗ e^{−(t−d)/MTT}).

    Parameters
    ----------
    c_tissue : array, shape (n, T) or (T,)
        Tissue concentration curves [mM] on the AIF's frames.
    c_aif : array, shape (T,)
        Arterial concentration [mM].
    dt_s : float
        Frame interval [s].
    mtt_s : float or array, shape (n,)
        MTT [s] per curve (rounded to ``mtt_step_s``); NaN or ≤ 0 gives NaN.
    delays_s : array
        The delays tried [s] (:data:`DELAYS_S`: −10 to 15 s by 0.05 s).

    Returns
    -------
    ndarray, shape (n,) (a float for one curve): NaN where no delay gives the curve a positive scale.
    """
    tissue = np.atleast_2d(np.asarray(c_tissue, dtype=float))
    mtt = np.broadcast_to(np.asarray(mtt_s, dtype=float), (len(tissue),))
    aif, delays = np.asarray(c_aif, dtype=float), np.asarray(delays_s, dtype=float)
    out = np.full(len(tissue), np.nan)
    usable = np.isfinite(mtt) & (mtt > 0) & np.isfinite(tissue).all(axis=1)
    steps = np.maximum(np.round(np.where(usable, mtt, mtt_step_s) / mtt_step_s), 1).astype(int)
    for step in np.unique(steps[usable]):
        rows = np.flatnonzero(usable & (steps == step))
        models = _shifted_models(aif, dt_s, step * mtt_step_s, delays, upsample)  # (T, n_delays)
        proj = tissue[rows] @ models  # (n_rows, n_delays)
        norm = np.maximum((models**2).sum(axis=0), np.finfo(float).tiny)
        explained = np.where(proj > 0, proj**2 / norm, -np.inf)  # residual = |C_t|² − explained (F ≥ 0)
        best = explained.argmax(axis=1)
        found = np.isfinite(explained[np.arange(len(rows)), best])
        out[rows[found]] = delays[best[found]]
    return out if np.ndim(c_tissue) > 1 else float(out[0])


def tmax_consistency(c_tissue: np.ndarray, c_aif: np.ndarray, dt_s: float, brain: np.ndarray, maps: dict,
                     mtts_s=(3.0, 4.0, 5.0)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each method's Tmax beside the Tmax its own MTT implies, over the brain; and the brain's mean curve's trade-off.

    Parameters
    ----------
    c_tissue : array, shape (n_brain, T)
        The brain voxels' concentrations (``brain``'s C order), read with ``c_aif`` (``scan_concentrations``).
    brain : bool array (x, y, z)
    maps : dict
        Method → PerfusionMaps of the same scan and AIF.
    mtts_s : sequence of float
        MTTs [s] at which the brain's mean curve's implied Tmax is also given (second table).

    Returns
    -------
    DataFrame
        One row per method: its brain-median Tmax and MTT [s], the brain median of the Tmax implied
        voxel by voxel at its own MTT, their difference, and the median |Tmax − implied| over voxels.
    DataFrame
        The brain's mean curve: the Tmax implied at each of ``mtts_s``.
    """
    rows = []
    for method, m in maps.items():
        tmax, mtt = m.tmax[brain], m.mtt[brain]
        implied = implied_tmax_s(c_tissue, c_aif, dt_s, mtt)
        both = np.isfinite(tmax) & np.isfinite(implied)
        rows.append({"method": method, "tmax_median_s": float(np.nanmedian(tmax)), "mtt_median_s": float(np.nanmedian(mtt)),
                     "implied_tmax_median_s": float(np.nanmedian(implied)),
                     "difference_s": float(np.nanmedian(tmax) - np.nanmedian(implied)),
                     "voxel_abs_difference_median_s": float(np.median(np.abs(tmax[both] - implied[both]))),
                     "voxels": int(both.sum())})
    mean_curve = np.nanmean(c_tissue, axis=0)
    trade_off = pd.DataFrame({"mtt_s": list(mtts_s),
                              "implied_tmax_s": [implied_tmax_s(mean_curve, c_aif, dt_s, mtt) for mtt in mtts_s]})
    return pd.DataFrame(rows), trade_off


def osipi_implied_tmax(cases, delays_s=(0.0, 1.0, 2.0, 3.0)) -> pd.DataFrame:
    """The check's error off our simulator: OSIPI's cases (Tmax 0 s, residue not exponential) at their true MTT.

    ``cases`` yields (case, c_tissue, c_aif) as ``validation._osipi_cases`` does; each case's AIF is
    also moved later by each of ``delays_s`` (true Tmax −delay). One row per case × delay.
    """
    rows = []
    for case, c_tissue, c_aif in cases:
        mtt_s = 60.0 * case.cbv / case.cbf  # central volume theorem, OSIPI's CBV [ml/100ml] and CBF [ml/100ml/min]
        time_s = np.arange(len(c_aif)) * case.tr
        for delay in delays_s:
            moved = np.interp(time_s - delay, time_s, c_aif, left=0.0)
            implied = implied_tmax_s(c_tissue, moved, case.tr, mtt_s)
            rows.append({"case": case.label, "mtt_s": mtt_s, "delay_s": float(delay), "truth_s": 0.0 - float(delay),
                         "implied_tmax_s": implied, "error_s": implied + float(delay)})
    return pd.DataFrame(rows)
