"""Input checks shared by the library and the command line, with one-line messages.

Every message says what is wrong and how to fix it; the ``stnet`` command prints it and exits 2.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = [
    "StnetInputError",
    "check_in_allowed",
    "check_file",
    "check_finite",
    "check_mask",
    "check_time_axis",
    "check_positive",
]


class StnetInputError(ValueError):
    """Bad input: a one-line message naming the problem and the fix (exit status 2 in the CLI)."""


def check_in_allowed(value, allowed: Iterable, name: str):
    """Return ``value`` if it is one of ``allowed``, else raise StnetInputError."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise StnetInputError(f"{name} must be one of {allowed}; got {value!r}")
    return value


def check_file(path, what: str) -> Path:
    """Return ``path`` as a Path if it is an existing file, else raise StnetInputError."""
    if path is None:
        raise StnetInputError(f"no {what} given: pass the path of the {what}")
    path = Path(path)
    if not path.is_file():
        raise StnetInputError(f"{what} not found: {path} (check the path)")
    return path


def check_finite(array: np.ndarray, what: str) -> np.ndarray:
    """Raise StnetInputError if ``array`` holds NaN or infinite values."""
    bad = ~np.isfinite(array)
    if bad.any():
        raise StnetInputError(
            f"{what} has {int(bad.sum())} NaN or infinite values: fix or mask them before running"
        )
    return array


def check_positive(value, name: str, unit: str) -> float:
    """Return ``value`` as a float if it is finite and > 0, else raise StnetInputError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (np.isfinite(number) and number > 0):
        raise StnetInputError(f"{name} must be a positive number in {unit}; got {value!r}")
    return number


def check_mask(mask: np.ndarray, spatial_shape: tuple, what: str, *, allow_empty=False) -> np.ndarray:
    """Return ``mask`` as bool if its shape is ``spatial_shape`` (and it is non-empty)."""
    mask = np.asarray(mask)
    if mask.shape != tuple(spatial_shape):
        raise StnetInputError(
            f"{what} shape {mask.shape} does not match the series' spatial shape {tuple(spatial_shape)}"
        )
    mask = mask > 0.5 if mask.dtype != bool else mask
    if not allow_empty and not mask.any():
        raise StnetInputError(f"{what} is empty: it must select at least one voxel")
    return mask


def check_time_axis(signal: np.ndarray, what: str, *, min_frames: int = 2) -> np.ndarray:
    """Raise StnetInputError unless ``signal`` has a time axis (last) of at least ``min_frames``."""
    if signal.ndim < 1 or signal.shape[-1] < min_frames:
        raise StnetInputError(
            f"{what} has {signal.shape[-1] if signal.ndim else 0} frames; at least {min_frames} are needed"
        )
    return signal
