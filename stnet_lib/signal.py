"""Stage 2: signal → ΔR2* → concentration (eq. 1–2 of Cao et al.), and the forward model.

A DSC series is (x, y, z, t) or any (..., t) array: time is the last axis. TE arrives in
milliseconds (``te_ms``) and is converted to seconds once, here.

Eq. 1 and eq. 2 (tissue) also take torch tensors, on any device, and return tensors there: the
same lines run for numpy on the CPU and for a whole brain on a GPU (ST-Net's inference).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import torch

from .constants import relaxivities
from ._validation import StnetInputError, check_positive, check_time_axis

__all__ = [
    "DeltaR2",
    "count_non_steady_frames",
    "detect_baseline",
    "arterial_baseline",
    "signal_to_delta_r2",
    "delta_r2_to_concentration",
    "concentration_to_delta_r2",
    "delta_r2_to_signal",
]

log = logging.getLogger(__name__)

#: Fewest pre-bolus frames from which S0 is averaged.
MIN_BASELINE_FRAMES = 2
#: Lowest signal kept, as a fraction of S0: a signal at or below zero (a dropout, a saturated
#: arterial voxel) would make ln(S/S0) infinite, so it is raised to this floor and counted.
SIGNAL_FLOOR_FRACTION = 1e-3
#: A leading frame this much brighter than every one of the next ``NON_STEADY_WINDOW`` frames is
#: not yet at steady state (T1 saturation: 1.1–1.3× for the first frame is common, 1.2× on the real
#: slice of ../shared/data, and the next ones approach S0 as 1.09, 1.03, ...). 2 % is the baseline
#: search's own tolerance (``detect_baseline``'s ``min_drop``): a frame brighter than that would end
#: the baseline at once. The noise of a brain's mean curve is far below 2 %.
NON_STEADY_RATIO = 1.02
#: Frames compared with a leading frame, and the most leading frames ever counted as non-steady.
NON_STEADY_WINDOW, MAX_NON_STEADY_FRAMES = 4, 3
#: An arterial curve has arrived once it is this fraction (and ``n_sd`` robust SDs) below its baseline.
ARTERIAL_ARRIVAL_DROP = 0.10


def _float64(values):
    """``values`` as float64: a tensor stays a tensor (on its device), anything else becomes an ndarray."""
    return values.double() if isinstance(values, torch.Tensor) else np.asarray(values, dtype=np.float64)


def _namespace(values):
    """The array library of ``values`` (torch or numpy), for the few functions whose names they share."""
    return torch if isinstance(values, torch.Tensor) else np


class DeltaR2(NamedTuple):
    """Result of eq. 1: ΔR2*(t) [1/s], S0 [signal units], the baseline frames and a clip count."""

    delta_r2_per_s: np.ndarray
    s0: np.ndarray
    baseline: slice
    n_clipped: int


def count_non_steady_frames(curve: np.ndarray, *, ratio: float = NON_STEADY_RATIO) -> int:
    """Leading frames of a mean curve (t,) not yet at steady state (T1 saturation of the first excitations).

    Frame ``k`` (counting from 0, at most ``MAX_NON_STEADY_FRAMES``) is non-steady while it is
    more than ``ratio`` times every one of the ``NON_STEADY_WINDOW`` frames after it: the largest
    of the next frames, not their mean, so that an early bolus in the window does not make a
    steady frame look bright.
    """
    curve = np.asarray(curve, dtype=np.float64)
    count = 0
    while count < min(MAX_NON_STEADY_FRAMES, curve.size - 1):
        following = curve[count + 1 : count + 1 + NON_STEADY_WINDOW]
        if not curve[count] > ratio * following.max():
            break
        count += 1
    return count


def detect_baseline(signal: np.ndarray, *, n_sd: float = 3.0, min_drop: float = 0.02) -> slice:
    """Find the pre-bolus frames of a series from its mean curve.

    Parameters
    ----------
    signal : ndarray, shape (..., t)
        Signal curves; their mean over all leading axes is analysed.
    n_sd : float
        A frame leaves the baseline when it differs from the mean of the frames before it by more
        than ``n_sd`` of their standard deviations and more than ``min_drop`` of their mean.
    min_drop : float
        Smallest relative change taken as the bolus (2 %), so that noise-free curves work too.

    Returns
    -------
    slice
        Frames ``start:stop`` to average for S0. ``start`` is the number of leading non-steady
        frames (:func:`count_non_steady_frames`; 0 once ``curves.prepare_curves`` has dropped
        them); ``stop`` is one frame before the detected arrival when the baseline is long
        enough, so that a partly arrived bolus is never averaged in.

    Notes
    -----
    The baseline grows frame by frame from ``start`` while each new frame agrees with the mean
    of those before it, within ``n_sd`` standard deviations of those frames or ``min_drop``
    (the iterative rule of dsc-mri-toolbox's S0 search). On a brain's mean curve the noise is
    far below 2 %, so ``min_drop`` decides; on noisy curves the spread does.
    """
    check_time_axis(signal, "the DSC series", min_frames=MIN_BASELINE_FRAMES + 2)
    curve = signal.reshape(-1, signal.shape[-1]).mean(axis=0, dtype=np.float64)

    def tolerance(window):  # the window's own spread once it has 3 frames, never below min_drop
        spread = n_sd * window.std(ddof=1) if window.size >= 3 else 0.0
        return max(spread, min_drop * abs(window.mean()))

    start = count_non_steady_frames(curve)
    arrival = start + 1
    while arrival < curve.size and abs(curve[arrival] - curve[start:arrival].mean()) <= tolerance(curve[start:arrival]):
        arrival += 1
    stop = arrival - 1 if arrival - 1 - start >= MIN_BASELINE_FRAMES + 1 else arrival
    if stop - start < MIN_BASELINE_FRAMES:
        raise StnetInputError(
            f"the series has {arrival - start} frame(s) before the bolus arrives; at least "
            f"{MIN_BASELINE_FRAMES} are needed for the baseline (pass baseline= explicitly "
            "if the bolus detection is wrong)"
        )
    return slice(start, stop)


def arterial_baseline(curve: np.ndarray, baseline: slice, *, n_sd: float = 3.0,
                      min_drop: float = ARTERIAL_ARRIVAL_DROP) -> slice:
    """The brain's baseline frames cut before an arterial (or venous) curve's own, earlier bolus arrival.

    Parameters
    ----------
    curve : ndarray, shape (t,)
        Mean signal of the arterial voxels.
    baseline : slice
        The brain's pre-bolus frames (:func:`detect_baseline`).
    n_sd, min_drop : float
        The arrival is the first frame from ``baseline.start`` on more than ``n_sd`` robust
        standard deviations (1.4826·MAD of the baseline frames) and more than ``min_drop`` (10 %)
        below their median: a few-voxel curve is too noisy for a frame-by-frame search, and an
        arterial bolus drops the signal by 40–95 %.

    Returns
    -------
    slice
        ``baseline.start`` up to the frame before the arrival, never longer than ``baseline`` and
        never shorter than ``MIN_BASELINE_FRAMES`` frames. The one rule of the classical
        pipeline and of ST-Net's inputs (they had two until issue #14).
    """
    curve = np.asarray(curve, dtype=np.float64)
    level = np.median(curve[baseline])
    spread = 1.4826 * np.median(np.abs(curve[baseline] - level))
    below = np.flatnonzero(curve[baseline.start :] < level - max(n_sd * spread, min_drop * abs(level)))
    arrival = baseline.start + int(below[0]) if below.size else curve.size
    stop = min(baseline.stop, max(arrival - 1, baseline.start + MIN_BASELINE_FRAMES))
    return slice(baseline.start, stop)


def signal_to_delta_r2(signal: np.ndarray, te_ms: float, *, baseline: slice | None = None) -> DeltaR2:
    """Eq. 1: ΔR2*(t) = −(1/TE)·ln(S(t)/S0), with S0 the mean of the pre-bolus frames.

    Parameters
    ----------
    signal : ndarray or Tensor, shape (..., t)
        Magnitude signal [arbitrary units].
    te_ms : float
        Echo time [ms].
    baseline : slice, optional
        Pre-bolus frames to average for S0; detected with :func:`detect_baseline` when omitted.

    Returns
    -------
    DeltaR2
        ``delta_r2_per_s`` (..., t) [1/s] and ``s0`` (...), float64 of the input's kind (a tensor
        stays on its device), the ``baseline`` used and ``n_clipped``,
        the number of samples whose signal was at or below zero or S0 ≤ 0.

    Notes
    -----
    Voxels with S0 ≤ 0 (background) get ΔR2* = 0; samples below ``SIGNAL_FLOOR_FRACTION``·S0 are
    raised to that floor. Both are counted and logged, never turned into NaN.
    """
    te_s = check_positive(te_ms, "te_ms", "ms") / 1000.0
    signal, xp = _float64(signal), _namespace(signal)
    if baseline is None:
        baseline = detect_baseline(signal if xp is np else signal.cpu().numpy())
    s0 = signal[..., baseline].mean(axis=-1)
    valid = s0 > 0
    safe_s0 = xp.where(valid, s0, 1.0)[..., None]
    ratio = signal / safe_s0
    low = (ratio < SIGNAL_FLOOR_FRACTION) & valid[..., None]
    n_clipped = int(low.sum()) + int((~valid).sum()) * signal.shape[-1]
    if n_clipped:
        log.warning("%d signal samples at or below zero (or with S0 <= 0) were floored", n_clipped)
    delta_r2 = -xp.log(ratio.clip(min=SIGNAL_FLOOR_FRACTION)) / te_s
    delta_r2[~valid] = 0.0
    return DeltaR2(delta_r2, s0, baseline, n_clipped)


def delta_r2_to_concentration(
    delta_r2_per_s: np.ndarray, *, kind: str = "tissue", field_t: float = 1.5, quadratic: bool = True
) -> np.ndarray:
    """Eq. 2: concentration [mM] from ΔR2* [1/s].

    Tissue is linear, C = ΔR2*/r2*. Arterial blood is quadratic when ``quadratic`` (Kjølby et al.
    2006, doi:10.1002/mrm.20937): ΔR2* = a·C + b·C², solved for the positive root; else linear
    with the tissue relaxivity, as the paper's C ∝ ΔR2*. A torch tensor is returned as a float64
    tensor on its device.
    """
    rel = relaxivities(field_t)
    delta_r2_per_s = _float64(delta_r2_per_s)
    if kind == "tissue" or (kind == "arterial" and not quadratic):
        return delta_r2_per_s / rel["r2star_tissue"]
    if kind != "arterial":
        raise StnetInputError(f"kind must be one of ('tissue', 'arterial'); got {kind!r}")
    a, b, xp = rel["arterial_a"], rel["arterial_b"], _namespace(delta_r2_per_s)
    # Odd extension keeps the map monotonic through zero, so baseline noise stays centred on 0.
    magnitude = (-a + xp.sqrt(a * a + 4.0 * b * xp.abs(delta_r2_per_s))) / (2.0 * b)
    return xp.sign(delta_r2_per_s) * magnitude


def concentration_to_delta_r2(
    c_mM: np.ndarray, *, kind: str = "tissue", field_t: float = 1.5, quadratic: bool = True
) -> np.ndarray:
    """Forward eq. 2: ΔR2* [1/s] from concentration [mM] (the inverse of :func:`delta_r2_to_concentration`)."""
    rel = relaxivities(field_t)
    c_mM = np.asarray(c_mM, dtype=np.float64)
    if kind == "tissue" or (kind == "arterial" and not quadratic):
        return rel["r2star_tissue"] * c_mM
    if kind != "arterial":
        raise StnetInputError(f"kind must be one of ('tissue', 'arterial'); got {kind!r}")
    return rel["arterial_a"] * c_mM + rel["arterial_b"] * np.sign(c_mM) * c_mM**2


def delta_r2_to_signal(delta_r2_per_s: np.ndarray, s0: np.ndarray | float, te_ms: float) -> np.ndarray:
    """Forward eq. 1: S(t) = S0·exp(−TE·ΔR2*(t)); ``s0`` broadcasts against the leading axes."""
    te_s = check_positive(te_ms, "te_ms", "ms") / 1000.0
    return np.asarray(s0, dtype=np.float64)[..., None] * np.exp(-te_s * np.asarray(delta_r2_per_s))
