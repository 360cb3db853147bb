"""How real a DSC series looks, a study: the statistics of issue #16's realism table, on any scan.

:func:`realism_statistics` measures, from the signal alone (no truth, no TE: every curve is
−ln(S/S0) ∝ ΔR2*), what real curves always have and a simulator may leave out; the same function
runs on a synthetic subject and on the real slice of ``../shared/data``
(docs/decisions/0040-realistic-synthetic-cohort.md).
:func:`cohort_realism_table` gives the cohort's median and range beside the real slice's.

Definitions (frames k at t_k = k·TR; S0 = mean of the steady baseline frames,
:func:`stnet_lib.signal.detect_baseline`; d(t) = −ln(S(t)/S0) of a region's mean signal):

* first pass: a gamma variate fitted to d from the last baseline frame to the first frame after
  the peak below half of it (least squares); the second pass is the first local maximum of d
  after its dip between the passes (where the passes merge: of the residual d − GV), within
  35 s, its delay measured from the fitted first-pass peak (:func:`_second_pass_s`);
* post-first-pass area ratio: Σ (d − GV) / Σ GV over the frames after the baseline;
* plateau ratio: mean of d over the last 10 s / max d;
* first frame ratio: first frame / S0 of the brain's mean signal;
* noise correlation: correlation between in-plane neighbours (1 and 2 voxels apart, along x and
  y) of the frame-to-frame differences of the steady baseline frames in the brain (the anatomy
  and slow drifts cancel; the noise of two frames is independent);
* CBV percentile ratio: 99th / 50th percentile over the brain of Σ d·TR after the baseline
  (∝ CBV for every voxel with the same AIF; large vessels make the upper tail).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from ..manifest import physiological_subjects
from ..masking import compute_brain_mask, find_aif_mask
from ..signal import detect_baseline

__all__ = ["REALISM_STATISTICS", "TARGET_RANGES", "realism_statistics", "scan_realism", "cohort_realism_table"]

#: Every statistic, in the table's order, with what it measures.
REALISM_STATISTICS = {
    "aif_plateau_ratio": "AIF level over the last 10 s / its peak (steady-state plateau)",
    "tissue_plateau_ratio": "brain mean level over the last 10 s / its peak",
    "aif_post_first_pass_ratio": "AIF area after the first pass / first-pass area",
    "tissue_post_first_pass_ratio": "brain mean area after the first pass / first-pass area",
    "second_pass_delay_s": "AIF second-pass peak after the first-pass peak [s]",
    "first_frame_ratio": "first frame / S0 (brain mean; not yet at steady state)",
    "noise_correlation_x": "noise correlation of adjacent voxels along x",
    "noise_correlation_y": "noise correlation of adjacent voxels along y",
    "noise_correlation_two_apart": "noise correlation two voxels apart (mean of x and y)",
    "cbv_p99_p50": "CBV 99th / 50th percentile in the brain (large vessels)",
}
#: Ranges issue #16 asks of the cohort (real slice in brackets in the issue's table).
TARGET_RANGES = {
    "aif_plateau_ratio": (0.08, 0.20), "aif_post_first_pass_ratio": (0.9, 1.06), "second_pass_delay_s": (10.0, 25.0),
    "first_frame_ratio": (1.0, 1.3), "noise_correlation_x": (0.3, 0.5), "noise_correlation_y": (0.3, 0.5),
    "noise_correlation_two_apart": (-0.05, 0.1), "cbv_p99_p50": (5.0, 10.0),
}
#: The plateau is read over this last stretch of the series [s].
PLATEAU_WINDOW_S = 10.0
#: The second pass is looked for up to this long after the first-pass peak [s].
SECOND_PASS_WINDOW_S = 35.0


def _relative(curve: np.ndarray, baseline: slice) -> np.ndarray:
    """d = −ln(S/S0) of a mean curve (S floored at 1e-3·S0)."""
    s0 = curve[baseline].mean()
    return -np.log(np.maximum(curve / s0, 1e-3))


def _gamma_variate(time_s, t0_s, alpha, beta_s, peak):
    """Gamma variate with its peak value ``peak`` at t0 + α·β."""
    lag = np.clip((time_s - t0_s) / (alpha * beta_s), 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        return peak * np.where(lag > 0, np.exp(alpha * (np.log(np.where(lag > 0, lag, 1.0)) + 1.0 - lag)), 0.0)


def fit_first_pass(d: np.ndarray, time_s: np.ndarray, baseline: slice) -> np.ndarray:
    """Parameters (t0 [s], α, β [s], peak) of the gamma variate fitted to the first pass of ``d``."""
    p = int(np.argmax(d))
    end = p
    while end + 1 < d.size and d[end + 1] > 0.5 * d[p]:
        end += 1
    window = slice(max(baseline.stop - 1, 0), min(end + 2, d.size))
    start_s = time_s[window.start]
    guess = [start_s, 3.0, max((time_s[p] - start_s) / 3.0, 0.1), d[p]]
    low, high = [time_s[0] - 1.0, 0.5, 0.05, 0.0], [time_s[p] - 0.01, 15.0, 30.0, 3.0 * d[p]]
    guess = np.clip(guess, np.add(low, 1e-6), np.subtract(high, 1e-6))
    fit = least_squares(lambda q: _gamma_variate(time_s[window], *q) - d[window], guess, bounds=(low, high))
    return fit.x


def _refined_argmax(values: np.ndarray, index: int) -> float:
    """Sub-sample position of a maximum by a parabola through it and its neighbours."""
    if 0 < index < values.size - 1:
        y0, y1, y2 = values[index - 1 : index + 2]
        curvature = y0 - 2.0 * y1 + y2
        if curvature < 0:
            return index + float(np.clip(0.5 * (y0 - y2) / curvature, -0.5, 0.5))
    return float(index)


def _smooth(values: np.ndarray) -> np.ndarray:
    """[1, 2, 1]/4 moving average (edges repeated)."""
    return np.convolve(np.pad(values, 1, mode="edge"), [0.25, 0.5, 0.25], mode="valid")


def _first_local_max(values: np.ndarray, candidates: np.ndarray) -> int | None:
    """The first of ``candidates`` (sorted frame indices) where ``values`` has a local maximum."""
    local = [k for k in candidates if 0 < k < values.size - 1 and values[k] >= values[k - 1] and values[k] > values[k + 1]]
    return local[0] if local else None


def _second_pass_s(residual: np.ndarray, d: np.ndarray, time_s: np.ndarray, peak_s: float) -> float:
    """Time of the second pass after the first-pass peak ``peak_s`` [s], within :data:`SECOND_PASS_WINDOW_S`.

    Where d (smoothed [1, 2, 1]/4) dips after the first pass and rises again, the first local
    maximum after that dip; where the passes merge, the first local maximum of the residual
    d − GV once d is below half its peak (its largest value there if it has none); NaN when the
    series ends first. Sub-frame by a parabola.
    """
    window = np.flatnonzero((time_s > peak_s) & (time_s <= peak_s + SECOND_PASS_WINDOW_S))
    smooth_d, smooth_r = _smooth(d), _smooth(residual)
    dips = [k for k in window if 0 < k < d.size - 1 and smooth_d[k] < smooth_d[k - 1] and smooth_d[k] <= smooth_d[k + 1]]
    found = _first_local_max(smooth_d, window[window > dips[0]]) if dips else None
    curve = smooth_d
    if found is None:
        curve, late = smooth_r, window[d[window] < 0.5 * d.max()]
        if late.size < 2:
            return float("nan")
        found = _first_local_max(smooth_r, late)
        found = int(late[np.argmax(smooth_r[late])]) if found is None else found
    return float(_refined_argmax(curve, found) * (time_s[1] - time_s[0]) - peak_s)


def _curve_statistics(d: np.ndarray, tr_s: float, baseline: slice) -> dict:
    """Plateau ratio, post-first-pass area ratio and second-pass delay of one relative curve."""
    time_s = np.arange(d.size) * tr_s
    t0_s, alpha, beta_s, peak = fit_first_pass(d, time_s, baseline)
    first = _gamma_variate(time_s, t0_s, alpha, beta_s, peak)
    after = slice(baseline.stop, None)
    residual = d - first
    peak_s = t0_s + alpha * beta_s
    second_s = _second_pass_s(residual, d, time_s, peak_s)
    n_end = max(2, int(round(PLATEAU_WINDOW_S / tr_s)))
    return {"plateau_ratio": float(d[-n_end:].mean() / d.max()),
            "post_first_pass_ratio": float(residual[after].sum() / first[after].sum()), "second_pass_delay_s": float(second_s)}


def _neighbour_correlation(e: np.ndarray, mask: np.ndarray, axis: int, lag: int) -> float:
    """Correlation of ``e`` (x, y, z, n) between voxels ``lag`` apart along ``axis``, both in ``mask``."""
    n = e.shape[axis]
    first, second = (np.take(e, np.arange(a, n - lag + a), axis=axis) for a in (0, lag))
    both = np.take(mask, np.arange(n - lag), axis=axis) & np.take(mask, np.arange(lag, n), axis=axis)
    x, y = first[both].ravel(), second[both].ravel()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


def realism_statistics(signal: np.ndarray, brain_mask: np.ndarray, aif_mask: np.ndarray | None, tr_s: float, *,
                       baseline: slice | None = None) -> dict:
    """Every statistic of :data:`REALISM_STATISTICS` of one DSC series.

    Parameters
    ----------
    signal : ndarray, shape (x, y, z, t)
        Magnitude series.
    brain_mask : ndarray of bool, shape (x, y, z)
        Brain (a clinical one: large vessels inside it count towards the CBV percentiles).
    aif_mask : ndarray of bool or None
        Arterial voxels; None: :func:`stnet_lib.masking.find_aif_mask` (the 8 earliest, deepest-drop
        voxels). A deliberately simple rule, not the automatic AIF of :mod:`stnet_lib.aif` that the
        maps use: it is a measurement of the series, applied identically to the synthetic subjects and
        to the real slice, and needs no TE or field strength.
    tr_s : float
        Frame interval [s].
    baseline : slice, optional
        Steady pre-bolus frames; default :func:`stnet_lib.signal.detect_baseline` on the brain
        (it skips the non-steady first frames).

    Returns
    -------
    dict
        Statistic name → float (NaN where undefined, e.g. no second pass after the first).
    """
    signal = np.asarray(signal, dtype=np.float64)
    baseline = detect_baseline(signal[brain_mask]) if baseline is None else baseline
    if aif_mask is None:
        aif_mask = find_aif_mask(signal, brain_mask, baseline)
    brain_curve = signal[brain_mask].mean(axis=0)
    stats = {f"aif_{k}" if k != "second_pass_delay_s" else k: v
             for k, v in _curve_statistics(_relative(signal[aif_mask].mean(axis=0), baseline), tr_s, baseline).items()}
    tissue = _curve_statistics(_relative(brain_curve, baseline), tr_s, baseline)
    stats.update({"tissue_plateau_ratio": tissue["plateau_ratio"], "tissue_post_first_pass_ratio": tissue["post_first_pass_ratio"],
                  "first_frame_ratio": float(brain_curve[0] / brain_curve[baseline].mean())})
    differences = np.diff(signal[..., baseline], axis=-1)
    for name, axis in (("x", 0), ("y", 1)):
        stats[f"noise_correlation_{name}"] = _neighbour_correlation(differences, brain_mask, axis, 1)
    stats["noise_correlation_two_apart"] = float(np.mean([_neighbour_correlation(differences, brain_mask, axis, 2) for axis in (0, 1)]))
    s0 = signal[brain_mask][:, baseline].mean(axis=1, keepdims=True)
    voxels = signal[brain_mask][:, baseline.stop :]
    area = -np.log(np.maximum(voxels / np.where(s0 > 0, s0, np.inf), 1e-3)).sum(axis=1) * tr_s
    stats["cbv_p99_p50"] = float(np.percentile(area, 99) / np.percentile(area, 50))
    return {name: stats[name] for name in REALISM_STATISTICS}


def scan_realism(dsc_path, tr_s: float | None = None, *, aif_mask: np.ndarray | None = None) -> dict:
    """:func:`realism_statistics` of a series on disk, with the brain mask computed from it
    (:func:`stnet_lib.masking.compute_brain_mask`, as for any clinical scan) and TR from its header
    when ``tr_s`` is None or NaN (a manifest's empty ``tr_s``)."""
    import nibabel as nib

    image = nib.load(dsc_path)
    signal = np.asarray(image.dataobj, dtype=np.float32)
    tr_s = float(image.header.get_zooms()[3]) if tr_s is None or not np.isfinite(tr_s) else float(tr_s)
    return realism_statistics(signal, compute_brain_mask(signal), aif_mask, tr_s)


def cohort_realism_table(manifest: pd.DataFrame, real_dsc=None) -> pd.DataFrame:
    """Each statistic's median, minimum and maximum over the cohort's subjects beside the real slice's.

    Every series (synthetic and real) goes through :func:`scan_realism`: computed brain mask and
    automatic AIF, the same rules for both. ``real_dsc`` is the real slice's path (None: the
    column is left out, e.g. without ../shared/data). The training variants of decision 0077 are left out
    (:func:`stnet_lib.manifest.physiological_subjects`).
    """
    rows = pd.DataFrame([scan_realism(row.dsc, row.tr_s) for row in physiological_subjects(manifest).itertuples()])
    real = scan_realism(real_dsc) if real_dsc is not None else None
    table = []
    for name, what in REALISM_STATISTICS.items():
        values = rows[name].dropna()
        low, high = TARGET_RANGES.get(name, (np.nan, np.nan))
        table.append({"statistic": what, "real slice": real[name] if real else np.nan,
                      "cohort median": values.median(), "cohort min": values.min(), "cohort max": values.max(),
                      "target low": low, "target high": high, "subjects": len(values)})
    return pd.DataFrame(table)
