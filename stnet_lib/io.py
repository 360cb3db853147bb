"""Reading scans and writing maps (NIfTI), with checks that fail early and writes that are atomic.

A ``Scan`` is a DSC series (x, y, z, t) with its masks, TE and TR; ``load_scan`` checks every
piece against the series (shape, affine, finiteness, a magnitude signal) and raises
:class:`StnetInputError` with one line naming the problem. TE, TR, field strength and slice timing
come from the caller, the BIDS sidecar ``X.json`` beside ``X.nii.gz``, or the header
(:mod:`stnet_lib.acquisition`), and the scan records where each came from. ``save_maps`` writes a
folder of maps, and ``maps.json`` with that record, all at once or not at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from scipy import ndimage

from . import __version__
from .acquisition import read_sidecar, resolve_acquisition, sidecar_path
from .constants import MAP_NAMES, UNITS
from .masking import compute_brain_mask
from ._validation import StnetInputError, check_file, check_finite, check_mask

__all__ = ["Scan", "load_nifti", "load_scan", "save_maps", "save_nifti", "atomic_write", "ordinary_permissions", "MAP_FILES"]

#: Files ``save_maps`` writes: one NIfTI per map and a JSON sidecar.
MAP_FILES = tuple(f"{name}.nii.gz" for name in MAP_NAMES) + ("maps.json",)
#: Largest difference between two affines still taken as the same grid [mm].
AFFINE_TOLERANCE_MM = 1e-3
#: An AIF mask is refused when none of its voxels is within this many in-plane voxels of the brain mask.
AIF_BRAIN_MARGIN_VOXELS = 2

log = logging.getLogger(__name__)


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
    aif_mask : ndarray of bool, shape (x, y, z), or None
        Arterial voxels; None: found automatically when the maps are computed.
    brain_mask : ndarray of bool, shape (x, y, z)
        The voxels to compute (computed when not given).
    vof_mask : ndarray of bool, optional
        Venous-output voxels for the partial-volume correction k_AV (eq. 8).
    field_t : float
        Field strength [T], which scales the relaxivities (eq. 2).
    path : Path, optional
        Where the series came from.
    slice_timing_s : ndarray, shape (z,), optional
        Acquisition time of each slice within the frame [s] (the sidecar's ``SliceTiming``).
    provenance : dict
        Where each value came from, written into ``maps.json``: ``source`` (the series' absolute
        path, or its DICOM series), ``te_ms``/``tr_s``/``field_t``/``slice_timing_s`` →
        ``"flag"``, ``"argument"``, ``"manifest"``, ``"sidecar"``, ``"header"`` or ``"default"``,
        ``sidecar`` (the values read there), ``computed_masks`` (e.g. ``["brain"]``).
    """

    signal: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header
    te_ms: float
    tr_s: float
    aif_mask: np.ndarray | None
    brain_mask: np.ndarray
    vof_mask: np.ndarray | None = None
    field_t: float = 1.5
    path: Path | None = None
    slice_timing_s: np.ndarray | None = None
    provenance: dict = field(default_factory=dict)

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


def read_data(image: nib.Nifti1Image, what: str, path, dtype=np.float32) -> np.ndarray:
    """The voxel values of ``image`` as ``dtype``, or StnetInputError (a truncated or corrupt file)."""
    try:
        return np.asarray(image.dataobj, dtype=dtype)
    except Exception as error:  # zlib, EOF, short reads: nibabel raises several types
        raise StnetInputError(f"cannot read the voxels of {what} {path} (truncated or corrupt file?): "
                              f"{type(error).__name__}: {error}".splitlines()[0]) from error


def _load_mask(path, what: str, reference: nib.Nifti1Image, *, required: bool) -> np.ndarray | None:
    if path is None and not required:
        return None
    image = load_nifti(path, what)
    if image.shape[:3] != reference.shape[:3] or image.ndim not in (3, 4) or (image.ndim == 4 and image.shape[3] != 1):
        raise StnetInputError(f"{what} shape {image.shape} does not match the series' spatial shape {reference.shape[:3]}")
    if not np.allclose(image.affine, reference.affine, atol=AFFINE_TOLERANCE_MM):
        raise StnetInputError(f"{what} {path} has a different affine from the series: resample it onto the series' grid")
    data = read_data(image, what, path, dtype=np.float64).reshape(reference.shape[:3])
    return check_mask(check_finite(data, what), reference.shape[:3], what)


def _check_magnitude(signal: np.ndarray, path) -> np.ndarray:
    """Refuse negative values (a magnitude series is >= 0: int16 wrap-around, phase or subtracted images) and
    a series without signal."""
    if not signal.any():
        raise StnetInputError(f"the DSC series {path} has no signal (every value is 0): check the file")
    negative = signal < 0
    if negative.any():
        raise StnetInputError(f"the DSC series {path} has {int(negative.sum())} negative values (min {signal.min():g}): "
                              "a magnitude series is >= 0 (an int16 overflow, or a phase or subtracted image?)")
    return signal


def _check_aif_placement(aif: np.ndarray, brain: np.ndarray | None, signal: np.ndarray) -> None:
    """Refuse an AIF mask on voxels without signal, or far outside a given brain mask (a computed
    one may miss an artery at the brain's edge, so it is not held against the AIF)."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[:, :, 1] = True
    if brain is not None and not (aif & ndimage.binary_dilation(brain, structure, AIF_BRAIN_MARGIN_VOXELS)).any():
        raise StnetInputError(f"the AIF mask's {int(aif.sum())} voxel(s) all lie outside the brain (more than "
                              f"{AIF_BRAIN_MARGIN_VOXELS} voxels from the brain mask): draw it on an artery in the brain")
    if not (signal[aif].mean(axis=-1) > 0).any():
        raise StnetInputError(f"the AIF mask's {int(aif.sum())} voxel(s) have no signal: draw the AIF on an artery, "
                              "not on the background")


def load_scan(
    dsc_path,
    aif_mask=None,
    vof_mask=None,
    brain_mask=None,
    te_ms: float | None = None,
    tr_s: float | None = None,
    *,
    field_t: float | None = None,
    given_as: str = "argument",
) -> Scan:
    """Load and check a DSC series (4-D NIfTI), its acquisition values and its masks (3-D NIfTI on the same grid).

    Parameters
    ----------
    dsc_path : path
        The series; its BIDS sidecar ``X.json`` beside ``X.nii(.gz)`` is read when present.
    aif_mask, vof_mask, brain_mask : path, optional
        Masks. No AIF mask: found automatically when the maps are computed; no brain mask: computed
        from the series (:func:`stnet_lib.masking.compute_brain_mask`).
    te_ms, tr_s, field_t : float, optional
        Echo time [ms], frame interval [s], field strength [T]; None or NaN: from the sidecar, else
        the header (TR: the 4th zoom), else (field only) 1.5 T with a warning. A given value that
        disagrees with the sidecar's wins, with a warning. See :mod:`stnet_lib.acquisition`.
    given_as : str
        What the given values are, for messages and the record: ``"flag"``, ``"manifest"``...
    """
    image = load_nifti(dsc_path, "DSC series")
    if image.ndim != 4:
        raise StnetInputError(f"the DSC series {dsc_path} has shape {image.shape}: a 4-D (x, y, z, t) series is needed")
    sidecar_file = sidecar_path(dsc_path)
    acq = resolve_acquisition({"te_ms": te_ms, "tr_s": tr_s, "field_t": field_t}, image.header,
                              sidecar=read_sidecar(sidecar_file), sidecar_file=sidecar_file,
                              n_slices=image.shape[2], given_as=given_as)
    signal = check_finite(read_data(image, "DSC series", dsc_path), f"the DSC series {dsc_path}")
    _check_magnitude(signal, dsc_path)
    aif = _load_mask(aif_mask, "AIF mask", image, required=False)
    vof = _load_mask(vof_mask, "VOF mask", image, required=False)
    brain = _load_mask(brain_mask, "brain mask", image, required=False)
    if aif is not None:
        _check_aif_placement(aif, brain, signal)
    computed = [] if brain is not None else ["brain"]
    if brain is None:
        brain = compute_brain_mask(signal)
        if not brain.any():
            raise StnetInputError(f"no brain found in {dsc_path} (the series' mean image is uniform): pass a brain "
                                  "mask (--brain-mask)")
    for note in acq.warnings:
        log.warning(note)
    provenance = {"source": str(Path(dsc_path).resolve()), **acq.provenance, "computed_masks": computed}
    return Scan(signal, image.affine, image.header.copy(), acq.te_ms, acq.tr_s, aif, brain, vof, acq.field_t,
                Path(dsc_path), acq.slice_timing_s, provenance)


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes))
    os.close(handle)
    try:
        yield Path(tmp)
        ordinary_permissions(Path(tmp), 0o666)  # mkstemp makes 0600
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


def _sidecar(maps, scan: Scan | None) -> dict:
    """``maps.json``: the method, its parameters (``maps.params``), units, version, and the scan's record."""
    record = {"method": maps.method, "units": UNITS, "params": _jsonable(maps.params), "stnet_version": __version__}
    if scan is not None:
        timing = None if scan.slice_timing_s is None else np.asarray(scan.slice_timing_s).tolist()
        record["acquisition"] = {"te_ms": scan.te_ms, "tr_s": scan.tr_s, "field_t": scan.field_t,
                                 "slice_timing_s": timing}
        record["provenance"] = _jsonable(scan.provenance)
    return record


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return value


def ordinary_permissions(path: Path, mode: int = 0o777) -> None:
    """Give ``path`` the permissions ``mode`` less the umask (``mkstemp``/``mkdtemp`` make 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def save_maps(maps, out_dir, *, affine=None, header=None, overwrite: bool = False, scan: Scan | None = None) -> Path:
    """Write ``cbv``, ``cbf``, ``mtt``, ``tmax`` (.nii.gz) and ``maps.json`` into ``out_dir``, all or nothing.

    ``maps.json`` holds the method, ``maps.params`` (everything the method and the curve
    preparation recorded), the units and the package version; with ``scan`` also its acquisition
    values and :attr:`Scan.provenance` (source, where each value came from, computed masks).
    ``affine`` and ``header`` default to the scan's. The folder gets ordinary permissions (the
    umask's, not ``mkdtemp``'s 0700). Raises StnetInputError if any of these files exists already
    and ``overwrite`` is False.
    """
    if scan is not None:
        affine = scan.affine if affine is None else affine
        header = scan.header if header is None else header
    if affine is None:
        raise StnetInputError("save_maps needs the maps' affine (or the scan they come from)")
    out_dir = Path(out_dir)
    existing = [name for name in MAP_FILES if (out_dir / name).exists()]
    if existing and not overwrite:
        raise StnetInputError(f"{out_dir} already holds {', '.join(existing)}: pass overwrite (--overwrite) or another folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        ordinary_permissions(staging, 0o777)
        if header is not None:
            header = header.copy()
            header.set_data_shape(header.get_data_shape()[:3])
        for name, values in maps.as_dict().items():
            save_nifti(values, staging / f"{name}.nii.gz", affine=affine, header=header)
        extras = _write_extras(maps, staging, affine=affine, header=header)
        (staging / "maps.json").write_text(json.dumps(_sidecar(maps, scan), indent=2) + "\n")
        ordinary_permissions(staging / "maps.json", 0o666)
        if not out_dir.exists():
            os.replace(staging, out_dir)
        else:
            for name in MAP_FILES + extras:
                os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def _write_extras(maps, folder: Path, *, affine, header) -> tuple[str, ...]:
    """Write ``maps.extra_volumes`` (NIfTI) and ``maps.extra_files`` (bytes) into ``folder``; their file names."""
    names = []
    for name, values in getattr(maps, "extra_volumes", {}).items():
        save_nifti(values, folder / f"{name}.nii.gz", affine=affine, header=header)
        names.append(f"{name}.nii.gz")
    for name, content in getattr(maps, "extra_files", {}).items():
        (folder / name).write_bytes(content)
        ordinary_permissions(folder / name, 0o666)
        names.append(name)
    return tuple(names)
