"""The Tmax a tissue curve implies at a given MTT: a consistency check of Tmax maps where no truth exists.

Model: C_t(t) = F · (C_a(· − d) ⊗ R₀)(t), the arterial curve delayed by d (negative: the tissue leads
it) and convolved with a residue R₀ that starts at 1 at τ = 0 and never rises (R₀ = 1 − H, H the
transit times' distribution function). Relative to the given AIF the residue is R₀(t − d): 1 at
t = d and never larger, so **Tmax = d whatever R₀'s shape** (its first maximum, where R₀ is flat
at its top). The shape only sets how much the tissue curve is spread beyond the AIF, and that
spread trades against d: a curve that rises with its AIF fits a short MTT and no delay as well as
a longer MTT and a tissue that leads its AIF. Given the MTT, the trade-off is fixed and d is the one
timing left. :func:`implied_tmax_s` fits it per curve with R₀ = e^{−τ/MTT} (least squares over a
grid of d; the scale F ≥ 0 in closed form). It assumes no dispersion between the AIF's vessel and
the tissue beyond what R₀ holds; dispersion would add to Tmax what the check cannot see.

A method's Tmax and MTT maps are consistent with the curves it read where its Tmax is near the
Tmax implied at its own MTT. The check's own offsets are measured where Tmax is known: OSIPI's
cases, whose residue is not exponential (:func:`osipi_implied_tmax`), and this project's synthetic
cohort (:func:`cohort_offsets`), which also gives each method's own Tmax bias, so that the real
slice can be read both ways (:func:`corrected_readings`).
Why and what it gives: docs/decisions/0082-tmax-implied-by-mtt.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["DELAYS_S", "implied_tmax_s", "tmax_consistency", "osipi_implied_tmax", "cohort_offsets",
           "corrected_readings"]

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
    kernel[0] *= 0.5  # trapezoid rule: the τ = 0 sample carries half a step (a full one shifts the fit half a step)
    conv = np.fft.irfft(np.fft.rfft(aif, 2 * fine.size) * np.fft.rfft(kernel, 2 * fine.size))[: fine.size]
    position = (np.arange(n)[:, None] * dt_s - delays_s[None, :]) / fine_dt  # (T, n_delays), in fine steps
    low = np.floor(position).astype(int)
    frac = position - low
    inside = low >= 0
    low_c, high_c = np.clip(low, 0, fine.size - 1), np.clip(low + 1, 0, fine.size - 1)
    return np.where(inside, (1 - frac) * conv[low_c] + frac * conv[high_c], 0.0)


def implied_tmax_s(c_tissue, c_aif, dt_s: float, mtt_s, *, delays_s: np.ndarray = DELAYS_S, upsample: int = 10,
                   mtt_step_s: float = 0.1) -> np.ndarray:
    """Tmax [s] of each tissue curve at the given MTT: the delay d that best fits C_t ≈ F·(C_a(· − d) ⊗ e^{−τ/MTT}).

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
    delays, _ = _fit(c_tissue, c_aif, dt_s, mtt_s, delays_s=delays_s, upsample=upsample, mtt_step_s=mtt_step_s)
    return delays if np.ndim(c_tissue) > 1 else float(delays[0])


def _fit(c_tissue, c_aif, dt_s, mtt_s, *, delays_s=DELAYS_S, upsample=10, mtt_step_s=0.1):
    """Best delay [s] per curve and the fraction of the curve's energy Σ C_t² the fit leaves (NaN where none fits)."""
    tissue = np.atleast_2d(np.asarray(c_tissue, dtype=float))
    mtt = np.broadcast_to(np.asarray(mtt_s, dtype=float), (len(tissue),))
    aif, delays = np.asarray(c_aif, dtype=float), np.asarray(delays_s, dtype=float)
    out, left = np.full(len(tissue), np.nan), np.full(len(tissue), np.nan)
    usable = np.isfinite(mtt) & (mtt > 0) & np.isfinite(tissue).all(axis=1)
    steps = np.maximum(np.round(np.where(usable, mtt, mtt_step_s) / mtt_step_s), 1).astype(int)
    energy = (tissue**2).sum(axis=1)
    for step in np.unique(steps[usable]):
        rows = np.flatnonzero(usable & (steps == step))
        models = _shifted_models(aif, dt_s, step * mtt_step_s, delays, upsample)  # (T, n_delays)
        proj = tissue[rows] @ models  # (n_rows, n_delays)
        norm = np.maximum((models**2).sum(axis=0), np.finfo(float).tiny)
        explained = np.where(proj > 0, proj**2 / norm, -np.inf)  # residual = |C_t|² − explained (F ≥ 0)
        best = explained.argmax(axis=1)
        top = explained[np.arange(len(rows)), best]
        found = np.isfinite(top)
        out[rows[found]] = delays[best[found]]
        left[rows[found]] = 1.0 - top[found] / energy[rows[found]]
    return out, left


def tmax_consistency(c_tissue: np.ndarray, c_aif: np.ndarray, dt_s: float, brain: np.ndarray, maps: dict,
                     mtts_s=(0.2, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)) -> tuple[pd.DataFrame, pd.DataFrame]:
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
        The brain's mean curve: the Tmax implied at each of ``mtts_s`` and the fraction of the curve's
        energy that fit leaves (``residual_fraction``): which MTT the curve itself prefers.
    """
    rows = []
    for method, m in maps.items():
        tmax, mtt = m.tmax[brain], m.mtt[brain]
        implied = implied_tmax_s(c_tissue, c_aif, dt_s, mtt)
        both = np.isfinite(tmax) & np.isfinite(implied)  # every median over the same voxels
        tmax, mtt, implied = tmax[both], mtt[both], implied[both]
        rows.append({"method": method, "tmax_median_s": float(np.median(tmax)), "mtt_median_s": float(np.median(mtt)),
                     "implied_tmax_median_s": float(np.median(implied)),
                     "difference_s": float(np.median(tmax) - np.median(implied)),
                     "voxel_abs_difference_median_s": float(np.median(np.abs(tmax - implied))),
                     "voxels": int(both.sum())})
    mean_curve = np.nanmean(c_tissue, axis=0)
    delays, left = _fit(np.tile(mean_curve, (len(mtts_s), 1)), c_aif, dt_s, np.asarray(mtts_s, dtype=float),
                        mtt_step_s=0.05)
    trade_off = pd.DataFrame({"mtt_s": list(mtts_s), "implied_tmax_s": delays, "residual_fraction": left})
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


def cohort_offsets(manifest: pd.DataFrame, methods: dict, *, n_subjects: int | None = None,
                   split: str | None = "test", progress: bool = False) -> pd.DataFrame:
    """Where Tmax is known: each method's Tmax bias and the check's offsets, on a synthetic cohort.

    Parameters
    ----------
    manifest : DataFrame
        A loaded manifest (:func:`stnet_lib.manifest.load_manifest`) with reference ``tmax`` and ``mtt``
        maps; its physiological subjects of ``split`` (None: every split) are used, the first
        ``n_subjects`` of them, each with its own (true) arterial mask.
    methods : dict
        Method → options of :func:`stnet_lib.pipeline.compute_maps` (``"stnet"`` needs ``checkpoint``).

    Returns
    -------
    DataFrame
        One row per subject × method, brain medians minus the true brain-median Tmax [s]:
        ``tmax_bias_s`` (the method's Tmax), ``implied_at_its_mtt_offset_s`` (the Tmax implied at
        the method's MTT map) and ``implied_at_true_mtt_offset_s`` (at the true MTT map).
    """
    import nibabel as nib
    from tqdm.auto import tqdm

    from ..curves import prepare_curves
    from ..manifest import physiological_subjects
    from ..pipeline import compute_maps, scan_concentrations
    from .data import subject_scan

    subjects = physiological_subjects(manifest)
    if split is not None:
        subjects = subjects[subjects["split"] == split]
    if n_subjects is not None and n_subjects < len(subjects):  # evenly spaced: the manifest groups subjects by kind
        subjects = subjects.iloc[np.unique(np.linspace(0, len(subjects) - 1, n_subjects).round().astype(int))]
    rows = []
    for row in tqdm(list(subjects.itertuples()), desc="implied Tmax, cohort", disable=not progress):
        scan = subject_scan(row)
        brain = scan.brain_mask
        truth = nib.load(row.tmax).get_fdata()[brain]
        prepared = prepare_curves(scan)
        conc = scan_concentrations(prepared)
        dt_s = prepared.scan.tr_s
        at_true_mtt = implied_tmax_s(conc.c_tissue, conc.c_aif, dt_s, nib.load(row.mtt).get_fdata()[brain])
        for method, options in methods.items():
            maps = compute_maps(prepared, method, **options)
            tmax = maps.tmax[brain]
            implied = implied_tmax_s(conc.c_tissue, conc.c_aif, dt_s, maps.mtt[brain])
            ok = np.isfinite(truth) & np.isfinite(tmax) & np.isfinite(implied) & np.isfinite(at_true_mtt)
            if not ok.any():
                continue
            true_median = np.median(truth[ok])  # every median of a row over the same voxels
            rows.append({"subject": row.subject_id, "method": method,
                         "tmax_bias_s": float(np.median(tmax[ok]) - true_median),
                         "implied_at_its_mtt_offset_s": float(np.median(implied[ok]) - true_median),
                         "implied_at_true_mtt_offset_s": float(np.median(at_true_mtt[ok]) - true_median)})
    return pd.DataFrame(rows, columns=["subject", "method", "tmax_bias_s", "implied_at_its_mtt_offset_s",
                                       "implied_at_true_mtt_offset_s"])


def corrected_readings(consistency: pd.DataFrame, offsets: pd.DataFrame) -> pd.DataFrame:
    """A scan's brain-median Tmax read two ways per method, each corrected by what the cohort measured [s].

    ``consistency`` is :func:`tmax_consistency`'s first table on the scan, ``offsets``
    :func:`cohort_offsets`. Per method present in both (a method in only one is left out): its Tmax less
    its median bias on the cohort, and the Tmax implied at its MTT less the check's median offset at
    that method's MTT there (medians over the subjects).
    """
    columns = ["tmax_bias_s", "implied_at_its_mtt_offset_s"]
    offsets = offsets.dropna(subset=columns)
    median = offsets.groupby("method")[columns].median()
    table = consistency.set_index("method")[["tmax_median_s", "implied_tmax_median_s"]].join(median, how="inner")
    table["tmax_less_its_bias_s"] = table["tmax_median_s"] - table["tmax_bias_s"]
    table["implied_less_its_offset_s"] = table["implied_tmax_median_s"] - table["implied_at_its_mtt_offset_s"]
    table["subjects"] = offsets.groupby("method")["subject"].nunique()
    return table.reset_index()
