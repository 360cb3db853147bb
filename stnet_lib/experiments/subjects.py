"""Stage 6 — one subject at a time: its reference and estimated maps, the slice to show, its curves.

Used by Fig. 2 (one test subject) and the ``explore`` notebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from .._validation import StnetInputError
from ..constants import MAP_NAMES, TMAX_THRESHOLD_S
from ..deconvolution import METHODS
from ..io import Scan, load_scan
from ..manifest import load_manifest
from ..maps import PerfusionMaps
from ..pipeline import compute_maps, scan_concentrations
from .data import subject_scan
from .predictions import pred_dir, predict_subjects

__all__ = ["pick_subject", "load_maps", "as_perfusion_maps", "reference_maps", "method_maps", "hp_slice",
           "worst_voxel", "scan_curves", "Exploration", "explore", "explore_scan"]


def pick_subject(manifest_path, subject_id: str | None = None) -> dict:
    """A manifest row as a dict: ``subject_id``, or the labelled test subject with the largest hypoperfusion.

    Without lesion labels (or volumes), the first test subject.
    """
    table = load_manifest(manifest_path)
    if subject_id is not None:
        rows = table[table["subject_id"].astype(str) == str(subject_id)]
        if rows.empty:
            raise StnetInputError(f"subject {subject_id!r} is not in {manifest_path}; it lists {list(table['subject_id'])[:10]} ...")
        return rows.iloc[0].to_dict()
    test = table[table["split"] == "test"]
    labelled = test[test["has_lesion_label"].astype(bool)]
    rows = labelled if len(labelled) else test if len(test) else table
    if "hypoperfusion_ml" in rows:
        rows = rows.sort_values("hypoperfusion_ml", ascending=False, kind="stable")
    return rows.iloc[0].to_dict()


def load_maps(folder, names=MAP_NAMES) -> dict[str, np.ndarray]:
    """The maps ``<folder>/<name>.nii.gz`` present, as float64 (x, y, z) arrays."""
    folder = Path(folder)
    return {name: np.asarray(nib.load(folder / f"{name}.nii.gz").dataobj, dtype=np.float64)
            for name in names if (folder / f"{name}.nii.gz").is_file()}


def as_perfusion_maps(maps: dict, method: str) -> PerfusionMaps:
    """Maps by name as a :class:`PerfusionMaps` (for :func:`stnet_lib.plotting.plot_map_grid`)."""
    return PerfusionMaps(**{name: maps[name] for name in MAP_NAMES}, method=method)


def reference_maps(row: dict) -> dict[str, np.ndarray]:
    """The reference maps a manifest row gives (none for a cohort without them)."""
    return {name: np.asarray(nib.load(row[name]).dataobj, dtype=np.float64)
            for name in MAP_NAMES if row.get(name) is not None and str(row.get(name)) not in ("", "nan")}


def method_maps(manifest_path, row: dict, methods, runs_dir, *, device: str = "cpu",
                options: dict | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Each method's maps of one subject, computed into ``runs_dir`` if not there yet (then cached)."""
    options = options or {}
    frame = pd.DataFrame([row])
    maps = {}
    for method in methods:
        predict_subjects(manifest_path, method, runs_dir, device=device, options=options.get(method, {}), rows=frame)
        maps[method] = load_maps(pred_dir(runs_dir, method) / str(row["subject_id"]))
    return maps


def hp_slice(reference_tmax: np.ndarray, brain_mask: np.ndarray, threshold_s: float = TMAX_THRESHOLD_S) -> int:
    """The axial slice with the most hypoperfused voxels (the middle slice when there are none)."""
    hp = (np.nan_to_num(reference_tmax, nan=0.0) > threshold_s) & brain_mask
    counts = hp.sum(axis=(0, 1))
    return int(np.argmax(counts)) if counts.any() else reference_tmax.shape[2] // 2


def worst_voxel(reference_tmax: np.ndarray, brain_mask: np.ndarray, slice_index: int | None = None) -> tuple[int, int, int]:
    """The brain voxel of the longest reference Tmax (in axial slice ``slice_index`` if given): a lesion voxel."""
    brain_mask = np.asarray(brain_mask, dtype=bool).copy()
    if slice_index is not None:
        brain_mask[:, :, np.arange(brain_mask.shape[2]) != slice_index] = False
    tmax = np.where(brain_mask, np.nan_to_num(reference_tmax, nan=-np.inf), -np.inf)
    return tuple(int(i) for i in np.unravel_index(np.argmax(tmax), tmax.shape))


def scan_curves(scan: Scan, voxels=(), *, concentrations=None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Concentration curves [mM] of a scan: AIF, VOF (if a mask), the brain's mean, and chosen voxels.

    Parameters
    ----------
    scan : Scan
    voxels : sequence of (x, y, z)
        Brain voxels whose tissue curves to add (labelled by their coordinates).
    concentrations : Concentrations, optional
        :func:`stnet_lib.pipeline.scan_concentrations` of ``scan``, when already computed.

    Returns
    -------
    (time_s, curves)
        Frame times [s], shape (t,), and label → curve (t,).
    """
    conc = scan_concentrations(scan) if concentrations is None else concentrations
    curves = {"AIF": conc.c_aif}
    if conc.c_vof is not None:
        curves["VOF"] = conc.c_vof
    curves["brain mean"] = conc.c_tissue.mean(axis=0)
    index = np.full(scan.brain_mask.shape, -1)
    index[scan.brain_mask] = np.arange(int(scan.brain_mask.sum()))
    for voxel in voxels:
        position = index[tuple(voxel)]
        if position < 0:
            raise StnetInputError(f"voxel {tuple(voxel)} is outside the brain mask: choose a brain voxel")
        curves[f"voxel {tuple(int(v) for v in voxel)}"] = conc.c_tissue[position]
    return _frame_times_s(conc, scan.tr_s), curves


def _frame_times_s(conc, tr_s: float) -> np.ndarray:
    """Times [s] from the series' start of the frames kept by the curve preparation (after those dropped)."""
    dropped = conc.prepared.record.get("frames_dropped", 0) if conc.prepared is not None else 0
    return (dropped + np.arange(conc.c_aif.shape[-1])) * tr_s


@dataclass
class Exploration:
    """One scan, its reference maps (possibly none), every method's maps, a slice and a voxel to show."""

    subject_id: str
    scan: Scan
    reference: dict
    maps: dict
    slice_index: int
    voxel: tuple[int, int, int]
    notes: list = field(default_factory=list)

    def _curves(self, voxels=()) -> dict[str, np.ndarray]:
        if "concentrations" not in self.__dict__:  # computed once, on first use
            self.__dict__["concentrations"] = scan_concentrations(self.scan)
        return scan_curves(self.scan, voxels, concentrations=self.__dict__["concentrations"])[1]

    def tissue_curves(self, voxel) -> dict[str, np.ndarray]:
        """The brain's mean and ``voxel``'s concentration curves [mM]."""
        return {label: curve for label, curve in self._curves([voxel]).items() if label not in ("AIF", "VOF")}

    @property
    def vessel_curves(self) -> dict[str, np.ndarray]:
        """The arterial input (and venous output) concentration curves [mM]."""
        return {label: curve for label, curve in self._curves().items() if label in ("AIF", "VOF")}

    @property
    def time_s(self) -> np.ndarray:
        """Times [s] of the frames the curves keep (non-steady first frames dropped), from the series' start."""
        self._curves()
        return _frame_times_s(self.__dict__["concentrations"], self.scan.tr_s)

    @property
    def tmax(self) -> np.ndarray:
        """The reference Tmax, or the first method's when there is no reference."""
        return self.reference.get("tmax", next(iter(self.maps.values()))["tmax"])

    @property
    def labelled_maps(self) -> dict:
        """Reference (when there is one) then each method: label → maps."""
        return ({"reference": self.reference} if self.reference else {}) | self.maps


def explore(context, *, subject_id=None, methods=None, voxel=None, slice_index=None) -> Exploration:
    """Everything the ``explore`` notebook shows for a subject of the context's manifest.

    ``subject_id`` defaults to the labelled test subject with the largest lesion; its maps are taken
    from (or cached into) the context's run folder. A scan outside a manifest: :func:`explore_scan`.
    """
    methods = tuple(context.methods if methods is None else methods)
    row = pick_subject(context.manifest, subject_id)
    scan, reference = subject_scan(row), reference_maps(row)
    if "stnet" in methods:
        context.checkpoint()
    maps = method_maps(context.manifest, row, methods, context.runs_dir, device=context.device,
                       options={m: context.options(m) for m in methods})
    return _exploration(str(row["subject_id"]), scan, reference, maps, voxel, slice_index)


def explore_scan(dsc_path, *, aif_mask=None, vof_mask=None, brain_mask=None, te_ms=None, tr_s=None, field_t=None,
                 motion_correct: bool = False, methods=None, checkpoint=None, device: str = "cpu", voxel=None,
                 slice_index=None) -> Exploration:
    """A scan of one's own, its maps computed in memory: no cohort is simulated and nothing is trained.

    ``methods`` defaults to every classical method (:data:`stnet_lib.deconvolution.METHODS`), with
    ST-Net added when ``checkpoint`` (a trained ``best.pt``) is given; there is no reference. The
    acquisition values and masks are :func:`stnet_lib.io.load_scan`'s, ``motion_correct``
    :func:`stnet_lib.pipeline.compute_maps`'s.
    """
    methods = tuple(list(METHODS) + (["stnet"] if checkpoint else []) if methods is None else methods)
    if "stnet" in methods and not checkpoint:
        raise StnetInputError("ST-Net needs a trained network: set checkpoint (e.g. runs/quick/stnet/best.pt) "
                              "or leave stnet out of methods")
    acquisition = {} if field_t is None else {"field_t": field_t}
    scan = load_scan(dsc_path, aif_mask=aif_mask, vof_mask=vof_mask, brain_mask=brain_mask, te_ms=te_ms, tr_s=tr_s,
                     **acquisition)
    flags = {"motion_correct": True} if motion_correct else {}
    maps = {m: compute_maps(scan, m, device=device, **flags, **({"checkpoint": checkpoint} if m == "stnet" else {}))
            .as_dict() for m in methods}
    return _exploration(Path(dsc_path).name, scan, {}, maps, voxel, slice_index)


def _exploration(subject_id: str, scan: Scan, reference: dict, maps: dict, voxel, slice_index) -> Exploration:
    """The slice (most hypoperfused, default) and voxel (longest Tmax, default) to show first."""
    tmax = reference.get("tmax", next(iter(maps.values()))["tmax"] if maps else np.zeros(scan.brain_mask.shape))
    z = hp_slice(tmax, scan.brain_mask) if slice_index is None else int(slice_index)
    voxel = worst_voxel(tmax, scan.brain_mask, z) if voxel is None else tuple(int(v) for v in voxel)
    return Exploration(subject_id, scan, reference, maps, z, voxel)
