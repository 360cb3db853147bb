"""Stage 2: the curves every method reads — one preparation for the classical methods and ST-Net.

:func:`prepare_curves` turns a loaded :class:`~stnet_lib.io.Scan` into a :class:`PreparedScan`, in
this order:

1. motion correction (optional, :mod:`stnet_lib.motion`): every frame registered rigidly onto the
   mean of the pre-bolus frames with mutual information;
2. non-steady-state frames (:func:`stnet_lib.signal.count_non_steady_frames` on the brain's mean
   curve) dropped, so that they enter neither S0, nor an integral, nor a deconvolution, nor
   ST-Net's time resampling;
3. slice timing (the scan's ``slice_timing_s``): each slice's curves interpolated onto the
   frame times k·TR (:func:`align_slice_timing`);
4. brain mask: the scan's (given, or computed by ``load_scan``; computed here when absent);
5. baseline: :func:`stnet_lib.signal.detect_baseline` on the brain's mean curve;
6. arterial input and venous output: the scan's masks, or found automatically
   (:func:`stnet_lib.aif.find_arterial_masks`) when the scan has no AIF mask. An automatically found
   VOF is written and recorded with the k_AV it would give, but not applied (k_AV = 1): on the
   synthetic cohort it moved absolute CBV and CBF away from the truth
   (docs/decisions/0075-automatic-vof-not-applied.md). A drawn VOF mask is applied (eq. 8).

It also holds the eq. 1–2 driver shared by ``pipeline`` and ``network.inputs``:
:func:`blood_curves` (mean arterial and venous signal → ΔR2* → C, k_AV) and
:func:`tissue_concentration`. What was done is recorded in ``PreparedScan.record`` (JSON-safe),
which the maps carry into ``maps.json``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator

from .aif import find_arterial_masks
from .io import Scan
from .maps import k_av_eq8
from .masking import compute_brain_mask, search_region
from .signal import (arterial_baseline, count_non_steady_frames, delta_r2_to_concentration, detect_baseline,
                     signal_to_delta_r2)
from ._validation import StnetInputError, check_mask

__all__ = ["PreparedScan", "BloodCurves", "prepare_curves", "align_slice_timing", "blood_curves",
           "tissue_concentration", "mean_curve", "select_voxels", "attach_preparation"]

log = logging.getLogger(__name__)


@dataclass
class BloodCurves:
    """Eq. 1–2 on the mean arterial (and venous) signal: what deconvolution and ST-Net take as the AIF.

    ``aif_signal`` (t,) mean arterial signal; ``baseline`` its pre-bolus frames
    (:func:`stnet_lib.signal.arterial_baseline`); ``c_aif``, ``c_vof`` (t,) [mM]; ``k_av`` eq. 8
    (1 without a VOF).
    """

    aif_signal: np.ndarray
    baseline: slice
    c_aif: np.ndarray
    c_vof: np.ndarray | None
    k_av: float


@dataclass
class PreparedScan:
    """A scan whose curves are ready for any method.

    Attributes
    ----------
    scan : Scan
        A copy with the prepared series (x, y, z, t') — t' = t minus the dropped frames — and
        every mask filled in (the AIF and VOF found automatically where the scan had none).
    baseline : slice
        The brain's pre-bolus frames of the prepared series.
    record : dict
        JSON-safe account of the preparation (frames dropped, slice timing, motion, masks
        computed, the arterial search, mean curves and voxel counts).
    motion : ndarray, shape (t, 6), optional
        Per frame of the original series: rotations about x, y, z [deg], translations [mm]
        (NaN for dropped frames); None without motion correction.
    found_vof_mask : ndarray of bool, shape (x, y, z), optional
        The venous voxels found automatically (with an automatic AIF and no VOF mask). They are
        not ``scan.vof_mask``: k_AV (eq. 8) comes only from a VOF the user gave (decision 0075).
    """

    scan: Scan
    baseline: slice
    record: dict = field(default_factory=dict)
    motion: np.ndarray | None = None
    found_vof_mask: np.ndarray | None = None  # the automatic VOF: recorded and written, not applied


def select_voxels(signal, mask: np.ndarray):
    """The curves (n, t) of the voxels of ``mask`` (``signal`` an ndarray or a tensor on any device)."""
    if isinstance(signal, torch.Tensor):
        return signal[torch.from_numpy(mask).to(signal.device)]
    return signal[mask]


def mean_curve(curves) -> np.ndarray:
    """Mean float64 curve (t,) of ``curves`` (n, t), as an ndarray."""
    if isinstance(curves, torch.Tensor):
        return curves.double().mean(dim=0).cpu().numpy()
    return curves.mean(axis=0, dtype=np.float64)


def blood_curves(signal, aif_mask: np.ndarray, vof_mask: np.ndarray | None, baseline: slice, *, te_ms: float,
                 field_t: float, dt_s: float, quadratic: bool = True) -> BloodCurves:
    """Eq. 1–2 (and 8) on the mean signal of the arterial and venous voxels.

    The voxels' signals are averaged first and converted once (averaging before the logarithm
    keeps the noise of a few near-empty voxels at the bolus peak out of ln S), each curve with S0
    from the brain's baseline cut before the arterial arrival (:func:`arterial_baseline`), the
    venous curve with the arterial curve's frames. ``signal`` is (x, y, z, t), ndarray or tensor.
    """
    aif_signal = mean_curve(select_voxels(signal, aif_mask))
    frames = arterial_baseline(aif_signal, baseline)

    def concentration(curve):
        delta_r2 = signal_to_delta_r2(curve, te_ms, baseline=frames).delta_r2_per_s
        return delta_r2_to_concentration(delta_r2, kind="arterial", field_t=field_t, quadratic=quadratic)

    c_aif = concentration(aif_signal)
    if not np.trapezoid(c_aif, dx=dt_s) > 0:
        raise StnetInputError("the arterial curve shows no bolus (its concentration integral is not positive): "
                              "check the AIF mask")
    if vof_mask is None:
        return BloodCurves(aif_signal, frames, c_aif, None, 1.0)
    c_vof = concentration(mean_curve(select_voxels(signal, vof_mask)))
    return BloodCurves(aif_signal, frames, c_aif, c_vof, k_av_eq8(c_aif, c_vof, dt_s))


def tissue_concentration(curves, baseline: slice, *, te_ms: float, field_t: float):
    """Eq. 1–2 for tissue curves (n, t) (ndarray or tensor): C_t [mM] and the eq. 1 result (S0, ...)."""
    tissue = signal_to_delta_r2(curves, te_ms, baseline=baseline)
    return delta_r2_to_concentration(tissue.delta_r2_per_s, kind="tissue", field_t=field_t), tissue


def align_slice_timing(signal: np.ndarray, slice_timing_s, tr_s: float) -> np.ndarray:
    """Curves of every slice resampled onto the frame times k·TR (the time each frame is taken to be at).

    Parameters
    ----------
    signal : ndarray, shape (x, y, z, t)
    slice_timing_s : array, shape (z,)
        When each slice was acquired within the frame [s] (BIDS ``SliceTiming``), in [0, TR).
    tr_s : float
        Frame interval [s].

    Returns
    -------
    ndarray, shape (x, y, z, t), float32
        Slice z sampled at k·TR + τ_z is interpolated at k·TR by monotone cubic (PCHIP)
        interpolation in time: at TR 1.5 s and a half-TR shift, linear interpolation misses a narrow
        arterial curve by up to 19 % of its peak, PCHIP by up to 13 % (a not-a-knot spline, 12 %,
        overshoots a saturated artery's drop to negative signal); docs/decisions/0052-slice-timing.md.
        Before the slice's first sample the first value is held (the baseline is flat there).
    """
    timing = np.asarray(slice_timing_s, dtype=np.float64).ravel()
    if timing.shape != (signal.shape[2],) or not np.all(np.isfinite(timing)):
        raise StnetInputError(f"slice timing has {timing.size} value(s) for {signal.shape[2]} slices: "
                              "give one acquisition time [s] per slice")
    if timing.min() < 0 or timing.max() >= tr_s * (1 + 1e-6):
        raise StnetInputError(f"slice timing spans {timing.min():g}–{timing.max():g} s, outside the frame interval "
                              f"[0, {tr_s:g}) s: SliceTiming is in seconds")
    frames = np.arange(signal.shape[-1]) * tr_s
    out = np.array(signal, dtype=np.float32, copy=True)
    for z in np.flatnonzero(np.abs(timing) > 1e-9):
        interpolant = PchipInterpolator(frames + timing[z], signal[:, :, z, :].astype(np.float64), axis=-1,
                                        extrapolate=False)
        values = interpolant(frames)
        values[..., 0] = np.where(np.isnan(values[..., 0]), signal[:, :, z, 0], values[..., 0])
        out[:, :, z, :] = values
    return out


def _brain_curve(signal: np.ndarray, brain: np.ndarray) -> np.ndarray:
    return signal[brain].mean(axis=0, dtype=np.float64)


def _correct_motion(signal: np.ndarray, scan: Scan, brain: np.ndarray, record: dict, progress: bool):
    """Frames registered onto the mean pre-bolus frame (motion parameters per frame, NaN for non-steady ones)."""
    from .motion import correct_motion

    reference = detect_baseline(_brain_curve(signal, brain)[None])
    corrected, motion = correct_motion(signal, scan.zooms_mm, reference, progress=progress)
    record["motion"] = {"corrected": True, "reference_frames": [reference.start, reference.stop],
                        "parameters": np.round(motion, 4).tolist(),
                        "columns": ["rot_x_deg", "rot_y_deg", "rot_z_deg", "trans_x_mm", "trans_y_mm", "trans_z_mm"]}
    return corrected, motion


def _arterial_masks(scan: Scan, signal: np.ndarray, brain: np.ndarray, baseline: slice, record: dict):
    """The AIF mask, the VOF mask applied (eq. 8) and the VOF found automatically (not applied).

    The scan's masks, or the automatic ones where it has no AIF mask (a VOF is searched only then,
    and only where the scan has none).
    """
    if scan.aif_mask is not None:
        record["aif_source"] = "given"
        return check_mask(scan.aif_mask, signal.shape[:3], "AIF mask"), scan.vof_mask, None
    selection = find_arterial_masks(signal, search_region(brain), baseline, te_ms=scan.te_ms, tr_s=scan.tr_s,
                                    find_vof=scan.vof_mask is None)
    if not selection.aif_mask.any():
        raise StnetInputError("no arterial voxel was found automatically: pass an AIF mask (--aif-mask)")
    record.update(aif_source="automatic", aif_search=selection.record)
    record["computed_masks"] += ["aif"] + (["vof"] if selection.vof_mask is not None else [])
    return selection.aif_mask, scan.vof_mask, selection.vof_mask


def prepare_curves(scan: Scan, *, motion_correct: bool = False, baseline: slice | None = None,
                   progress: bool = False) -> PreparedScan:
    """The preparation of the module docstring, steps 1–6; ``scan`` itself is left unchanged.

    Parameters
    ----------
    scan : Scan
        From :func:`stnet_lib.load_scan`; ``aif_mask`` None means find it (and the VOF).
    motion_correct : bool
        Register every frame rigidly onto the pre-bolus mean first (:mod:`stnet_lib.motion`).
    baseline : slice, optional
        Pre-bolus frames in the scan's own frame numbers (shifted here by the frames dropped);
        detected on the brain's mean curve when omitted.
    progress : bool
        Show a progress bar for the motion correction.

    Returns
    -------
    PreparedScan
    """
    signal, brain = scan.signal, scan.brain_mask
    computed = list(getattr(scan, "provenance", {}).get("computed_masks", []))
    if brain is None:
        brain, computed = compute_brain_mask(signal), computed + ["brain"]
    brain = check_mask(brain, signal.shape[:3], "brain mask")
    record, motion = {"computed_masks": computed, "frames_in": int(signal.shape[-1])}, None
    if motion_correct:
        signal, motion = _correct_motion(signal, scan, brain, record, progress)
    dropped = count_non_steady_frames(_brain_curve(signal, brain))
    if dropped:
        log.info("dropped %d non-steady-state frame(s) at the start of the series", dropped)
        signal = signal[..., dropped:]
    record["frames_dropped"] = dropped
    timing = getattr(scan, "slice_timing_s", None)
    if timing is not None:
        signal = align_slice_timing(signal, timing, scan.tr_s)
        record["slice_timing"] = {"slice_timing_s": np.asarray(timing, float).round(6).tolist(), "reference_s": 0.0,
                                  "interpolation": "monotone cubic (PCHIP)"}
    if baseline is None:
        baseline = detect_baseline(signal[brain])
    else:
        baseline = slice(max(baseline.start - dropped, 0), baseline.stop - dropped)
    aif_mask, vof_mask, found_vof = _arterial_masks(scan, signal, brain, baseline, record)
    prepared = dataclasses.replace(scan, signal=signal, brain_mask=brain, aif_mask=aif_mask, vof_mask=vof_mask)
    if timing is not None:
        prepared.slice_timing_s = None  # aligned: a second preparation must not shift again
    return PreparedScan(prepared, baseline, record, motion, found_vof)


def attach_preparation(maps, prepared: PreparedScan, blood: BloodCurves):
    """Put the preparation's record, the mean curves and the masks computed here into ``maps`` (returned).

    ``maps.params`` gains the record, the frame times of the prepared series, the brain's mean
    signal and its baseline frames and, for the AIF and the VOF, the voxel count, mean signal and
    concentration [mM] (→ ``maps.json``);
    ``maps.extra_volumes`` gains ``aif_mask``/``vof_mask`` where they were found automatically
    (written beside the maps as ``aif_mask.nii.gz``, ``vof_mask.nii.gz``). An automatic VOF is
    recorded with ``"used": False`` and ``k_av_if_used``, the k_AV it would have given.
    """
    scan, record = prepared.scan, dict(prepared.record)
    n_frames = scan.signal.shape[-1]
    record["time_s"] = np.round(np.arange(n_frames) * scan.tr_s, 6).tolist()
    record["brain_signal"] = np.round(_brain_curve(scan.signal, scan.brain_mask), 4).tolist()
    record["brain_baseline_frames"] = [prepared.baseline.start, prepared.baseline.stop]
    record["aif"] = {"voxels": int(scan.aif_mask.sum()), "signal": np.round(blood.aif_signal, 4).tolist(),
                     "c_mM": np.round(blood.c_aif, 6).tolist(), "baseline_frames": [blood.baseline.start,
                                                                                  blood.baseline.stop]}
    if scan.vof_mask is not None:  # "used": False where a network trained without eq. 8 ignores it
        record["vof"] = {"voxels": int(scan.vof_mask.sum()), "used": blood.c_vof is not None,
                         "signal": np.round(_brain_curve(scan.signal, scan.vof_mask), 4).tolist()}
        if blood.c_vof is not None:
            record["vof"]["c_mM"] = np.round(blood.c_vof, 6).tolist()
    found = prepared.found_vof_mask  # only where the scan had no VOF mask
    if found is not None:
        record["vof"] = {"voxels": int(found.sum()), "used": False, "source": "automatic",
                         "why_not_used": "docs/decisions/0075-automatic-vof-not-applied.md",
                         "signal": np.round(_brain_curve(scan.signal, found), 4).tolist()}
        try:
            unused = blood_curves(scan.signal, scan.aif_mask, found, prepared.baseline, te_ms=scan.te_ms,
                                  field_t=scan.field_t, dt_s=scan.tr_s)
            record["vof"].update(c_mM=np.round(unused.c_vof, 6).tolist(), k_av_if_used=unused.k_av)
        except StnetInputError as error:  # a VOF without a bolus: nothing to report but why
            record["vof"]["k_av_if_used"], record["vof"]["error"] = None, str(error)
    record["k_av"] = blood.k_av
    maps.params.update(record)
    extra = getattr(maps, "extra_volumes", None)
    if extra is not None:
        computed = {"aif": scan.aif_mask, "vof": found, "brain": scan.brain_mask}
        for name, mask in computed.items():
            if name in record["computed_masks"]:
                extra[f"{name}_mask"] = mask.astype(np.uint8)
    return maps
