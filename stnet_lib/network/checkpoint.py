"""Stage 3b — ST-Net checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (nothing that needs
pickle's arbitrary code execution):

``format``        ``"stnet-checkpoint"``; ``format_version`` (int)
``config``        :meth:`STNetConfig.to_dict` — rebuilds the network and its input grid
``model``         the ``state_dict``
``train_config``  the training settings (dict), ``epoch`` (last finished, 0-based), ``history``
``optimizer``, ``rng``, ``best_val_loss``, ``best_epoch``  only in the resumable ``last.pt``
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..io import atomic_write
from .._validation import StnetInputError
from .stnet import STNet, STNetConfig

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "save_checkpoint", "load_checkpoint", "model_from_checkpoint"]

CHECKPOINT_FORMAT = "stnet-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(payload: dict, path) -> Path:
    """Write ``payload`` (plus the format tags) to ``path`` in one rename."""
    path = Path(path)
    with atomic_write(path) as tmp:
        torch.save({"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, **payload}, tmp)
    return path


def load_checkpoint(path, *, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint safely (``weights_only=True``) and check its format.

    Raises
    ------
    StnetInputError
        Missing, unreadable or corrupt file, or not an ST-Net checkpoint of a known version.
    """
    path = Path(path)
    if not path.is_file():
        raise StnetInputError(f"checkpoint not found: {path} (train one with `stnet train`)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # zip, pickle and unpickler errors come in many types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StnetInputError(f"checkpoint {path} is corrupt or not a torch file, or holds objects that safe "
                              f"loading (weights_only) refuses ({first[:200]}): retrain or copy it again") from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise StnetInputError(f"{path} is not an ST-Net checkpoint (no 'format': '{CHECKPOINT_FORMAT}' entry): "
                              "pass a .pt file written by `stnet train`")
    if payload.get("format_version") != CHECKPOINT_VERSION or "config" not in payload or "model" not in payload:
        raise StnetInputError(f"checkpoint {path} has format version {payload.get('format_version')!r}; this stnet "
                              f"reads version {CHECKPOINT_VERSION}: retrain with this version")
    return payload


def model_from_checkpoint(payload: dict, *, path="checkpoint") -> STNet:
    """Rebuild the network of a loaded checkpoint; incompatible contents raise ``StnetInputError``."""
    try:
        config = STNetConfig.from_dict(dict(payload["config"]))
        model = STNet(config)
        model.load_state_dict(payload["model"])
    except (TypeError, ValueError, RuntimeError, KeyError) as error:
        first = str(error).strip().splitlines()[0]
        raise StnetInputError(f"{path} does not fit this version of ST-Net ({first}): retrain it") from error
    return model.eval()
