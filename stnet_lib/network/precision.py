"""Stage 3b — the arithmetic of ST-Net's inference: bf16 where the hardware computes it natively.

``precision="auto"`` (the default of :func:`stnet_lib.network.predict_maps`) runs the network
under bf16 autocast on a GPU and on a CPU with native bf16 instructions (``avx512_bf16``; AMX
where present), and in fp32 elsewhere (emulated bf16 would be slower than fp32). Weights stay
fp32; oneDNN and cuDNN accumulate in fp32 and round each layer's activations to bf16 (8 bits of
mantissa). Why, what it changes in the maps and what it gains: ``docs/decisions/0057-cpu-inference-bf16.md``.
"""

from __future__ import annotations

import torch

from .._validation import check_in_allowed

__all__ = ["PRECISIONS", "native_bf16", "use_bf16"]

#: Choices of ``precision``: the hardware's best, or one forced.
PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (any CUDA device as before; a CPU with avx512_bf16)."""
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # private in torch 2.x: absent -> fp32
        return bool(check is not None and check())
    return False


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether inference on ``device`` runs under bf16 autocast for ``precision`` (one of :data:`PRECISIONS`)."""
    check_in_allowed(precision, PRECISIONS, "precision")
    return native_bf16(device) if precision == "auto" else precision == "bf16"
