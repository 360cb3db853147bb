"""Stage 1 (synthetic data): subject anatomy from the MNI152 2009 GM/WM maps shipped inside nilearn.

The grey- and white-matter probability maps (1 mm, symmetric ICBM152 2009a, as shipped in
``nilearn/datasets/data``) are read from the installed package — nothing is downloaded. CSF is
the rest of the template's head mask (T1 > 0.2, nilearn's ``load_mni152_brain_mask`` rule).
Each subject gets a random rigid transform with mild scaling (simulation_recipe.md §6) and is
resampled onto the profile's grid, averaging the 1 mm maps through each thick slice.

Derived maps must keep the MNI copyright notice (:data:`MNI_NOTICE`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

__all__ = ["MNI_NOTICE", "Anatomy", "template_folder", "load_templates", "draw_pose", "make_anatomy", "smooth_field",
           "smooth_field_at", "apply_atrophy"]

#: The ICBM152 copyright notice, to travel with every derived map (recipe §6).
MNI_NOTICE = (
    "Anatomy derived from the MNI ICBM152 2009a symmetric GM/WM templates shipped with nilearn. "
    "Copyright (C) 1993-2004 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological "
    "Institute, McGill University. Permission to use, copy, modify, and distribute this software and "
    "its documentation for any purpose and without fee is hereby granted, provided that the above "
    "copyright notice appear in all copies. The authors and McGill University make no representations "
    "about the suitability of this software for any purpose. It is provided \"as is\" without express "
    "or implied warranty. The authors are not responsible for any data loss, equipment damage, property "
    "loss, or injury to subjects or patients resulting from the use or misuse of this software package."
)
_FILES = {
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
}
#: Centre of the brain in MNI space [mm] (in-plane), around which subjects are posed.
_BRAIN_CENTRE_MM = np.array([0.0, -18.0])


@dataclass
class Anatomy:
    """Tissue fractions of one subject on its acquisition grid.

    Attributes
    ----------
    pgm, pwm, pcsf : ndarray, shape (x, y, z), float32
        Grey-matter, white-matter and CSF fractions (sum ≤ 1; the rest is outside the head).
    mni_mm : ndarray, shape (x, y, z, 3), float32
        MNI coordinates of each voxel centre [mm].
    affine : ndarray, shape (4, 4)
        Voxel-to-scanner matrix [mm].
    pose : dict
        The random transform (angles [deg], scales, translation and slab centre [mm]).
    """

    pgm: NDArray
    pwm: NDArray
    pcsf: NDArray
    mni_mm: NDArray
    affine: NDArray
    pose: dict


def template_folder() -> Path:
    """``nilearn/datasets/data`` of the installed nilearn, found without importing nilearn (slow)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("nilearn is not installed: it ships the MNI152 GM/WM maps the cohort is built from")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


@functools.lru_cache(maxsize=1)
def load_templates() -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """GM, WM and head-mask maps (float32, 0–1) and their affine, from nilearn's package data."""
    images = {key: nib.load(template_folder() / name) for key, name in _FILES.items()}
    gm, wm, t1 = (np.asarray(images[k].dataobj, dtype=np.float32) / 255.0 for k in ("gm", "wm", "t1"))
    head = (t1 > 0.2).astype(np.float32)
    return gm, wm, np.maximum(head, np.minimum(gm + wm, 1.0)), images["gm"].affine


def draw_pose(rng: np.random.Generator, slab_centre_mm: tuple[float, float]) -> dict:
    """Random rigid transform with mild scaling (recipe §6: ±10°, scale 0.9–1.1, ±10 mm)."""
    return {
        "angles_deg": rng.uniform(-10.0, 10.0, 3).round(3).tolist(),
        "scale": (rng.uniform(0.9, 1.1) * rng.uniform(0.97, 1.03, 3)).round(4).tolist(),
        "shift_mm": rng.uniform(-10.0, 10.0, 2).round(3).tolist(),
        "slab_centre_z_mm": float(round(rng.uniform(*slab_centre_mm), 3)),
    }


def _rotation(angles_deg) -> NDArray:
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _voxel_to_mni(shape, voxel_mm, pose) -> tuple[NDArray, NDArray]:
    """Output affine (voxel → scanner) and the 4×4 voxel → MNI matrix of a pose."""
    affine = np.diag([*voxel_mm, 1.0])
    affine[:3, 3] = -(np.asarray(shape) - 1) / 2.0 * np.asarray(voxel_mm)
    centre = np.array([*(_BRAIN_CENTRE_MM + pose["shift_mm"]), pose["slab_centre_z_mm"]])
    scanner_to_mni = np.eye(4)
    scanner_to_mni[:3, :3] = _rotation(pose["angles_deg"]).T / np.asarray(pose["scale"])[None, :]
    scanner_to_mni[:3, 3] = centre
    return affine, scanner_to_mni @ affine


def make_anatomy(shape: tuple[int, int, int], voxel_mm: tuple[float, float, float], pose: dict,
                 *, sub_slice_mm: float = 1.5) -> Anatomy:
    """Resample the templates onto a subject grid, averaging through each slice.

    Parameters
    ----------
    shape : (int, int, int)
        Grid (x, y, z).
    voxel_mm : (float, float, float)
        Voxel size [mm]; the slice thickness is averaged with samples ``sub_slice_mm`` apart.
    pose : dict
        From :func:`draw_pose`.
    """
    gm, wm, head, template_affine = load_templates()
    affine, vox_to_mni = _voxel_to_mni(shape, voxel_mm, pose)
    to_index = np.linalg.inv(template_affine) @ vox_to_mni
    n_sub = max(1, int(round(voxel_mm[2] / sub_slice_mm)))
    sums = [np.zeros(shape, np.float32) for _ in range(3)]
    for f in (np.arange(n_sub) + 0.5) / n_sub - 0.5:
        offset = to_index[:3, 3] + to_index[:3, 2] * f
        for total, image in zip(sums, (gm, wm, head)):
            total += ndimage.affine_transform(image, to_index[:3, :3], offset, output_shape=shape,
                                              order=1, mode="constant", cval=0.0)
    pgm, pwm, phead = (np.clip(s / n_sub, 0.0, 1.0) for s in sums)
    pcsf = np.clip(phead - pgm - pwm, 0.0, 1.0)
    grid = np.stack(np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij"), -1)
    mni = grid @ vox_to_mni[:3, :3].T.astype(np.float32) + vox_to_mni[:3, 3].astype(np.float32)
    return Anatomy(pgm, pwm, pcsf, mni, affine, dict(pose))


def smooth_field(shape: tuple[int, ...], voxel_mm, sigma_mm: float, rng: np.random.Generator,
                 mask: NDArray | None = None) -> NDArray:
    """Smooth Gaussian random field, float32, standardised (zero mean, unit SD) over ``mask``.

    White noise on a coarse grid (spacing σ/2) is Gaussian-filtered (σ = 2 coarse voxels) and
    interpolated linearly at the voxels of ``mask`` (all when None): cheap even for 256×256×20.

    Returns
    -------
    ndarray
        ``shape`` when ``mask`` is None, else the values at ``mask`` (1-D, C order).
    """
    index = np.indices(shape, sparse=False).reshape(len(shape), -1) if mask is None else np.nonzero(mask)
    field = smooth_field_at(shape, voxel_mm, sigma_mm, rng, index)
    return field.reshape(shape) if mask is None else field


def smooth_field_at(shape: tuple[int, ...], voxel_mm, sigma_mm: float, rng: np.random.Generator, index) -> NDArray:
    """:func:`smooth_field` at voxel coordinates ``index`` (one array per axis, fractional allowed), standardised over them."""
    step = sigma_mm / 2.0
    coarse = tuple(int(np.ceil(n * v / step)) + 3 for n, v in zip(shape, voxel_mm))
    noise = ndimage.gaussian_filter(rng.standard_normal(coarse), 2.0, mode="wrap")
    coords = [1.0 + (np.asarray(i, np.float32) + 0.5) * (v / step) for i, v in zip(index, voxel_mm)]
    field = ndimage.map_coordinates(noise, coords, order=1).astype(np.float32)
    return (field - field.mean()) / max(float(field.std()), 1e-12)


def apply_atrophy(anatomy: Anatomy, amount: float, field: NDArray) -> Anatomy:
    """Older brain: a share ``amount``·(1 + ½·field, clipped to 0–2) of GM and WM becomes CSF, in place.

    ``field`` is a smooth unit-variance field on the grid, so that the loss is patchy (sulcal
    widening, larger ventricles in partial volume); the head (GM + WM + CSF) is unchanged.
    """
    loss = np.clip(amount * (1.0 + 0.5 * field), 0.0, 2.0 * amount).astype(np.float32)
    lost = (anatomy.pgm + anatomy.pwm) * loss
    anatomy.pgm *= 1.0 - loss
    anatomy.pwm *= 1.0 - loss
    anatomy.pcsf += lost
    return anatomy
