"""Stage 5 — the paper's metrics, comparing any maps with reference maps (model-independent).

Map agreement (Table 2 of Cao et al.): :func:`psnr`, :func:`ssim`, :func:`nrmse`
(:mod:`.image`), :func:`pcc`, :func:`scc` (:mod:`.correlation`), inside a region (``mask``: brain =
WB, reference Tmax > 6 s = HP), in the ``"standard"`` or the authors' ``"paper"`` convention.

Segmentation (Table 1): :func:`hypoperfusion_mask`, :func:`dice`, :func:`iou`, :func:`hd95`
(:mod:`.overlap`, with the empty-mask policy), :func:`auc`, :func:`optimal_threshold` (:mod:`.roc`).

Every function takes the reference first, then the estimate, and keyword-only options, like
:mod:`skimage.metrics`. Tables, summaries and paired tests are in :mod:`stnet_lib.evaluation`.
"""

from ._common import CONVENTIONS
from .correlation import pcc, scc
from .image import nrmse, psnr, ssim
from .overlap import (
    EMPTY_STATUSES,
    dice,
    empty_status,
    hd95,
    hypoperfusion_mask,
    iou,
)
from .roc import OperatingPoint, auc, optimal_threshold

__all__ = [
    "CONVENTIONS",
    "EMPTY_STATUSES",
    "OperatingPoint",
    "auc",
    "dice",
    "empty_status",
    "hd95",
    "hypoperfusion_mask",
    "iou",
    "nrmse",
    "optimal_threshold",
    "pcc",
    "psnr",
    "scc",
    "ssim",
]
