"""Stage 1 (synthetic data): where the arterial (AIF) and venous-sinus (VOF) voxels lie, and the large vessels.

The AIF voxels follow the middle cerebral artery of the hemisphere opposite the lesion (M1 from
the carotid bifurcation to the insula, then M2 up the Sylvian fissure), where clinical AIFs are
picked; the VOF voxels follow the superior sagittal sinus, at the midline just outside the
posterior-superior brain surface. Both paths are polylines in MNI space [mm] (approximate
anatomy, simulation_recipe.md §4.4 and §6 [H]); the voxels closest to them are taken.

The large vessels of issue #16 (:func:`vessel_fractions`; decision 0040) are the blood volume
fraction of every voxel that large arteries and veins occupy: named vessels as tubes around MNI
polylines (cerebral arteries, sinuses, deep veins; radii from textbook anatomy [L], paths
approximate [H]), and a pial network on the cortical surface, the tubes where two smooth random
fields are both near zero (the intersection of two random level surfaces is a set of curves)
[H]. Fractions come from sampling each voxel at points at most 1.5 mm apart.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .anatomy import smooth_field, smooth_field_at

__all__ = ["MCA_PATH_MM", "SSS_PATH_MM", "NAMED_VESSELS", "path_voxels", "n_vessel_voxels", "tube_fraction",
           "vessel_fractions", "MIN_VESSEL_FRACTION"]

#: Middle cerebral artery of the right hemisphere (x mirrored for the left) [mm, MNI].
MCA_PATH_MM = np.array([[14.0, 2.0, -10.0], [34.0, 4.0, -6.0], [42.0, -4.0, 6.0], [45.0, -16.0, 26.0]])
#: Superior sagittal sinus down to the confluence [mm, MNI].
SSS_PATH_MM = np.array([[0.0, -25.0, 80.0], [0.0, -58.0, 73.0], [0.0, -82.0, 56.0], [0.0, -98.0, 30.0], [0.0, -104.0, 6.0]])
#: Large vessels: (name, "artery" | "vein", radius [mm], MNI polyline [mm], mirrored to the left).
NAMED_VESSELS = (
    ("middle cerebral artery", "artery", 1.4, MCA_PATH_MM, True),
    ("anterior cerebral artery", "artery", 1.0,
     np.array([[12.0, 6.0, -12.0], [3.0, 18.0, -8.0], [3.0, 36.0, 6.0], [3.0, 24.0, 30.0], [3.0, -10.0, 42.0], [3.0, -40.0, 38.0]]), True),
    ("posterior cerebral artery", "artery", 1.0,
     np.array([[2.0, -16.0, -16.0], [16.0, -26.0, -10.0], [25.0, -45.0, -4.0], [18.0, -75.0, 6.0]]), True),
    ("superior sagittal sinus", "vein", 3.5, SSS_PATH_MM, False),
    ("straight sinus", "vein", 2.5, np.array([[0.0, -46.0, 6.0], [0.0, -75.0, 12.0], [0.0, -102.0, 8.0]]), False),
    ("transverse sinus", "vein", 3.5, np.array([[2.0, -104.0, 6.0], [30.0, -100.0, 0.0], [50.0, -80.0, -10.0], [55.0, -55.0, -22.0]]), True),
    ("internal cerebral vein", "vein", 1.2, np.array([[3.0, 0.0, 15.0], [3.0, -30.0, 12.0], [1.0, -46.0, 6.0]]), True),
    ("basal vein", "vein", 1.2, np.array([[20.0, -8.0, -12.0], [14.0, -36.0, -2.0], [1.0, -46.0, 6.0]]), True),
)
#: Voxels with less large-vessel blood than this fraction are left pure tissue (no vessel compartment).
MIN_VESSEL_FRACTION = 0.05
#: Smoothness of the two fields whose common zero set is the pial network [mm], and of the field
#: that makes a pial vessel arterial or venous [mm].
PIAL_SIGMA_MM, PIAL_KIND_SIGMA_MM = 6.0, 20.0


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


def _voxel_axes(mni_mm: NDArray) -> NDArray:
    """MNI displacement of one voxel step along each grid axis [mm], shape (3, 3) (row k: axis k)."""
    origin = mni_mm[0, 0, 0]
    return np.stack([mni_mm[1, 0, 0] - origin, mni_mm[0, 1, 0] - origin, mni_mm[0, 0, 1] - origin]).astype(np.float32)


def _sub_offsets(axes: NDArray, spacing_mm: float = 1.5) -> NDArray:
    """Offsets (in voxel units, −½…½) of sampling points about ``spacing_mm`` apart inside a voxel, (p, 3)."""
    counts = [max(1, int(np.ceil(np.linalg.norm(axis) / spacing_mm))) for axis in axes]
    grids = np.meshgrid(*[(np.arange(n) + 0.5) / n - 0.5 for n in counts], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1).astype(np.float32)


def tube_fraction(mni_mm: NDArray, path: NDArray, radius_mm: float) -> NDArray:
    """Fraction (x, y, z) of each voxel inside the tube of ``radius_mm`` around ``path`` (MNI polyline [mm])."""
    axes = _voxel_axes(mni_mm)
    reach = radius_mm + 0.5 * float(np.linalg.norm(axes, axis=1).sum())
    points = mni_mm.reshape(-1, 3)
    box = np.all((points >= path.min(axis=0) - reach) & (points <= path.max(axis=0) + reach), axis=1)
    index = np.flatnonzero(box)
    index = index[_distance_to_polyline(points[index], path.astype(np.float32)) <= reach]
    offsets = _sub_offsets(axes) @ axes
    samples = (points[index][:, None, :] + offsets[None, :, :]).reshape(-1, 3)
    inside = (_distance_to_polyline(samples, path.astype(np.float32)) <= radius_mm).reshape(index.size, len(offsets))
    fraction = np.zeros(mni_mm.shape[:3], np.float32)
    fraction.flat[index] = inside.mean(axis=1)
    return fraction


def _pial_fraction(anatomy, voxel_mm, half_width: float, rng: np.random.Generator) -> NDArray:
    """Blood fraction of the pial network on the cortical surface (GM and CSF both ≥ 0.1 in a voxel)."""
    band = np.nonzero((anatomy.pgm >= 0.1) & (anatomy.pcsf >= 0.1))
    offsets = _sub_offsets(_voxel_axes(anatomy.mni_mm))
    points = [(np.asarray(i, np.float32)[:, None] + offsets[None, :, k]).ravel() for k, i in enumerate(band)]
    shape = anatomy.pgm.shape
    first, second = (smooth_field_at(shape, voxel_mm, PIAL_SIGMA_MM, rng, points) for _ in range(2))
    inside = (first**2 + second**2 < half_width**2).reshape(len(band[0]), len(offsets))
    fraction = np.zeros(shape, np.float32)
    fraction[band] = inside.mean(axis=1)
    return fraction


def vessel_fractions(anatomy, voxel_mm, values: dict, rng: np.random.Generator, exclude: NDArray) -> tuple[NDArray, NDArray]:
    """Arterial and venous blood volume fractions (x, y, z) of the large vessels (0 where ``exclude``).

    Named vessels (:data:`NAMED_VESSELS`) plus the pial network (``values["pial_vessel_radius"]``,
    a ``values["venous_share"]`` of it venous, by a smooth field). Fractions below
    :data:`MIN_VESSEL_FRACTION` are set to 0; where arteries and veins share a voxel beyond its
    volume both are scaled down to fill it.
    """
    arterial, venous = np.zeros((2,) + anatomy.pgm.shape, np.float32)
    for _, kind, radius, path, mirrored in NAMED_VESSELS:
        for side in ((1.0, -1.0) if mirrored else (1.0,)):
            target = arterial if kind == "artery" else venous
            np.maximum(target, tube_fraction(anatomy.mni_mm, path * [side, 1.0, 1.0], radius), out=target)
    pial = _pial_fraction(anatomy, voxel_mm, values["pial_vessel_radius"], rng)
    kind = smooth_field(anatomy.pgm.shape, voxel_mm, PIAL_KIND_SIGMA_MM, rng)
    is_vein = kind < np.quantile(kind, values["venous_share"])
    venous = np.maximum(venous, np.where(is_vein, pial, 0.0))
    arterial = np.maximum(arterial, np.where(is_vein, 0.0, pial))
    total = arterial + venous
    scale = np.where(total > 1.0, 1.0 / np.maximum(total, 1e-6), 1.0)
    arterial, venous = arterial * scale, venous * scale
    keep = (arterial + venous >= MIN_VESSEL_FRACTION) & ~exclude
    return np.where(keep, arterial, 0.0).astype(np.float32), np.where(keep, venous, 0.0).astype(np.float32)
