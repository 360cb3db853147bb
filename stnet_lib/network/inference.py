"""Stage 3b — whole-brain ST-Net inference: a scan and a checkpoint in, ``PerfusionMaps`` out.

Every brain voxel is predicted, ``batch_size`` patches at a time (memory is bounded by the
batch, never by the volume: patches are gathered on the fly from the padded series). CBV is
clipped at 0 (as the authors' ``test.py`` clipped every output; CBF at :data:`CBF_FLOOR_ML_100G_MIN`
instead, so that eq. 6's MTT stays defined in every voxel); Tmax is not clipped: a tissue voxel may
peak before the measured AIF, as the deconvolution methods' Tmax says too (decision 0078). Where a scan's
tissue arrives with its AIF sooner than in the training subjects, the network reads the arterial curve a
few whole frames earlier and Tmax is lowered by as much (:mod:`.alignment`, decision 0079). MTT follows
from eq. 6, and the maps are NaN outside the brain mask, like those of every other method. A network that
regresses only some maps (``STNetConfig.outputs``, e.g. a single-output network of the Fig. 3
ablation) yields only those: the others are NaN everywhere, and MTT is NaN unless the
network predicts both CBV and CBF.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .._validation import StnetInputError
from ..device import resolve_device
from ..curves import PreparedScan, attach_preparation
from ..io import Scan
from ..maps import PerfusionMaps, mtt_eq6
from .alignment import advance_curve, alignment_frames, arrival_lag_s, held_tail_frames, wanted_frames
from .checkpoint import load_checkpoint, model_from_checkpoint
from .inputs import scan_inputs
from .patches import PatchTable
from .precision import use_bf16
from .stnet import TARGET_NAMES, STNet
from .uncertainty import MCDropout, mc_for_checkpoint, with_uncertainty

__all__ = ["CBF_FLOOR_ML_100G_MIN", "predict_maps", "predict_voxels"]

#: Default batch per device type: on the CPU the activations of 256 voxels stay in cache (2,048:
#: 1.7× slower; docs/decisions/0057-cpu-inference-bf16.md); a GPU wants large batches.
DEFAULT_BATCH = {"cpu": 256, "cuda": 16384}


@torch.inference_mode()
def predict_voxels(model: STNet, table: PatchTable, coords: np.ndarray, baseline: np.ndarray,
                   aif_curve: torch.Tensor, *, device: torch.device, precision: str = "auto") -> np.ndarray:
    """Physical outputs (``model.config.outputs``: by default CBV, CBF, Tmax) of one batch of voxels.

    Parameters
    ----------
    model : STNet (on ``device``, eval mode)
    table : PatchTable of one subject (on ``device``)
    coords : ndarray of int64, shape (B, 3)
    baseline : ndarray, shape (B,)
        The voxels' baseline channel values.
    aif_curve : Tensor, shape (T,)
    precision : str
        ``"auto"``, ``"fp32"`` or ``"bf16"`` (:mod:`stnet_lib.network.precision`).

    Returns
    -------
    ndarray, shape (B, n_out), float64 (CBV ≥ 0, CBF ≥ the floor, Tmax any sign)
    """
    index, base = torch.from_numpy(coords).to(device), torch.from_numpy(baseline).to(device)
    bf16 = use_bf16(precision, torch.device(device))
    return _forward(model, table, index, base, aif_curve, bf16=bf16).double().cpu().numpy()


#: Least CBF [ml/100g/min] ST-Net reports: a tenth of the lowest flow of any perfused tissue (ischaemic core
#: ≈ 5–10), and > 0 so that MTT = 60·CBV/CBF (eq. 6) is defined wherever the network predicts no flow
#: (the authors clip at 0, which leaves MTT undefined there and the voxel out of every MTT metric).
CBF_FLOOR_ML_100G_MIN = 0.5


def _forward(model: STNet, table: PatchTable, index: torch.Tensor, baseline: torch.Tensor,
             aif_curve: torch.Tensor, *, bf16: bool, mc: MCDropout | None = None) -> torch.Tensor:
    """Physical outputs (B, n_out), float32 (CBV ≥ 0, CBF ≥ the floor, Tmax any sign), of the voxels ``index`` (B, 3), all on the model's device.

    With ``mc`` (``uncertainty.py``): (B, 2·n_out), the outputs, then their raw Monte-Carlo dropout SDs.
    """
    device = index.device
    # (B, 1, 7, 7, T) in the table's dtype; contiguous with one channel is also channels-last 3-D (no copy)
    patches = table.gather(torch.zeros(len(index), dtype=torch.long, device=device), index)
    if not bf16:
        patches = patches.float()  # a bf16 table read in fp32 (predict_voxels): no copy when it is fp32 already
    n_frames = patches.shape[-1]
    reference = torch.stack([baseline.unsqueeze(-1).expand(-1, n_frames), aif_curve.expand(len(index), -1)],
                            dim=1)  # (B, 2, T)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        if mc is None:
            out = model(patches, reference)
        else:
            features = model.features(patches, reference)
            out, sd = model.head(features), mc.sd(model, features)
    out = model.decode(out.float())
    cbv, cbf = model.config.output_index("cbv"), model.config.output_index("cbf")
    if cbv is not None:
        out[:, cbv] = out[:, cbv].clamp_min(0)
    if cbf is not None:
        out[:, cbf] = out[:, cbf].clamp_min(CBF_FLOOR_ML_100G_MIN)
    return out if mc is None else torch.cat([out, sd], dim=1)


def predict_maps(scan: Scan | PreparedScan, checkpoint, *, device: str = "cpu", batch_size: int | None = None,
                 region: np.ndarray | None = None, motion_correct: bool = False,
                 precision: str = "auto", uncertainty: bool = False, mc_samples: int | None = None,
                 align_aif: bool = True) -> PerfusionMaps:
    """CBV, CBF, MTT, Tmax of every brain voxel of ``scan`` with a trained ST-Net.

    Parameters
    ----------
    scan : Scan or PreparedScan
        From :func:`stnet_lib.load_scan`, prepared like every method's (:func:`stnet_lib.curves.prepare_curves`:
        non-steady frames dropped, slices aligned, the AIF/VOF found where the scan has no masks),
        then resampled in time onto the checkpoint's grid when its frame interval or frame count
        differs (``StnetInputError`` if it is too short).
    checkpoint : path or dict
        A ``best.pt`` written by ``stnet train`` (or its loaded payload).
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    batch_size : int, optional
        Voxels per forward pass (default 256 on the CPU, 16384 on a GPU).
    region : ndarray of bool, shape (x, y, z), optional
        Predict only the brain voxels inside ``region`` (NaN elsewhere); the inputs are still
        prepared from the whole scan, so the values there equal a whole-brain run's.
    motion_correct : bool
        Register the frames rigidly first (a :class:`Scan` only; :mod:`stnet_lib.motion`).
    precision : str
        ``"auto"`` (bf16 autocast on a GPU and on a CPU with native bf16, else fp32), ``"fp32"`` or
        ``"bf16"`` (:mod:`stnet_lib.network.precision`; recorded in ``params``).
    uncertainty : bool
        Also the per-voxel SD of each predicted map, by Monte-Carlo dropout scaled by the
        checkpoint's calibration (:mod:`stnet_lib.network.uncertainty`): ``extra_volumes``
        ``cbv_sd``, ``cbf_sd``, ``tmax_sd`` (written as ``NAME.nii.gz``), ``params["uncertainty"]``.
    mc_samples : int, optional
        Dropout samples per voxel (default: the calibration's, else 30).
    align_aif : bool
        Read the scan with its arterial curve advanced by the whole frames its tissue's arrival lag
        falls short of the training subjects' median, and subtract that time from Tmax
        (:mod:`stnet_lib.network.alignment`; CBV and CBF are invariant to it). Recorded in ``params``
        (``arrival_lag_s``, ``aif_advance_s``); nothing moves for a checkpoint without an arrival
        reference or a scan that arrives like its training subjects.

    Returns
    -------
    PerfusionMaps
        Maps (x, y, z) in ml/100g, ml/100g/min, s, s; NaN outside ``scan.brain_mask`` (and ``region``),
        and NaN everywhere for a map the network does not predict (``params["outputs"]`` lists
        those it does; MTT needs CBV and CBF).
    """
    payload = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    model = model_from_checkpoint(payload, path=_checkpoint_name(checkpoint))
    cfg = model.config
    dev = resolve_device(device)
    batch_size = batch_size or DEFAULT_BATCH.get(dev.type, 2048)
    if batch_size < 1:
        raise StnetInputError(f"batch_size must be a positive number of voxels; got {batch_size}")
    bf16 = use_bf16(precision, dev)
    clock = _Clock(dev)
    inputs, prepared, blood = scan_inputs(scan, n_frames=cfg.n_frames, dt_s=cfg.dt_s,
                                          normalisation=cfg.input_normalisation, vof_correction=cfg.vof_correction,
                                          device=dev, motion_correct=motion_correct)
    scan = prepared.scan
    _vof_mask(scan, cfg, found=prepared.found_vof_mask is not None)  # warns when a network trained with eq. 8 gets no VOF
    seconds_inputs = clock.lap()
    model = model.to(dev).to(memory_format=torch.channels_last_3d)  # CPU ~2×, H100 ~1.3× (bench/stnet.py)
    # the series was padded on the device; bf16 when the network reads bf16 (one gather per batch, no cast)
    table = PatchTable([inputs.volume], cfg.patch_size).to(dev, torch.bfloat16 if bf16 else None)
    mc, calibration = mc_for_checkpoint(model, payload, mc_samples) if uncertainty else (None, None)
    reference = payload.get("arrival") if cfg.input_normalisation == "concentration" else None  # alignment.py
    lag_s = arrival_lag_s(inputs.volume, inputs.brain_mask, inputs.aif_curve, cfg.dt_s)
    if not align_aif:
        alignment = "off"
    else:
        alignment = "on" if reference else "no arrival reference"
    advance = (alignment_frames(lag_s, reference, inputs.aif_curve, cfg.dt_s,
                                max_frames=held_tail_frames(payload.get("train_config"))) if alignment == "on" else 0)
    aif_curve = torch.from_numpy(advance_curve(inputs.aif_curve, advance)).to(dev)
    voxels = inputs.brain_mask if region is None else inputs.brain_mask & np.asarray(region, dtype=bool)
    index = torch.from_numpy(np.argwhere(voxels)).to(dev)  # C order, as PerfusionMaps.scatter expects
    baseline = torch.from_numpy(inputs.baseline[voxels]).to(dev)
    n_out = len(cfg.outputs)
    out = torch.empty((len(index), n_out * (1 if mc is None else 2)), dtype=torch.float32, device=dev)
    with torch.inference_mode(), _cudnn_autotune(dev):
        for start in range(0, len(index), batch_size):
            part = slice(start, start + batch_size)
            out[part] = _forward(model, table, index[part], baseline[part], aif_curve, bf16=bf16, mc=mc)
    values = out.double().cpu().numpy()  # one transfer, after the last batch
    if "tmax" in cfg.outputs:  # back to the scan's own AIF: the network saw it `advance` frames earlier
        values[:, cfg.outputs.index("tmax")] -= advance * cfg.dt_s
    seconds_network = clock.lap()
    predicted = dict(zip(cfg.outputs, values[:, :n_out].T))
    missing = np.full(len(values), np.nan)
    cbv, cbf, tmax = (predicted.get(name, missing) for name in TARGET_NAMES)
    mtt = mtt_eq6(cbv, cbf) if {"cbv", "cbf"} <= predicted.keys() else missing
    params = {"checkpoint": _checkpoint_name(checkpoint),
              "n_frames": cfg.n_frames, "dt_s": cfg.dt_s, "scan_tr_s": scan.tr_s,
              "scan_frames": int(scan.signal.shape[-1]), "tail_held_s": round(float(inputs.tail_held_s), 4),
              "baseline_frames": [inputs.baseline_frames.start, inputs.baseline_frames.stop],
              "aif_alignment": alignment, "arrival_lag_s": None if not np.isfinite(lag_s) else round(lag_s, 3),
              "aif_advance_s": round(advance * cfg.dt_s, 4),
              "aif_advance_wanted_s": round(wanted_frames(lag_s, reference, cfg.dt_s) * cfg.dt_s, 4),
              "arrival_lag_reference_s": (reference or {}).get("lag_median_s"),
              "te_ms": scan.te_ms, "field_t": scan.field_t, "batch_size": batch_size, "device": str(dev),
              "precision": "bf16" if bf16 else "fp32",
              "trained_epoch": payload.get("epoch"), "outputs": list(cfg.outputs),
              "seconds_inputs": seconds_inputs, "seconds_network": seconds_network}
    maps = attach_preparation(PerfusionMaps(cbv, cbf, mtt, tmax, method="stnet", params=params).scatter(voxels),
                              prepared, blood)
    return maps if mc is None else with_uncertainty(maps, values[:, n_out:], voxels, cfg.outputs, mc, calibration)


class _Clock:
    """Wall-clock laps [s] that wait for the device's queued work first."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = self._now()

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def lap(self) -> float:
        now = self._now()
        seconds, self.start = now - self.start, now
        return seconds


@contextlib.contextmanager
def _cudnn_autotune(device: torch.device):
    """cuDNN's kernel search for the run's few batch shapes on a GPU (restored afterwards)."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = before or device.type == "cuda"
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def _vof_mask(scan: Scan, cfg, *, found: bool = False) -> np.ndarray | None:
    """The VOF mask a network trained with eq. 8 uses; warns where there is none (``found``: one was found
    automatically, which is recorded but never applied: docs/decisions/0075-automatic-vof-not-applied.md)."""
    if cfg.vof_correction and scan.vof_mask is None:
        why = (" (the VOF found automatically is written beside the maps but not applied: its k_AV moved "
               "absolute CBV and CBF away from the truth on the synthetic cohort)") if found else ""
        warnings.warn("this ST-Net was trained with the VOF partial-volume correction (eq. 8) but the scan has no "
                      f"VOF mask{why}: k_AV = 1 is assumed (pass a VOF mask, --vof-mask, for the calibrated maps)", stacklevel=3)
    return scan.vof_mask if cfg.vof_correction else None


def _checkpoint_name(checkpoint) -> str:
    return str(Path(checkpoint)) if not isinstance(checkpoint, dict) else "checkpoint"
