"""Shared input checks of the metrics: same shape, a boolean region, finite values inside it."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._validation import StnetInputError, check_in_allowed

#: The two conventions of the map-agreement metrics (see :mod:`stnet_lib.metrics.image`).
CONVENTIONS = ("standard", "paper")


def check_convention(convention: str) -> str:
    """Return ``convention`` if it is one of :data:`CONVENTIONS`."""
    return check_in_allowed(convention, CONVENTIONS, "convention")


def as_float_pair(reference: ArrayLike, estimate: ArrayLike) -> tuple[NDArray, NDArray]:
    """Both arrays as float64, after checking that their shapes match."""
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape:
        raise StnetInputError(
            f"estimate shape {estimate.shape} does not match reference shape {reference.shape}: "
            "resample the estimate onto the reference grid"
        )
    return reference, estimate


def as_bool(array: ArrayLike, what: str) -> NDArray[np.bool_]:
    """A mask as bool: bool arrays as they are, numbers as ``> 0.5``; NaN is an error."""
    array = np.asarray(array)
    if array.dtype == bool:
        return array
    if np.issubdtype(array.dtype, np.floating) and np.isnan(array).any():
        raise StnetInputError(f"{what} has NaN values: a mask must be 0/1 or boolean")
    return array > 0.5


def region(mask: ArrayLike | None, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    """The evaluation region as a boolean array of ``shape`` (everything when ``mask`` is None)."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    mask = as_bool(mask, "mask")
    if mask.shape != shape:
        raise StnetInputError(
            f"mask shape {mask.shape} does not match the maps' shape {shape}: "
            "pass the mask of the same grid"
        )
    return mask


def check_finite_in(array: NDArray, mask: NDArray[np.bool_], what: str) -> None:
    """Raise StnetInputError if ``array`` holds NaN or infinite values inside ``mask``."""
    bad = int((~np.isfinite(array[mask])).sum())
    if bad:
        raise StnetInputError(
            f"{what} has {bad} NaN or infinite values inside the mask: "
            "fix the map or leave those voxels out of the mask"
        )


def masked_values(
    reference: ArrayLike, estimate: ArrayLike, mask: ArrayLike | None
) -> tuple[NDArray, NDArray]:
    """The 1-D vectors of reference and estimate values inside ``mask`` (C order), checked finite."""
    reference, estimate = as_float_pair(reference, estimate)
    inside = region(mask, reference.shape)
    check_finite_in(reference, inside, "reference")
    check_finite_in(estimate, inside, "estimate")
    return reference[inside], estimate[inside]


def clip_negative(values: NDArray) -> NDArray:
    """Negative values set to 0, as the authors' code does before every metric (``x[x < 0] = 0``)."""
    return np.where(values < 0, 0.0, values)
