"""Reading scans and writing maps (NIfTI), with checks that fail early and writes that are atomic.

A ``Scan`` is a DSC series (x, y, z, t) with its masks, TE and TR; ``load_scan`` checks every
piece against the series (shape, affine, finiteness) and raises :class:`StnetInputError` with one
line naming the problem. ``save_maps`` writes a folder of maps all at once or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from . import __version__
from .constants import MAP_NAMES, UNITS
from .masking import compute_brain_mask
from ._validation import StnetInputError, check_file, check_finite, check_mask, check_positive

__all__ = ["Scan", "load_nifti", "load_scan", "save_maps", "save_nifti", "atomic_write", "MAP_FILES"]

#: Files ``save_maps`` writes: one NIfTI per map and a JSON sidecar.
MAP_FILES = tuple(f"{name}.nii.gz" for name in MAP_NAMES) + ("maps.json",)
#: Largest difference between two affines still taken as the same grid [mm].
AFFINE_TOLERANCE_MM = 1e-3


@dataclass
class Scan:
    """A DSC-MRI series with everything deconvolution needs.

    Attributes
    ----------
    signal : ndarray, shape (x, y, z, t), float32
        Magnitude signal.
    affine : ndarray, shape (4, 4)
        Voxel-to-world matrix of the series (and of every map computed from it).
    header : nibabel.Nifti1Header
        The series' header, copied into the maps.
    te_ms, tr_s : float
        Echo time [ms] and frame interval [s].
    aif_mask, brain_mask : ndarray of bool, shape (x, y, z)
        Arterial voxels and the voxels to compute (computed when not given).
    vof_mask : ndarray of bool, optional
        Venous-output voxels for the partial-volume correction k_AV (eq. 8).
    field_t : float
        Field strength [T], which scales the relaxivities (eq. 2).
    path : Path, optional
        Where the series came from.
    """

    signal: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header
    te_ms: float
    tr_s: float
    aif_mask: np.ndarray
    brain_mask: np.ndarray
    vof_mask: np.ndarray | None = None
    field_t: float = 1.5
    path: Path | None = None

    @property
    def zooms_mm(self) -> tuple[float, float, float]:
        """Voxel size (x, y, z) [mm], from the header."""
        return tuple(float(z) for z in self.header.get_zooms()[:3])


def load_nifti(path, what: str) -> nib.Nifti1Image:
    """Open a NIfTI file or raise StnetInputError naming ``what`` and the path."""
    path = check_file(path, what)
    try:
        image = nib.load(path)
        image.dataobj  # noqa: B018  (touch the proxy so that a truncated header fails here)
    except Exception as error:  # nibabel raises several types for unreadable files
        raise StnetInputError(f"cannot read {what} {path}: {error}".splitlines()[0]) from error
    return image


def _frame_interval_s(header, tr_s) -> float:
    if tr_s is not None:
        return check_positive(tr_s, "tr_s", "s")
    zooms = header.get_zooms()
    interval = float(zooms[3]) if len(zooms) > 3 else 0.0
    if header.get_xyzt_units()[1] == "msec":
        interval /= 1000.0
    if not interval > 0:
        raise StnetInputError("the series' header has no frame interval: pass tr_s (--tr-s) in seconds")
    return interval


def _load_mask(path, what: str, reference: nib.Nifti1Image, *, required: bool) -> np.ndarray | None:
    if path is None and not required:
        return None
    image = load_nifti(path, what)
    if image.shape[:3] != reference.shape[:3] or image.ndim not in (3, 4) or (image.ndim == 4 and image.shape[3] != 1):
        raise StnetInputError(f"{what} shape {image.shape} does not match the series' spatial shape {reference.shape[:3]}")
    if not np.allclose(image.affine, reference.affine, atol=AFFINE_TOLERANCE_MM):
        raise StnetInputError(f"{what} {path} has a different affine from the series: resample it onto the series' grid")
    data = np.asarray(image.dataobj).reshape(reference.shape[:3])
    return check_mask(check_finite(data, what), reference.shape[:3], what)


def load_scan(
    dsc_path,
    aif_mask,
    vof_mask=None,
    brain_mask=None,
    te_ms: float | None = None,
    tr_s: float | None = None,
    *,
    field_t: float = 1.5,
) -> Scan:
    """Load and check a DSC series (4-D NIfTI) and its masks (3-D NIfTI paths on the same grid).

    ``tr_s`` defaults to the header's fourth zoom; ``brain_mask`` is computed from the series
    when not given (:func:`stnet_lib.masking.compute_brain_mask`).
    """
    image = load_nifti(dsc_path, "DSC series")
    if image.ndim != 4:
        raise StnetInputError(f"the DSC series {dsc_path} has shape {image.shape}: a 4-D (x, y, z, t) series is needed")
    if te_ms is None:
        raise StnetInputError("the echo time is missing: pass te_ms (--te-ms) in milliseconds")
    te_ms = check_positive(te_ms, "te_ms", "ms")
    interval = _frame_interval_s(image.header, tr_s)
    signal = check_finite(np.asarray(image.dataobj, dtype=np.float32), f"the DSC series {dsc_path}")
    aif = _load_mask(aif_mask, "AIF mask", image, required=True)
    vof = _load_mask(vof_mask, "VOF mask", image, required=False)
    brain = _load_mask(brain_mask, "brain mask", image, required=False)
    if brain is None:
        brain = compute_brain_mask(signal)
    return Scan(signal, image.affine, image.header.copy(), te_ms, interval, aif, brain, vof,
                check_positive(field_t, "field_t", "T"), Path(dsc_path))


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes))
    os.close(handle)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file ordinary permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_nifti(data: np.ndarray, path, *, affine, header=None) -> Path:
    """Write ``data`` as float32 NIfTI with ``affine`` (and the spatial part of ``header``), atomically."""
    header = None if header is None else header.copy()
    image = nib.Nifti1Image(np.asarray(data, dtype=np.float32), affine, header=header)
    image.set_data_dtype(np.float32)
    path = Path(path)
    with atomic_write(path) as tmp:
        nib.save(image, tmp)
    return path


def _sidecar(maps) -> dict:
    return {"method": maps.method, "units": UNITS, "params": _jsonable(maps.params), "stnet_version": __version__}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def save_maps(maps, out_dir, *, affine, header=None, overwrite: bool = False) -> Path:
    """Write ``cbv``, ``cbf``, ``mtt``, ``tmax`` (.nii.gz) and ``maps.json`` into ``out_dir``, all or nothing.

    Raises StnetInputError if any of these files exists already and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    existing = [name for name in MAP_FILES if (out_dir / name).exists()]
    if existing and not overwrite:
        raise StnetInputError(f"{out_dir} already holds {', '.join(existing)}: pass overwrite (--overwrite) or another folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        if header is not None:
            header = header.copy()
            header.set_data_shape(header.get_data_shape()[:3])
        for name, values in maps.as_dict().items():
            save_nifti(values, staging / f"{name}.nii.gz", affine=affine, header=header)
        (staging / "maps.json").write_text(json.dumps(_sidecar(maps), indent=2) + "\n")
        if not out_dir.exists():
            os.replace(staging, out_dir)
        else:
            for name in MAP_FILES:
                os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
