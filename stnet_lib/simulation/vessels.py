"""Stage 1 (synthetic data): where the arterial (AIF) and venous-sinus (VOF) voxels lie.

The AIF voxels follow the middle cerebral artery of the hemisphere opposite the lesion (M1 from
the carotid bifurcation to the insula, then M2 up the Sylvian fissure), where clinical AIFs are
picked; the VOF voxels follow the superior sagittal sinus, at the midline just outside the
posterior-superior brain surface. Both paths are polylines in MNI space [mm] (approximate
anatomy, simulation_recipe.md §4.4 and §6 [H]); the voxels closest to them are taken.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["MCA_PATH_MM", "SSS_PATH_MM", "path_voxels", "n_vessel_voxels"]

#: Middle cerebral artery of the right hemisphere (x mirrored for the left) [mm, MNI].
MCA_PATH_MM = np.array([[14.0, 2.0, -10.0], [34.0, 4.0, -6.0], [42.0, -4.0, 6.0], [45.0, -16.0, 26.0]])
#: Superior sagittal sinus down to the confluence [mm, MNI].
SSS_PATH_MM = np.array([[0.0, -25.0, 80.0], [0.0, -58.0, 73.0], [0.0, -82.0, 56.0], [0.0, -98.0, 30.0], [0.0, -104.0, 6.0]])


def n_vessel_voxels(voxel_mm) -> int:
    """How many vessel voxels to mark: about 12 mm of vessel, 2 to 10 voxels."""
    return int(np.clip(round(12.0 / float(voxel_mm[0])), 2, 10))


def _distance_to_polyline(points: NDArray, path: NDArray) -> NDArray:
    best = np.full(points.shape[0], np.inf, np.float32)
    for a, b in zip(path[:-1], path[1:]):
        ab = (b - a).astype(np.float32)
        t = np.clip((points - a) @ ab / float(ab @ ab), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(points - a - t[:, None] * ab, axis=1))
    return best


def path_voxels(mni_mm: NDArray, path: NDArray, count: int, allowed: NDArray) -> NDArray:
    """Boolean mask of the ``count`` allowed voxels closest to ``path`` (MNI polyline [mm]).

    Parameters
    ----------
    mni_mm : ndarray, shape (x, y, z, 3)
        MNI coordinates of the voxel centres [mm].
    path : ndarray, shape (p, 3)
        Polyline [mm].
    count : int
        Voxels to select.
    allowed : ndarray of bool, shape (x, y, z)
        Candidate voxels (inside the head).
    """
    margin = 3.0 * float(np.max(np.abs(np.diff(mni_mm[:2, :2, :2].reshape(-1, 3), axis=0)))) + 10.0
    near = np.all((mni_mm >= path.min(axis=0) - margin) & (mni_mm <= path.max(axis=0) + margin), axis=-1)
    index = np.flatnonzero(allowed & near)
    if index.size < count:
        index = np.flatnonzero(allowed)
    distance = _distance_to_polyline(mni_mm.reshape(-1, 3)[index], path.astype(np.float32))
    chosen = index[np.argsort(distance, kind="stable")[:count]]
    mask = np.zeros(allowed.shape, bool)
    mask.flat[chosen] = True
    return mask
