"""Brain and vessel masks computed from a DSC series when none is given."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

__all__ = ["compute_brain_mask", "search_region", "find_aif_mask", "MIN_COMPONENT_VOXELS"]

#: Connected pieces of the thresholded head smaller than this are dropped (noise, scalp specks).
MIN_COMPONENT_VOXELS = 20
#: A piece is brain when its mean signal over the bolus drops at least this fraction of the
#: largest piece's drop: the eyes and the scalp, as bright as brain, carry no bolus.
PERFUSED_DROP_FRACTION = 0.25


def _head(mean_image: np.ndarray) -> np.ndarray:
    """Otsu threshold of the temporal mean image (flattened: skimage takes a (x, y, 3|4) grid for RGB)."""
    if np.ptp(mean_image) == 0:
        return np.zeros(mean_image.shape, dtype=bool)
    return mean_image > threshold_otsu(mean_image.ravel())


def _perfused_components(signal: np.ndarray, labels: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The labels of ``kept`` whose mean curve shows the bolus that the largest one shows.

    The bolus window is the frames where the largest piece's mean curve (relative to its median)
    is below half its deepest drop; a piece is perfused when its own relative curve averages at
    least ``PERFUSED_DROP_FRACTION`` of that drop there. Without a visible bolus, every piece is kept.
    """
    curves = np.stack([signal[labels == label].mean(axis=0, dtype=np.float64) for label in kept])
    relative = curves / np.median(curves, axis=1, keepdims=True)
    drop = 1.0 - relative[0].min()  # kept[0] is the largest
    if not drop > 0.05:
        return kept
    window = relative[0] < 1.0 - drop / 2
    return kept[1.0 - relative[:, window].mean(axis=1) >= PERFUSED_DROP_FRACTION * drop]


def compute_brain_mask(signal: np.ndarray) -> np.ndarray:
    """Brain mask (x, y, z) from a DSC series (x, y, z, t): Otsu threshold of the temporal mean signal.

    Every connected piece of at least ``MIN_COMPONENT_VOXELS`` voxels whose mean curve carries the
    bolus is kept (:func:`_perfused_components`; on the real slice of ../shared/data a temporal lobe
    is its own piece, and the eyes are pieces without a bolus); holes are filled slice by slice and
    the mask is eroded by one in-plane voxel to drop the partial-volume rim. Good enough for a scan
    with a dark background; pass an explicit mask for anything else.
    """
    mask = _head(signal.mean(axis=-1, dtype=np.float64))
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
        order = np.argsort(sizes)[::-1]
        kept = 1 + order[(sizes[order] >= MIN_COMPONENT_VOXELS) | (order == order[0])]
        mask = np.isin(labels, _perfused_components(signal, labels, kept))
    for z in range(mask.shape[2]):
        mask[..., z] = ndimage.binary_fill_holes(mask[..., z])
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    eroded = ndimage.binary_erosion(mask, structure=structure)
    return eroded if eroded.any() else mask


def search_region(brain_mask: np.ndarray, *, margin_voxels: int = 2) -> np.ndarray:
    """Where to look for the arterial and venous voxels: the brain mask grown by ``margin_voxels``
    (face-connected steps). Vessels lie on the brain's surface and in its fissures (the sinuses
    of the simulated cohort lie 1–1.7 voxels outside its brain mask), and a computed brain mask
    has lost its rim; dark voxels outside the head are screened out by their baseline signal."""
    structure = ndimage.generate_binary_structure(3, 1)
    return ndimage.binary_dilation(brain_mask, structure=structure, iterations=margin_voxels)


def find_aif_mask(signal: np.ndarray, brain_mask: np.ndarray, baseline: slice, *, n_voxels: int = 8) -> np.ndarray:
    """Arterial voxels: among the earliest-peaking brain voxels, the ones with the deepest signal drop.

    A crude rule kept for the studies that still call it (``experiments.validation``,
    ``experiments.realism``); maps use :func:`stnet_lib.aif.find_arterial_masks` (decision 0050).

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
    Mouridsen et al. 2006, doi:10.1002/mrm.20759) reduced to two: candidates peak no later than
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
