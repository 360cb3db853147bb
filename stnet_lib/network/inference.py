"""Stage 3b — whole-brain ST-Net inference: a scan and a checkpoint in, ``PerfusionMaps`` out.

Every brain voxel is predicted, ``batch_size`` patches at a time (memory is bounded by the
batch, never by the volume: patches are gathered on the fly from the padded series). The
outputs are clipped at 0 (as the authors' ``test.py`` did), MTT follows from eq. 6, and the
maps are NaN outside the brain mask, like those of every other method. A network that
regresses only some maps (``STNetConfig.outputs``, e.g. a single-output network of the Fig. 3
ablation) yields only those: the others are NaN everywhere, and MTT is NaN unless the
network predicts both CBV and CBF.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..io import Scan
from ..maps import PerfusionMaps, mtt_eq6
from .checkpoint import load_checkpoint, model_from_checkpoint
from .inputs import prepare_inputs
from .patches import PatchTable, iter_voxel_batches
from .stnet import TARGET_NAMES, STNet

__all__ = ["predict_maps", "predict_voxels"]

#: Default batch per device type (the CPU gains nothing beyond ~2k; a GPU wants large batches).
DEFAULT_BATCH = {"cpu": 2048, "cuda": 16384}


def _resolve_device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.inference_mode()
def predict_voxels(model: STNet, table: PatchTable, coords: np.ndarray, baseline: np.ndarray,
                   aif_curve: torch.Tensor, *, device: torch.device) -> np.ndarray:
    """Physical outputs (``model.config.outputs``: by default CBV, CBF, Tmax) of one batch of voxels.

    Parameters
    ----------
    model : STNet (on ``device``, eval mode)
    table : PatchTable of one subject (on ``device``)
    coords : ndarray of int64, shape (B, 3)
    baseline : ndarray, shape (B,)
        The voxels' baseline channel values.
    aif_curve : Tensor, shape (T,)

    Returns
    -------
    ndarray, shape (B, n_out), float64, ≥ 0
    """
    index = torch.from_numpy(coords).to(device)
    patches = table.gather(torch.zeros(len(index), dtype=torch.long, device=device), index)  # (B, 1, 7, 7, T)
    if device.type == "cpu":
        patches = patches.contiguous(memory_format=torch.channels_last_3d)
    n_frames = patches.shape[-1]
    reference = torch.stack([torch.from_numpy(baseline).to(device).unsqueeze(-1).expand(-1, n_frames),
                             aif_curve.expand(len(index), -1)], dim=1)  # (B, 2, T)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        out = model(patches, reference)
    return model.decode(out).clamp_min(0).double().cpu().numpy()


def predict_maps(scan: Scan, checkpoint, *, device: str = "cpu", batch_size: int | None = None,
                 region: np.ndarray | None = None) -> PerfusionMaps:
    """CBV, CBF, MTT, Tmax of every brain voxel of ``scan`` with a trained ST-Net.

    Parameters
    ----------
    scan : Scan
        From :func:`stnet_lib.load_scan`; resampled in time onto the checkpoint's grid when its
        frame interval or frame count differs (``StnetInputError`` if it is too short).
    checkpoint : path or dict
        A ``best.pt`` written by ``stnet train`` (or its loaded payload).
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    batch_size : int, optional
        Voxels per forward pass (default 2048 on the CPU, 16384 on a GPU).
    region : ndarray of bool, shape (x, y, z), optional
        Predict only the brain voxels inside ``region`` (NaN elsewhere); the inputs are still
        prepared from the whole scan, so the values there equal a whole-brain run's.

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
    dev = _resolve_device(device)
    batch_size = batch_size or DEFAULT_BATCH.get(dev.type, 2048)
    inputs = prepare_inputs(scan.signal, scan.brain_mask, scan.aif_mask, te_ms=scan.te_ms, tr_s=scan.tr_s,
                            n_frames=cfg.n_frames, dt_s=cfg.dt_s, field_t=scan.field_t,
                            normalisation=cfg.input_normalisation, vof_mask=_vof_mask(scan, cfg))
    model = model.to(dev)
    if dev.type == "cpu":
        model = model.to(memory_format=torch.channels_last_3d)
    table = PatchTable([torch.from_numpy(inputs.volume).to(dev)], cfg.patch_size).to(dev)  # pad on the device
    aif_curve = torch.from_numpy(inputs.aif_curve).to(dev)
    voxels = inputs.brain_mask if region is None else inputs.brain_mask & np.asarray(region, dtype=bool)
    values = np.empty((int(voxels.sum()), len(cfg.outputs)))
    start = 0
    for coords in iter_voxel_batches(voxels, batch_size):
        baseline = inputs.baseline[tuple(coords.T)]
        values[start : start + len(coords)] = predict_voxels(model, table, coords, baseline, aif_curve, device=dev)
        start += len(coords)
    predicted = dict(zip(cfg.outputs, values.T))
    missing = np.full(len(values), np.nan)
    cbv, cbf, tmax = (predicted.get(name, missing) for name in TARGET_NAMES)
    mtt = mtt_eq6(cbv, cbf) if {"cbv", "cbf"} <= predicted.keys() else missing
    params = {"checkpoint": _checkpoint_name(checkpoint),
              "n_frames": cfg.n_frames, "dt_s": cfg.dt_s, "scan_tr_s": scan.tr_s,
              "scan_frames": int(scan.signal.shape[-1]), "baseline_frames": [inputs.baseline_frames.start,
                                                                              inputs.baseline_frames.stop],
              "te_ms": scan.te_ms, "field_t": scan.field_t, "batch_size": batch_size, "device": str(dev),
              "trained_epoch": payload.get("epoch"), "outputs": list(cfg.outputs)}
    maps = PerfusionMaps(cbv, cbf, mtt, tmax, method="stnet", params=params)
    return maps.scatter(voxels)


def _vof_mask(scan: Scan, cfg) -> np.ndarray | None:
    if cfg.vof_correction and scan.vof_mask is None:
        warnings.warn("this ST-Net was trained with the VOF partial-volume correction (eq. 8) but the scan has no "
                      "VOF mask: k_AV = 1 is assumed (pass a VOF mask for the calibrated maps)", stacklevel=3)
    return scan.vof_mask if cfg.vof_correction else None


def _checkpoint_name(checkpoint) -> str:
    return str(Path(checkpoint)) if not isinstance(checkpoint, dict) else "checkpoint"
