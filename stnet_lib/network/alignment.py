"""Stage 3b — the arterial curve moved earlier when the tissue arrives with it: Tmax kept in the trained range.

ST-Net learns Tmax as the delay of the tissue behind its arterial curve, and its training cohort has
the tissue arriving after the AIF (the simulator's delays are ≥ 0). A scan whose AIF was found in a
vessel the bolus reaches as late as the tissue (on the real slice the automatic AIF rises with the
brain's mean: decision 0050) asks it for Tmax ≤ 0, a range it never saw, and it answers with its
floor: on that slice its Tmax ranked with cSVD's at Spearman 0.18 (decision 0078).

Time-shift equivariance fixes this without retraining. With C_t = C_a ⊗ R, moving the arterial curve
earlier by δ (its last frame held) is the same tissue seen through a residue later by δ: CBV and
CBF (its area and peak) are unchanged and Tmax is raised by exactly δ, up to the δ of arterial tail
held at the end of the window (the plateau after the first pass). So the network reads the scan
with the arterial curve advanced by δ, and δ is subtracted from its Tmax. The training augmentation
does the same move (``TrainConfig.aif_shift_frames``), which is why δ is a whole number of frames,
and never more frames than training held at the curve's end (``aif_shift_frames`` +
``time_shift_frames``; 5 frames, 6 s, for the shipped network).

δ is chosen per scan from a model-free timing of the network's own inputs (:func:`arrival_lag_s`: the
brain-mean tissue curve's half-maximum rise minus the arterial curve's) against the same timing's
median over the training subjects, stored in the checkpoint (:func:`arrival_reference`): the AIF is
advanced by the frames the scan's lag falls short of the median, never moved later, and never so
far that its own rise would be cut. A scan that arrives like the training subjects is read as it is.
Only concentration inputs are timed (``STNetConfig.input_normalisation``; a signal ratio falls during
the bolus), and a curve with no positive peak has no rise time (NaN: nothing is moved).
Measured and justified in docs/decisions/0079-aif-alignment.md.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MIN_FRAMES_BEFORE_RISE", "advance_curve", "alignment_frames", "arrival_lag_s", "arrival_reference",
           "half_max_rise_s", "held_tail_frames", "wanted_frames"]

#: The advanced arterial curve keeps at least this many frames before its half-maximum rise.
MIN_FRAMES_BEFORE_RISE = 3


def half_max_rise_s(curve: np.ndarray, dt_s: float) -> float:
    """Time [s] at which ``curve`` (shape (T,), sampled every ``dt_s``) first reaches half its maximum
    on the way up to it, linearly interpolated between frames (0 when it starts above half; NaN for a
    curve with a non-finite value or no positive maximum)."""
    curve = np.asarray(curve, dtype=np.float64)
    if not np.isfinite(curve).all() or not curve.max() > 0:
        return float("nan")
    peak = int(np.argmax(curve))
    half = 0.5 * curve[peak]
    below = np.nonzero(curve[: peak + 1] < half)[0]
    if len(below) == 0:
        return 0.0
    j = int(below[-1])
    return float((j + (half - curve[j]) / (curve[j + 1] - curve[j])) * dt_s)


def arrival_lag_s(volume, brain_mask: np.ndarray, aif_curve: np.ndarray, dt_s: float) -> float:
    """How long after the arterial curve the brain's mean tissue curve rises [s] (half-maximum rise times).

    ``volume`` (x, y, z, T; ndarray or tensor) and ``aif_curve`` (T,) are ST-Net's inputs
    (:class:`stnet_lib.network.inputs.NetworkInputs`); any positive scale of either cancels.
    """
    if isinstance(volume, torch.Tensor):
        mask = torch.from_numpy(np.asarray(brain_mask, dtype=bool)).to(volume.device)
        brain = (volume[mask].sum(0, dtype=torch.float64) / max(int(mask.sum()), 1)).cpu().numpy()
    else:
        brain = np.asarray(volume)[np.asarray(brain_mask, dtype=bool)].mean(0, dtype=np.float64)
    return half_max_rise_s(brain, dt_s) - half_max_rise_s(aif_curve, dt_s)


def arrival_reference(lags_s) -> dict | None:
    """The training subjects' arrival lags [s] summarised for the checkpoint (``payload["arrival"]``);
    subjects without a lag (NaN) are left out, and None when none has one."""
    lags = np.asarray(lags_s, dtype=np.float64)
    lags = lags[np.isfinite(lags)]
    if len(lags) == 0:
        return None
    return {"lag_median_s": float(np.median(lags)), "lag_min_s": float(lags.min()), "lag_max_s": float(lags.max()),
            "n_subjects": int(len(lags)),
            "measure": "half-maximum rise of the brain-mean tissue curve minus the arterial curve's, on the "
                       "network's inputs (stnet_lib.network.alignment.arrival_lag_s)"}


def wanted_frames(lag_s: float, reference: dict | None, dt_s: float) -> int:
    """Whole frames by which ``lag_s`` falls short of the training median (≥ 0; 0 without a reference or a lag)."""
    if not reference or not np.isfinite(lag_s) or not np.isfinite(reference.get("lag_median_s", np.nan)):
        return 0
    return max(0, int(round((reference["lag_median_s"] - lag_s) / dt_s)))


def alignment_frames(lag_s: float, reference: dict | None, aif_curve: np.ndarray, dt_s: float, *,
                     max_frames: int | None = None) -> int:
    """Whole frames to advance the arterial curve by (≥ 0; 0 without a ``reference`` or a lag).

    :func:`wanted_frames`, at most ``max_frames`` (the tail training held; None: no limit) and at
    most as many as leave :data:`MIN_FRAMES_BEFORE_RISE` frames before the arterial curve's
    half-maximum rise.
    """
    wanted = wanted_frames(lag_s, reference, dt_s)
    rise_s = half_max_rise_s(aif_curve, dt_s)
    if wanted == 0 or not np.isfinite(rise_s):
        return 0
    room = int(np.floor(rise_s / dt_s)) - MIN_FRAMES_BEFORE_RISE
    return max(0, min(wanted, room, wanted if max_frames is None else max_frames))


def held_tail_frames(train_config: dict | None) -> int | None:
    """The most arterial-curve frames a training run held at the window's end: its AIF shift plus its
    common time shift (``TrainConfig``); None when the checkpoint does not say."""
    if not train_config:
        return None
    return int(train_config.get("aif_shift_frames", 0)) + int(train_config.get("time_shift_frames", 0))


def advance_curve(curve: np.ndarray, frames: int) -> np.ndarray:
    """``curve`` (T,) moved ``frames`` earlier, its last value held over the frames freed at the end."""
    if frames <= 0:
        return curve
    return np.concatenate([curve[frames:], np.repeat(curve[-1:], frames)]).astype(curve.dtype, copy=False)
