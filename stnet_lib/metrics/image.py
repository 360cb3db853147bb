"""Stage 5 — image agreement of a map with a reference map inside a region: PSNR, SSIM, NRMSE.

Two conventions, chosen with ``convention=``, and named in every table:

``"standard"`` (default)
    PSNR on the vector of region voxels, ``10·log10(data_range² / MSE)``; SSIM map of
    scikit-image (uniform 7×7 window, sample covariance, K1 = 0.01, K2 = 0.03) computed in 2-D on
    each slice of the last spatial axis, averaged over the region voxels (pooled over the volume),
    leaving out the 3-voxel in-plane border band that scikit-image itself crops. ``data_range`` is
    explicit, or the reference's range (max − min) inside the region when None.
``"paper"``
    The convention of the authors' evaluation code (Cao et al., ``test.py`` and ``ROI_metrics.py`` of
    github.com/muccaoanbo/Code_ST-Net), reproduced exactly: negatives set to 0 and the maps
    multiplied by the region mask; for each slice of axis 2, each *whole* slice min–max normalised on
    its own, ``(x − min)/(max − min + 1e-6)``; PSNR and SSIM on the 1-D vectors of the slice's region
    voxels (C order) with scikit-image's defaults of the time — PSNR with ``data_range = 1``, a 1-D
    SSIM with a uniform window of 7, sample covariance and ``data_range = 2`` (scikit-image ≤ 0.19
    used 2 for float images; ≥ 0.20 raises without it); slices with too few region voxels skipped;
    the mean over the scored slices. Scale errors cancel in this convention, so its numbers are not
    comparable with the standard ones.

NRMSE has no slice loop; ``convention="paper"`` only sets negatives to 0 first, as the authors did.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from skimage.metrics import structural_similarity

from .._validation import StnetInputError, check_in_allowed
from ._common import (
    as_float_pair,
    check_convention,
    check_finite_in,
    clip_negative,
    masked_values,
    region,
)

__all__ = ["psnr", "ssim", "nrmse", "NRMSE_NORMALIZATIONS", "PAPER_MIN_SLICE_VOXELS"]

#: Normalisations of :func:`nrmse` (scikit-image's names).
NRMSE_NORMALIZATIONS = ("euclidean", "min-max", "mean")
#: ``ROI_metrics.py`` scores a slice only if it has more than 7 region voxels (the SSIM window).
PAPER_MIN_SLICE_VOXELS = 8
_WIN_SIZE = 7  # scikit-image's default window, used by both conventions
_PAPER_EPS = 1e-6  # added to the slice range by the authors' min-max normalisation
_PAPER_PSNR_RANGE = 1.0  # scikit-image's default for non-negative float images
_PAPER_SSIM_RANGE = 2.0  # scikit-image ≤ 0.19 default for float images (dtype range −1..1)


def psnr(
    reference: ArrayLike,
    estimate: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    data_range: float | None = None,
    convention: str = "standard",
    min_slice_voxels: int = PAPER_MIN_SLICE_VOXELS,
) -> float:
    """Peak signal-to-noise ratio [dB] of ``estimate`` against ``reference`` inside ``mask``.

    Parameters
    ----------
    reference, estimate : array_like, shape (x, y, z) or any shape for ``"standard"``
        Reference and estimated map (same units); values outside ``mask`` are ignored
        (NaN allowed there).
    mask : array_like of bool, same shape, optional
        Region to score (brain for WB, hypoperfused area for HP); None = every voxel.
    data_range : float, optional
        Peak value range for ``"standard"``; None = the reference's max − min inside ``mask``.
        Must be None for ``"paper"`` (fixed at 1 after the per-slice normalisation).
    convention : {"standard", "paper"}
        See the module docstring.
    min_slice_voxels : int
        ``"paper"`` only: slices with fewer region voxels are skipped (8 = ``ROI_metrics.py``).

    Returns
    -------
    float
        PSNR in dB; ``inf`` for identical maps; NaN for an empty region, a constant reference
        with ``data_range=None``, or no scorable slice.

    Notes
    -----
    PSNR = 10·log10(data_range² / MSE), MSE over the region voxels (Wang & Bovik 2009,
    doi:10.1109/MSP.2008.930649). Paper setting: ``convention="paper"``, ``mask`` = brain (WB) or
    Tmax > 6 s (HP).
    """
    if check_convention(convention) == "paper":
        _no_data_range_for_paper(data_range)
        return _paper_slice_mean(reference, estimate, mask, _psnr_paper_slice, min_slice_voxels)
    ref, est = masked_values(reference, estimate, mask)
    data_range = _data_range(ref, data_range)
    if ref.size == 0 or not data_range > 0:
        return float("nan")
    return _psnr_from_mse(float(np.mean((ref - est) ** 2)), data_range)


def ssim(
    reference: ArrayLike,
    estimate: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    data_range: float | None = None,
    convention: str = "standard",
    min_slice_voxels: int = PAPER_MIN_SLICE_VOXELS,
) -> float:
    """Mean structural similarity of ``estimate`` against ``reference`` inside ``mask``.

    Parameters
    ----------
    reference, estimate : array_like, shape (x, y) or (x, y, z)
        Reference and estimated map. ``"standard"``: NaN outside ``mask`` is read as 0
        (background); finite values outside it stay as context for the windows of nearby
        region voxels.
    mask : array_like of bool, same shape, optional
        Region whose SSIM values are averaged; None = every voxel.
    data_range : float, optional
        ``"standard"``: dynamic range of the maps; None = the reference's max − min inside
        ``mask``. Must be None for ``"paper"`` (fixed at 2, see module docstring).
    convention : {"standard", "paper"}
        See the module docstring.
    min_slice_voxels : int
        ``"paper"`` only: slices with fewer region voxels are skipped (8 = ``ROI_metrics.py``).

    Returns
    -------
    float
        Mean SSIM (1 for identical maps); NaN for an empty region, a constant reference with
        ``data_range=None``, or no scorable voxel/slice.

    Notes
    -----
    SSIM = (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)), C1 = (0.01·L)²,
    C2 = (0.03·L)², L = data_range (Wang et al. 2004, doi:10.1109/TIP.2003.819861), computed by
    :func:`skimage.metrics.structural_similarity`. Paper setting: ``convention="paper"``.
    """
    if check_convention(convention) == "paper":
        _no_data_range_for_paper(data_range)
        return _paper_slice_mean(reference, estimate, mask, _ssim_paper_slice, min_slice_voxels)
    reference, estimate = as_float_pair(reference, estimate)
    inside = _check_ssim_inputs(reference, estimate, mask)
    data_range = _data_range(reference[inside], data_range)
    if not inside.any() or not data_range > 0:
        return float("nan")
    ref = np.where(inside | np.isfinite(reference), reference, 0.0)
    est = np.where(inside | np.isfinite(estimate), estimate, 0.0)
    if ref.ndim == 2:  # one slice: give it a slice axis of length 1
        ref, est, inside = ref[..., None], est[..., None], inside[..., None]
    values = np.concatenate([
        _ssim_slice_values(ref[..., k], est[..., k], inside[..., k], data_range)
        for k in range(ref.shape[-1])
    ])
    return float(values.mean()) if values.size else float("nan")


def nrmse(
    reference: ArrayLike,
    estimate: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    normalization: str = "euclidean",
    convention: str = "standard",
) -> float:
    """Normalised root-mean-square error of ``estimate`` against ``reference`` inside ``mask``.

    Parameters
    ----------
    reference, estimate : array_like, same shape
        Reference and estimated map; values outside ``mask`` are ignored.
    mask : array_like of bool, optional
        Region to score; None = every voxel.
    normalization : {"euclidean", "min-max", "mean"}
        ``"euclidean"`` (default, the authors' choice): ‖ref − est‖₂ / ‖ref‖₂;
        ``"min-max"``: RMSE / (max − min of ref); ``"mean"``: RMSE / mean of ref.
    convention : {"standard", "paper"}
        ``"paper"`` sets negative values of both maps to 0 first (the authors' ``test.py``).

    Returns
    -------
    float
        NRMSE (0 for identical maps); NaN for an empty region or a zero denominator.

    Notes
    -----
    Same definitions as :func:`skimage.metrics.normalized_root_mse`; the authors call it with
    ``normalization='euclidean'`` on the brain-mask voxels.
    """
    check_in_allowed(normalization, NRMSE_NORMALIZATIONS, "normalization")
    ref, est = masked_values(reference, estimate, mask)
    if check_convention(convention) == "paper":
        ref, est = clip_negative(ref), clip_negative(est)
    if ref.size == 0:
        return float("nan")
    rmse = np.sqrt(np.mean((ref - est) ** 2))
    denominator = {
        "euclidean": lambda: np.sqrt(np.mean(ref**2)),
        "min-max": lambda: np.ptp(ref),
        "mean": lambda: np.mean(ref),
    }[normalization]()
    return float(rmse / denominator) if denominator != 0 else float("nan")


def _data_range(ref_values: NDArray, data_range: float | None) -> float:
    """The explicit data range, or the reference's range inside the region."""
    if data_range is None:
        return float(np.ptp(ref_values)) if ref_values.size else float("nan")
    data_range = float(data_range)
    if not (np.isfinite(data_range) and data_range > 0):
        raise StnetInputError(f"data_range must be a positive number (map units); got {data_range!r}")
    return data_range


def _psnr_from_mse(mse: float, data_range: float) -> float:
    """10·log10(data_range² / MSE), ``inf`` when MSE = 0 (identical maps)."""
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def _check_ssim_inputs(reference: NDArray, estimate: NDArray, mask) -> NDArray[np.bool_]:
    """Region mask of a 2-D/3-D map pair, with finite values inside it."""
    if reference.ndim not in (2, 3):
        raise StnetInputError(f"ssim needs 2-D or 3-D maps; got shape {reference.shape}")
    if min(reference.shape[:2]) < _WIN_SIZE:
        raise StnetInputError(
            f"ssim needs slices of at least {_WIN_SIZE}×{_WIN_SIZE} voxels; got shape {reference.shape}"
        )
    inside = region(mask, reference.shape)
    check_finite_in(reference, inside, "reference")
    check_finite_in(estimate, inside, "estimate")
    return inside


def _ssim_slice_values(ref: NDArray, est: NDArray, inside: NDArray, data_range: float) -> NDArray:
    """SSIM-map values of one 2-D slice at the region voxels outside the 3-voxel border band."""
    if not inside.any():
        return np.empty(0)
    _, ssim_map = structural_similarity(ref, est, data_range=data_range, full=True)
    pad = (_WIN_SIZE - 1) // 2
    interior = np.zeros_like(inside)
    interior[pad:-pad, pad:-pad] = True
    return ssim_map[inside & interior]


def _no_data_range_for_paper(data_range) -> None:
    if data_range is not None:
        raise StnetInputError(
            "data_range is fixed by convention='paper' (1 for PSNR, 2 for SSIM): leave it None"
        )


def _paper_slice_mean(reference, estimate, mask, slice_metric, min_slice_voxels: int) -> float:
    """The authors' loop: clip, mask, per-slice min–max, score slice vectors, mean over slices."""
    reference, estimate = as_float_pair(reference, estimate)
    if reference.ndim != 3:
        raise StnetInputError(
            f"convention='paper' scores slices of axis 2 of a 3-D map; got shape {reference.shape}"
        )
    inside = region(mask, reference.shape)
    check_finite_in(reference, inside, "reference")
    check_finite_in(estimate, inside, "estimate")
    ref = np.where(inside, clip_negative(np.nan_to_num(reference)), 0.0)
    est = np.where(inside, clip_negative(np.nan_to_num(estimate)), 0.0)
    scores = [
        slice_metric(_paper_minmax(ref[:, :, k])[inside[:, :, k]],
                     _paper_minmax(est[:, :, k])[inside[:, :, k]])
        for k in range(ref.shape[2])
        if inside[:, :, k].sum() >= max(min_slice_voxels, 1)
    ]
    return float(np.mean(scores)) if scores else float("nan")


def _paper_minmax(slice_2d: NDArray) -> NDArray:
    """``(x − min)/(max − min + 1e-6)`` over the whole slice, as in the authors' code."""
    low = slice_2d.min()
    return (slice_2d - low) / (slice_2d.max() - low + _PAPER_EPS)


def _psnr_paper_slice(ref: NDArray, est: NDArray) -> float:
    return _psnr_from_mse(float(np.mean((ref - est) ** 2)), _PAPER_PSNR_RANGE)


def _ssim_paper_slice(ref: NDArray, est: NDArray) -> float:
    if ref.size < _WIN_SIZE:
        raise StnetInputError(
            f"convention='paper' SSIM needs at least {_WIN_SIZE} region voxels per slice: "
            f"use min_slice_voxels >= {_WIN_SIZE}"
        )
    return float(structural_similarity(ref, est, data_range=_PAPER_SSIM_RANGE))
