"""Stage 2 (curves): the arterial input and venous output found automatically.

Arterial input, after Mouridsen et al. 2006 (doi:10.1002/mrm.20759): of the voxels searched, keep
those whose ΔR2* area is in the top 10 % and whose roughness is not in the top 25 %, cluster the
curves' shapes (unit area) with k-means (5 clusters) and keep the arterial cluster. Departures,
each measured on the synthetic cohort (docs/decisions/0050-automatic-aif.md):

* roughness is measured away from the first-pass peak (:func:`_roughness`): Mouridsen's whole-curve
  index ranks an artery's sharp peak as rough and screened every arterial voxel out;
* the arterial clusters are those reaching half their maximum first (:func:`_arterial_clusters`),
  not the one of the smallest first moment, and they are not clustered a second time;
* saturation and partial volume (:func:`_least_biased`): both lower a curve's ΔR2* area (a peak on
  the noise floor is flattened, a partly arterial voxel is diluted), so of the cluster only the
  curves whose area reaches ``area_fraction`` of the largest are kept, and saturated curves
  (signal within ``saturation_n_sd`` noise SDs of zero) are dropped whenever unsaturated ones
  reach that band too;
* at least ``min_arterial_voxels`` (10) curves are averaged: where the area band keeps fewer, the
  largest-area curves of the arterial clusters fill it up. Beyond a blood fraction of about a quarter
  every arterial curve of the cohort reaches the noise floor and their first-pass areas are equal up
  to noise and baseline brightness, so the few largest are the ones those inflate most (a mean of
  five was 1.1–1.4× the true mask's area in the worst subjects); one or two voxels' noise made the
  worst AIFs before any minimum;
* background (:func:`_candidates`): a searched voxel's baseline must be at least ``min_baseline_n_sd``
  (10) noise SDs. Outside the head the magnitude signal is Rician noise (mean 1.25 SD); its relative
  fluctuations read as a large, early, "saturated" ΔR2* curve and such voxels became whole AIFs.

Venous output (the superior sagittal or a transverse sinus): among the same screened, large-area
curves, those whose first moment is at least a frame later than the arterial one's, screened the
same way and averaged over the largest areas: the least partial-volumed vein, which k_AV (eq. 8)
needs. The curve preparation records it but does not apply it (docs/decisions/0075-automatic-vof-not-applied.md:
on the synthetic cohort its k_AV moved absolute CBV and CBF away from the truth)."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans

from .signal import SIGNAL_FLOOR_FRACTION
from ._validation import StnetInputError

__all__ = ["ArterialSearch", "ArterialSelection", "find_arterial_masks"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArterialSearch:
    """Settings of :func:`find_arterial_masks` (defaults: Mouridsen et al. 2006, and ours where marked)."""

    auc_quantile: float = 0.90  # keep voxels whose ΔR2* area is above this quantile
    roughness_quantile: float = 0.75  # drop voxels whose (unit-area) roughness is above this quantile
    n_clusters: int = 5  # k-means clusters per round
    n_rounds: int = 1  # ours (Mouridsen: 2): clusterings, each of the previous round's chosen cluster
    arrival_tolerance_frames: float = 0.5  # ours: clusters arriving this close to the earliest one are arterial too
    saturation_n_sd: float = 3.0  # ours: signal within this many noise SDs of 0 at the peak = saturated
    min_baseline_n_sd: float = 10.0  # ours: a searched voxel's baseline is at least this many noise SDs (no background)
    area_fraction: float = 0.85  # ours: partial-volume screen, fraction of the largest ΔR2* area kept
    min_arterial_voxels: int = 10  # ours: the AIF averages at least this many of the largest-area arterial curves
    window_s: float = 30.0  # ours: the bolus analysed, from the frame before the brain's arrival
    first_pass_s: float = 15.0  # ours: the part of it whose area measures partial volume (no recirculation)
    min_venous_voxels: int = 3  # ours: the VOF averages the largest-area late curves, as many as the AIF's, at least this
    random_state: int = 0  # k-means seed (the result is deterministic)


@dataclass
class ArterialSelection:
    """The chosen arterial (and venous) voxels and how they were found (``record``, JSON-safe)."""

    aif_mask: np.ndarray
    vof_mask: np.ndarray | None
    record: dict = field(default_factory=dict)


@dataclass
class _Candidates:
    """Curves of the searched voxels and their features (one row per voxel)."""

    index: np.ndarray  # flat indices into the spatial grid
    delta_r2: np.ndarray  # (n, w) ΔR2* over the analysed window [1/s]
    area: np.ndarray  # ∫ΔR2* over the window [1/s·frames]
    first_moment: np.ndarray  # first moment of the unit-area curve [frames from the window start]
    first_pass_area: np.ndarray  # ∫ΔR2* over the first ``first_pass_s`` of the window [1/s·frames]
    screened: dict  # name -> bool (n,) passing each screen


def _noise_sd(curves: np.ndarray, baseline: slice) -> float:
    """Temporal noise SD of the signal [signal units]: the median over voxels of the baseline frames' SD."""
    frames = curves[:, baseline]
    if frames.shape[1] >= 3:
        return float(np.median(frames.std(axis=1, ddof=1)))
    return float(np.median(np.abs(np.diff(curves[:, : baseline.stop + 1], axis=1)))) / np.sqrt(2.0)


def _window(baseline: slice, n_frames: int, tr_s: float, window_s: float) -> slice:
    start = max(baseline.stop - 1, 0)
    return slice(start, min(n_frames, start + max(int(np.ceil(window_s / tr_s)), 4)))


def _roughness(unit: np.ndarray) -> np.ndarray:
    """Mean squared second difference of unit-area curves (n, w) away from their first-pass peak.

    Mouridsen et al. sum (C'')² over the whole curve; an artery's sharp peak then ranks it among
    the roughest curves (on the 3.6 mm quick cohort every arterial voxel fell in the top 25 %).
    Only the frames where a curve and both its neighbours are below a fifth of its maximum count
    here, so that the index measures the noise of the baseline and the tail, not the bolus's shape
    (at half the maximum an artery's steep flanks still counted, and ranked it rough).
    """
    low = unit < 0.2 * unit.max(axis=1, keepdims=True)
    flat = low[:, :-2] & low[:, 1:-1] & low[:, 2:]
    squared = np.diff(unit, n=2, axis=1) ** 2
    return np.where(flat, squared, 0.0).sum(axis=1) / np.maximum(flat.sum(axis=1), 1)


def _candidates(signal, search_mask, baseline, *, te_ms, tr_s, config: ArterialSearch) -> _Candidates:
    """Features of every searched voxel; Mouridsen et al.'s screens plus the background and saturation ones."""
    index = np.flatnonzero(search_mask)
    curves = signal.reshape(-1, signal.shape[-1])[index].astype(np.float64)
    s0 = curves[:, baseline].mean(axis=1)
    noise_sd = _noise_sd(curves, baseline)
    bright = s0 > 0.1 * np.median(s0[s0 > 0]) if (s0 > 0).any() else np.zeros(len(s0), bool)
    bright &= s0 > config.min_baseline_n_sd * noise_sd
    window = _window(baseline, curves.shape[1], tr_s, config.window_s)
    ratio = curves[:, window] / np.where(bright, s0, 1.0)[:, None]
    delta_r2 = -np.log(np.clip(ratio, SIGNAL_FLOOR_FRACTION, None)) / (te_ms / 1000.0)
    area = np.trapezoid(delta_r2, axis=1)
    positive = bright & (area > 0)
    unit = delta_r2 / np.where(positive, area, 1.0)[:, None]
    first_moment = np.trapezoid(unit * np.arange(unit.shape[1]), axis=1)
    roughness = _roughness(unit)
    screened = {
        "bright": positive,
        "area": positive & (area >= np.quantile(area[positive], config.auc_quantile)) if positive.any() else positive,
        "smooth": positive & (roughness <= np.quantile(roughness[positive], config.roughness_quantile))
        if positive.any() else positive,
        "unsaturated": curves[:, window].min(axis=1) > config.saturation_n_sd * noise_sd,
    }
    log.info("AIF search: %d voxels, noise SD %.3g, %d bright, %d large-area, %d smooth, %d unsaturated",
             len(index), noise_sd, *(int(v.sum()) for v in screened.values()))
    first_pass = delta_r2[:, : max(2, int(np.ceil(config.first_pass_s / tr_s)))]
    return _Candidates(index, delta_r2, area, first_moment, np.trapezoid(first_pass, axis=1), screened)


def _half_max_arrival(curves: np.ndarray) -> np.ndarray:
    """Frame (fractional) at which each curve (n, w) first reaches half its maximum."""
    half = 0.5 * curves.max(axis=1, keepdims=True)
    first = np.argmax(curves >= half, axis=1)
    before = np.maximum(first - 1, 0)
    rows = np.arange(len(curves))
    lo, hi = curves[rows, before], curves[rows, first]
    step = np.where(hi > lo, (half[:, 0] - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0)
    return np.where(first > 0, before + np.clip(step, 0, 1), 0.0)


def _arterial_clusters(rows: np.ndarray, cand: _Candidates, config: ArterialSearch) -> np.ndarray:
    """The rows of the arterial k-means clusters of the unit-area curves (their shape).

    The clusters whose centroids reach half their maximum within ``arrival_tolerance_frames`` of
    the earliest one: saturated and unsaturated, more or less partial-volumed arteries fall into
    different clusters of nearly the same arrival, and :func:`_least_biased` chooses among their
    curves. Mouridsen et al. keep the one cluster of the smallest first moment; a peak truncated
    at the noise floor moves the unit-area curve's first moment later, so the least
    partial-volumed, saturated arteries lost to diluted ones (decision 0050). The half-maximum
    arrival is not moved by truncation.
    """
    if len(rows) <= config.n_clusters:
        return rows
    unit = cand.delta_r2[rows] / cand.area[rows, None]
    kmeans = KMeans(n_clusters=config.n_clusters, n_init=10, random_state=config.random_state).fit(unit)
    arrival = _half_max_arrival(kmeans.cluster_centers_)
    early = np.flatnonzero(arrival <= arrival.min() + config.arrival_tolerance_frames)
    return rows[np.isin(kmeans.labels_, early)]


def _mask(shape, flat_index) -> np.ndarray:
    mask = np.zeros(int(np.prod(shape)), dtype=bool)
    mask[flat_index] = True
    return mask.reshape(shape)


def _least_biased(rows: np.ndarray, area: np.ndarray, cand: _Candidates, config: ArterialSearch, record: dict,
                  name: str, *, min_kept: int = 0) -> np.ndarray:
    """The saturation and partial-volume screens on curves of one shape (arterial or venous).

    Both a partial volume and a peak on the noise floor lower a curve's ΔR2* area, so the curves
    kept are those whose area reaches ``area_fraction`` of the largest, and at least ``min_kept``
    of them (the largest areas; the AIF's ``min_arterial_voxels``), since a mean of one or two
    curves carries their noise. Saturated curves are
    dropped first when unsaturated ones reach that band too (then they only flatten the mean);
    where every large curve is saturated (a 3 T scan at TE 30 ms often is), dropping them would
    leave only partial-volumed curves, smaller still, so they stay and are counted. ``area`` is
    the arterial first pass's (a slow return or recirculation would count otherwise) or, for the
    veins, the whole window's.
    """
    unsaturated = rows[cand.screened["unsaturated"][rows]]
    if unsaturated.size and area[unsaturated].max() >= config.area_fraction * area[rows].max():
        rows = unsaturated
    kept = rows[area[rows] >= config.area_fraction * area[rows].max()]
    if len(kept) < min_kept:
        kept = rows[np.argsort(area[rows])[::-1][:min_kept]]
    record[f"{name}_saturated_voxels"] = int((~cand.screened["unsaturated"][kept]).sum())
    return kept


def find_arterial_masks(signal: np.ndarray, search_mask: np.ndarray, baseline: slice, *, te_ms: float, tr_s: float,
                        find_vof: bool = True, config: ArterialSearch = ArterialSearch()) -> ArterialSelection:
    """Arterial (and venous) voxels of a DSC series, found from the curves' area, roughness, timing and shape.

    Parameters
    ----------
    signal : ndarray, shape (x, y, z, t)
        Prepared DSC series (steady-state frames, aligned slices).
    search_mask : ndarray of bool, shape (x, y, z)
        Where to look: the brain with its vessels (:func:`stnet_lib.masking.search_region`).
    baseline : slice
        The brain's pre-bolus frames (S0 of every voxel).
    te_ms, tr_s : float
        Echo time [ms] (ΔR2*, eq. 1) and frame interval [s] (the analysed window).
    find_vof : bool
        Also look for a venous output.
    config : ArterialSearch

    Returns
    -------
    ArterialSelection
        ``record`` counts the voxels left after each screen and says why no VOF was found.
    """
    cand = _candidates(signal, search_mask, baseline, te_ms=te_ms, tr_s=tr_s, config=config)
    ok = cand.screened
    usable = ok["area"] & ok["smooth"]
    record = {"method": "Mouridsen et al. 2006 (doi:10.1002/mrm.20759) with saturation and partial-volume screens",
              "settings": dataclasses.asdict(config), "voxels_searched": int(len(cand.index)),
              **{f"voxels_{name}": int(value.sum()) for name, value in ok.items()}, "voxels_screened": int(usable.sum())}
    if not usable.any():
        raise StnetInputError("no curve with a bolus was found where the AIF is searched: pass an AIF mask (--aif-mask)")
    rows = np.flatnonzero(usable)
    for _ in range(config.n_rounds):
        rows = _arterial_clusters(rows, cand, config)
    rows = _least_biased(rows, cand.first_pass_area, cand, config, record, "aif", min_kept=config.min_arterial_voxels)
    shape = search_mask.shape
    record.update(aif_voxels=int(len(rows)), aif_first_moment_frames=round(float(np.mean(cand.first_moment[rows])), 3))
    vof_mask = _venous(cand, usable, rows, shape, config, record) if find_vof else None
    return ArterialSelection(_mask(shape, cand.index[rows]), vof_mask, record)


def _venous(cand: _Candidates, usable: np.ndarray, aif_rows: np.ndarray, shape, config: ArterialSearch,
            record: dict) -> np.ndarray | None:
    """Venous voxels: screened curves whose first moment is at least a frame later than the arterial
    one's, the least biased of them (:func:`_least_biased`), at most as many as the AIF's (at least
    ``min_venous_voxels``) of the largest area."""
    late = usable.copy()
    late[aif_rows] = False
    late &= cand.first_moment > cand.first_moment[aif_rows].mean() + 1.0
    if not late.any():
        record["vof_voxels"], record["vof_missing"] = 0, "no screened large-area curve later than the arterial one"
        return None
    rows = _least_biased(np.flatnonzero(late), cand.area, cand, config, record, "vof")
    rows = rows[np.argsort(cand.area[rows])[::-1][: max(config.min_venous_voxels, len(aif_rows))]]
    record.update(vof_voxels=int(len(rows)), vof_first_moment_frames=round(float(np.mean(cand.first_moment[rows])), 3))
    return _mask(shape, cand.index[rows])
