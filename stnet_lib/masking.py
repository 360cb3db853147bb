"""Brain and vessel masks computed from a DSC series when none is given."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

__all__ = ["compute_brain_mask", "find_aif_mask"]


def compute_brain_mask(signal: np.ndarray) -> np.ndarray:
    """Brain mask (x, y, z) from a DSC series (x, y, z, t): Otsu threshold of the temporal mean signal.

    The largest connected component is kept, holes are filled slice by slice and the mask is
    eroded by one in-plane voxel to drop the partial-volume rim. Good enough for a scan with a
    dark background; pass an explicit mask for anything else.
    """
    mean_image = signal.mean(axis=-1, dtype=np.float64)
    if np.ptp(mean_image) == 0:
        return np.zeros(mean_image.shape, dtype=bool)
    mask = mean_image > threshold_otsu(mean_image)
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
        mask = labels == (1 + int(np.argmax(sizes)))
    for z in range(mask.shape[2]):
        mask[..., z] = ndimage.binary_fill_holes(mask[..., z])
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    eroded = ndimage.binary_erosion(mask, structure=structure)
    return eroded if eroded.any() else mask


def find_aif_mask(signal: np.ndarray, brain_mask: np.ndarray, baseline: slice, *, n_voxels: int = 8) -> np.ndarray:
    """Arterial voxels: among the earliest-peaking brain voxels, the ones with the deepest signal drop.

    Parameters
    ----------
    signal : ndarray, shape (x, y, z, t)
        DSC series.
    brain_mask : ndarray of bool, shape (x, y, z)
        Where to look.
    baseline : slice
        Pre-bolus frames (S0 = their mean).
    n_voxels : int
        How many voxels to return.

    Notes
    -----
    The classical criteria of automatic AIF selection (early arrival, large and narrow bolus;
    Mouridsen et al. 2006, doi:10.1002/mrm.21066) reduced to two: candidates peak no later than
    the 10th percentile of the brain's times to peak and have a bright baseline (≥ median S0,
    which excludes noisy voxels); the ``n_voxels`` with the lowest minimum S/S0 are kept.
    """
    curves = signal[brain_mask].astype(np.float64)
    s0 = curves[:, baseline].mean(axis=1)
    relative = curves / np.where(s0 > 0, s0, np.inf)[:, None]
    time_to_peak = np.argmin(relative, axis=1)
    candidates = (time_to_peak <= np.percentile(time_to_peak, 10)) & (s0 >= np.median(s0))
    depth = np.where(candidates, relative.min(axis=1), np.inf)
    chosen = np.argsort(depth)[: min(n_voxels, int(candidates.sum()))]
    mask = np.zeros(brain_mask.shape, dtype=bool)
    mask[tuple(index[chosen] for index in np.nonzero(brain_mask))] = True
    return mask
