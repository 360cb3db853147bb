"""Stage 3b — what ST-Net reads from a scan: resampled, normalised series and reference curves.

Input normalisation (the authors fed raw scanner signal; we do not)
-------------------------------------------------------------------
Two choices, ``STNetConfig.input_normalisation``:

``"concentration"`` (default)
    Patch channel: the tissue concentration C_t(t) (eq. 1–2, each voxel's own baseline S0)
    divided by the time-average of the partial-volume-corrected arterial concentration,
    C̄ = ∫C_a dt / (k_AV · span), with k_AV = ∫C_a/∫C_v from the venous output (eq. 8; 1 without
    a VOF mask); arterial channel: C_a(t)/C̄_a, the AIF's shape with unit mean. The mean of the
    patch channel over the mean of the arterial channel is then k_AV·∫C_t/∫C_a ∝ CBV (eq. 4),
    and the dose, the AIF's partial volume, the echo time and the field strength (which scale
    ΔR2* and, through the quadratic blood relaxivity, scale tissue and artery differently) are
    all divided out: a network fed signal ratios cannot tell a long TE from a large dose, nor
    a partial-volumed AIF from a small one.
``"signal_ratio"``
    Patch channel S(t)/S0 = exp(−TE·ΔR2*(t)) per voxel; arterial channel S_a(t)/S0_a. Needs
    no TE or relaxivity, so it suits a cohort scanned with one protocol (the feasibility
    experiment of ``reference/feasibility_cpu.md`` used it).

Both are 0 outside the brain mask and depend on no patch centre. The baseline channel is the
voxel's S0 divided by the median S0 of the subject's brain — the baseline contrast
(grey/white matter, CSF) without the scanner gain.

A scan reaches ST-Net through :func:`scan_inputs`: the curve preparation of every method
(:func:`stnet_lib.curves.prepare_curves`: motion, non-steady frames dropped before the time
resampling, slice timing, the automatic AIF/VOF where the scan has no masks), then
:func:`prepare_inputs`. The baseline frames are detected once per scan on the brain's mean curve
(``signal.detect_baseline``, as ``pipeline.compute_maps`` does) and used for every tissue voxel;
the arterial curve is converted by the same eq. 1–2 driver as the classical pipeline's
(:func:`stnet_lib.curves.blood_curves`: the same frames cut before its own, earlier, bolus
arrival by ``signal.arterial_baseline``).

Time grid: a scan whose frame interval or frame count differs from the checkpoint's is
linearly resampled onto ``k·dt_s, k = 0 … n_frames−1``; a scan that does not cover that span
is refused (``StnetInputError``).

Where: numpy by default (training reads its cohort this way); with ``device=`` the series is
uploaded once and every whole-brain step runs in torch there (inference on a GPU: a
256×256×20×50 series is 0.26 GB, and the numpy path alone took ~1.3 s of a whole-brain
prediction). Both paths run the same eq. 1–2 functions of ``stnet_lib.signal`` and agree to
float32 rounding (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..curves import BloodCurves, PreparedScan, blood_curves, mean_curve, prepare_curves, select_voxels, tissue_concentration
from ..signal import detect_baseline
from .._validation import StnetInputError, check_in_allowed, check_mask

__all__ = ["INPUT_NORMALISATIONS", "NetworkInputs", "hold_tail", "prepare_inputs", "resample_time", "scan_inputs"]

#: Relative slack when comparing time grids (rounding of TR in headers).
GRID_TOLERANCE = 1e-4


#: Input normalisations of :func:`prepare_inputs` (see the module docstring).
INPUT_NORMALISATIONS = ("concentration", "signal_ratio")


@dataclass
class NetworkInputs:
    """One scan, ready for patch extraction.

    Attributes
    ----------
    volume : ndarray or Tensor, shape (x, y, z, n_frames), float32
        Normalised tissue curves inside the brain mask, 0 outside (a tensor on the device when
        :func:`prepare_inputs` was given one).
    baseline : ndarray, shape (x, y, z), float32
        S0 / median brain S0 (0 outside the brain).
    aif_curve : ndarray, shape (n_frames,), float32
        Normalised arterial curve.
    aif_integral_mM_s : float
        ∫C_a dt of the arterial concentration (eq. 2, quadratic blood relaxivity) [mM·s].
    k_av : float
        Partial-volume factor ∫C_a/∫C_v of eq. 8 (1 without a VOF mask).
    tissue_integral_mM_s : ndarray, shape (x, y, z), float32
        ∫C_t dt of every voxel from its own signal (eq. 1–2, trapezoid) [mM·s]; 0 outside.
    brain_mask : ndarray of bool, shape (x, y, z)
    baseline_frames : slice
        The pre-bolus frames (on the resampled grid).
    """

    volume: np.ndarray | torch.Tensor
    baseline: np.ndarray
    aif_curve: np.ndarray
    aif_integral_mM_s: float
    k_av: float
    tissue_integral_mM_s: np.ndarray
    brain_mask: np.ndarray
    baseline_frames: slice
    tail_held_s: float = 0.0


#: A series may be this fraction of the network's window short: the missing tail is held (see hold_tail).
MAX_HELD_FRACTION = 0.2
#: ... provided that the arterial bolus peaked at least this long before the series ends [s]: the first
#: pass is over (an arterial first pass lasts about 10 s after its peak) and only the plateau is held.
MIN_AFTER_ARTERIAL_PEAK_S = 15.0


def hold_tail(signal, aif_mask: np.ndarray, tr_s: float, n_frames: int, dt_s: float):
    """Extend a series a little shorter than the network's window by holding its last level.

    A realistic series loses its non-steady first frames (``curves.prepare_curves``), and sites differ
    in frame counts, so a scan may end a few seconds before the checkpoint's window
    (``n_frames × dt_s``). After the first pass the curves sit on their steady-state plateau, so
    the missing tail is filled with the mean of the last three frames. Refused (``StnetInputError``)
    where the bolus itself would be cut: more than ``MAX_HELD_FRACTION`` of the window missing, or
    the arterial curve's peak (its signal minimum) less than ``MIN_AFTER_ARTERIAL_PEAK_S`` before
    the end. Returns ``(signal, held_s)``, ``held_s`` the seconds added (0 when nothing was needed).
    """
    n_src = signal.shape[-1]
    span_src, span_dst = (n_src - 1) * tr_s, (n_frames - 1) * dt_s
    if span_src >= span_dst * (1 - GRID_TOLERANCE):
        return signal, 0.0
    missing_s = span_dst - span_src
    arterial = mean_curve(select_voxels(signal, aif_mask))
    after_peak_s = (n_src - 1 - int(np.argmin(arterial))) * tr_s
    if missing_s > MAX_HELD_FRACTION * span_dst or after_peak_s < MIN_AFTER_ARTERIAL_PEAK_S:
        raise StnetInputError(
            f"the series covers {span_src:.1f} s ({n_src} frames every {tr_s:g} s) but the ST-Net "
            f"checkpoint needs {span_dst:.1f} s ({n_frames} frames every {dt_s:g} s), and the arterial bolus "
            f"peaks {after_peak_s:.0f} s before the end: use a longer acquisition or a checkpoint trained on a "
            "shorter time grid")
    n_extra = int(np.ceil(missing_s / tr_s - GRID_TOLERANCE))
    last = signal[..., -3:].mean(-1, keepdims=True)
    tail = last.expand(*last.shape[:-1], n_extra) if isinstance(signal, torch.Tensor) else np.repeat(last, n_extra, -1)
    joined = torch.cat([signal, tail], -1) if isinstance(signal, torch.Tensor) else np.concatenate([signal, tail], -1)
    return joined, n_extra * tr_s


def resample_time(signal, tr_s: float, n_frames: int, dt_s: float):
    """Linear interpolation of (..., t) curves (ndarray or Tensor) sampled every ``tr_s`` onto ``n_frames × dt_s``.

    Returns the input unchanged when the grids agree. Frames beyond the target span are
    dropped; a series shorter than the span raises ``StnetInputError``.
    """
    n_src = signal.shape[-1]
    if abs(tr_s - dt_s) <= GRID_TOLERANCE * dt_s and n_src >= n_frames:
        return signal[..., :n_frames]
    span_src, span_dst = (n_src - 1) * tr_s, (n_frames - 1) * dt_s
    if span_src < span_dst * (1 - GRID_TOLERANCE):
        raise StnetInputError(
            f"the series covers {span_src:.1f} s ({n_src} frames every {tr_s:g} s) but the ST-Net "
            f"checkpoint needs {span_dst:.1f} s ({n_frames} frames every {dt_s:g} s): use a longer "
            "acquisition or a checkpoint trained on a shorter time grid"
        )
    position = np.minimum(np.arange(n_frames) * dt_s / tr_s, n_src - 1)
    lower = np.minimum(np.floor(position).astype(np.int64), n_src - 2)
    weight = position - lower
    if isinstance(signal, torch.Tensor):
        lower = torch.from_numpy(lower).to(signal.device)
        weight = torch.from_numpy(weight).to(signal.device, signal.dtype)
    else:
        weight = weight.astype(signal.dtype)
    return signal[..., lower] * (1 - weight) + signal[..., lower + 1] * weight


def prepare_inputs(
    signal: np.ndarray,
    brain_mask: np.ndarray,
    aif_mask: np.ndarray,
    *,
    te_ms: float,
    tr_s: float,
    n_frames: int,
    dt_s: float,
    field_t: float = 1.5,
    normalisation: str = "concentration",
    vof_mask: np.ndarray | None = None,
    device: str | torch.device | None = None,
) -> NetworkInputs:
    """Resample, normalise and summarise a scan for ST-Net (see the module docstring).

    Parameters
    ----------
    signal : ndarray, shape (x, y, z, t)
        Magnitude DSC series.
    brain_mask, aif_mask : ndarray of bool, shape (x, y, z)
    te_ms, tr_s : float
        Echo time [ms], frame interval [s] of ``signal``.
    n_frames, dt_s : int, float
        The checkpoint's time grid.
    field_t : float
        Field strength [T] (relaxivities, eq. 2).
    normalisation : str
        One of ``INPUT_NORMALISATIONS``.
    vof_mask : ndarray of bool, shape (x, y, z), optional
        Venous-output voxels: k_AV of eq. 8 (partial-volume correction of the AIF).
    device : str or torch.device, optional
        Work in torch on this device and return ``volume`` as a tensor there (default: numpy).
    """
    check_in_allowed(normalisation, INPUT_NORMALISATIONS, "input normalisation")
    brain_mask = check_mask(brain_mask, signal.shape[:3], "brain mask")
    if aif_mask is None:
        raise StnetInputError("prepare_inputs needs an AIF mask: use scan_inputs (or curves.prepare_curves) to find "
                              "it automatically")
    aif_mask = check_mask(aif_mask, signal.shape[:3], "AIF mask")
    if vof_mask is not None:
        vof_mask = check_mask(vof_mask, signal.shape[:3], "VOF mask")
    signal, xp = np.asarray(signal, dtype=np.float32), np if device is None else torch
    if device is not None:
        signal = torch.from_numpy(signal).to(device)
    signal, held_s = hold_tail(signal, aif_mask, tr_s, n_frames, dt_s)
    signal = resample_time(signal, tr_s, n_frames, dt_s)
    brain_curves = select_voxels(signal, brain_mask)  # (n_brain, T) float32
    frames = detect_baseline(mean_curve(brain_curves)[None])
    blood = blood_curves(signal, aif_mask, vof_mask, frames, te_ms=te_ms, field_t=field_t, dt_s=dt_s)
    c_aif, k_av = blood.c_aif, blood.k_av
    aif_integral = float(np.trapezoid(c_aif, dx=dt_s))
    c_tissue, tissue = tissue_concentration(brain_curves, frames, te_ms=te_ms, field_t=field_t)  # (n_brain, T)
    if normalisation == "concentration":
        aif_mean = aif_integral / ((n_frames - 1) * dt_s)  # C̄_a [mM]
        curves, aif_curve = c_tissue * (k_av / aif_mean), c_aif / aif_mean
    else:
        positive = tissue.s0 > 0
        curves = xp.where(positive[:, None], brain_curves / xp.where(positive, tissue.s0, 1.0)[:, None], 0.0)
        aif_curve = blood.aif_signal / blood.aif_signal[blood.baseline].mean()
    s0 = tissue.s0
    if device is None:
        integral = np.trapezoid(c_tissue, dx=dt_s, axis=-1)
    else:
        s0, integral = s0.cpu().numpy(), torch.trapezoid(c_tissue, dx=dt_s, dim=-1).cpu().numpy()
    median_s0 = float(np.median(s0[s0 > 0])) if (s0 > 0).any() else 1.0
    maps = np.zeros((2,) + signal.shape[:3], dtype=np.float32)
    maps[0][brain_mask] = np.maximum(s0, 0.0) / median_s0
    maps[1][brain_mask] = integral
    if device is None:
        volume = np.zeros(signal.shape, dtype=np.float32)
        volume[brain_mask] = curves
    else:
        volume = torch.zeros(signal.shape, dtype=torch.float32, device=signal.device)
        volume[torch.from_numpy(brain_mask).to(signal.device)] = curves.float()
    return NetworkInputs(volume, maps[0], aif_curve.astype(np.float32), aif_integral, k_av, maps[1], brain_mask,
                         frames, held_s)


def scan_inputs(scan, *, n_frames: int, dt_s: float, normalisation: str = "concentration",
                vof_correction: bool = False, device: str | torch.device | None = None,
                motion_correct: bool = False) -> tuple[NetworkInputs, PreparedScan, BloodCurves]:
    """ST-Net's inputs of a scan through the curve preparation every method shares.

    Parameters
    ----------
    scan : stnet_lib.io.Scan or PreparedScan
        A loaded scan (prepared here: :func:`stnet_lib.curves.prepare_curves`) or one prepared
        already (as ``pipeline.compute_maps`` passes it).
    n_frames, dt_s, normalisation, device
        As for :func:`prepare_inputs`.
    vof_correction : bool
        Use the VOF (given or found) for k_AV, as a network trained with eq. 8 expects.
    motion_correct : bool
        Register the frames first (only when ``scan`` is not prepared yet).

    Returns
    -------
    inputs : NetworkInputs
    prepared : PreparedScan
    blood : BloodCurves
        The arterial (and venous) curves on the prepared scan's own time grid, for the record.
    """
    prepared = scan if isinstance(scan, PreparedScan) else prepare_curves(scan, motion_correct=motion_correct)
    ready = prepared.scan
    vof_mask = ready.vof_mask if vof_correction else None
    inputs = prepare_inputs(ready.signal, ready.brain_mask, ready.aif_mask, te_ms=ready.te_ms, tr_s=ready.tr_s,
                            n_frames=n_frames, dt_s=dt_s, field_t=ready.field_t, normalisation=normalisation,
                            vof_mask=vof_mask, device=device)
    blood = blood_curves(ready.signal, ready.aif_mask, vof_mask, prepared.baseline, te_ms=ready.te_ms,
                         field_t=ready.field_t, dt_s=ready.tr_s)
    return inputs, prepared, blood
