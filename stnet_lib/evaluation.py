"""Stage 5 — scoring of estimated maps against reference maps, per subject: a tidy table.

One row per subject × method × map × region × metric (:data:`RESULT_COLUMNS`), computed with
:mod:`stnet_lib.metrics` only:

* map agreement (the paper's Table 2): PSNR, SSIM, PCC, SCC, NRMSE of each map inside the whole
  brain (``WB`` = the brain mask) and the hypoperfused area (``HP`` = reference Tmax > 6 s in the
  brain), in the ``standard`` or the authors' ``paper`` convention (named in every row and table);
* segmentation (Table 1): AUC of the estimated Tmax for the reference hypoperfusion mask inside
  the brain, Dice, IoU and HD95 [mm] of estimated Tmax > 6 s, and the ROC operating point
  minimising |TPR − (1 − FPR)| (the paper's mean over subjects: 6.484 s).

Every row carries a ``status``; nothing is dropped silently. ``empty_region`` (HP empty: no
agreement value), ``undefined`` (NaN for another reason, e.g. a constant map), ``single_class``
(no ROC curve), and the empty-mask cases of :mod:`stnet_lib.metrics.overlap` (Dice/IoU 0 when one
mask is empty, NaN when both are; an infinite HD95 replaced by the field-of-view diagonal in mm).
Summaries over subjects and paired tests are :mod:`stnet_lib.statistics`; the Markdown tables
:mod:`stnet_lib.experiments.evaluation_tables`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics
from ._validation import StnetInputError, check_in_allowed
from .constants import MAP_NAMES, TMAX_THRESHOLD_S
from .io import AFFINE_TOLERANCE_MM, load_nifti
from .metrics._common import as_bool

log = logging.getLogger(__name__)

__all__ = [
    "AGREEMENT_METRICS", "SEGMENTATION_METRICS", "RESULT_COLUMNS", "EvaluationConfig", "SubjectMaps",
    "SEGMENTATION_SOURCES", "evaluate_subject", "evaluate_set", "evaluate_manifest",
]

#: Map-agreement metrics, in table order (higher is better except NRMSE).
AGREEMENT_METRICS = ("psnr", "ssim", "pcc", "scc", "nrmse")
#: Segmentation metrics of the Tmax map (region ``WB``).
SEGMENTATION_METRICS = ("auc", "dice", "iou", "hd95_mm", "roc_threshold_s", "roc_tpr", "roc_fpr")
#: Columns of the per-subject table.
RESULT_COLUMNS = ("subject_id", "method", "map", "region", "metric", "value", "status", "n_voxels",
                  "convention")
SEGMENTATION_SOURCES = ("tmax", "lesion_mask")
@dataclass(frozen=True)
class EvaluationConfig:
    """Settings of an evaluation; ``dataclasses.asdict`` of it goes beside every table.

    Attributes
    ----------
    convention : {"standard", "paper"}
        Convention of PSNR/SSIM (and the paper's clipping of negatives for PCC/SCC/NRMSE).
    threshold_s : float
        Tmax threshold [s] of the hypoperfusion masks (HP region and segmentation).
    data_range : dict, optional
        ``"standard"`` PSNR/SSIM range per map (map units), e.g. ``{"cbf": 100.0}``; a map not
        listed uses the subject's reference range (max − min) inside the brain, for WB and HP alike.
    maps : tuple of str
        Maps to score (those of :data:`stnet_lib.constants.MAP_NAMES` present in the reference).
    """

    convention: str = "standard"
    threshold_s: float = TMAX_THRESHOLD_S
    data_range: dict[str, float] = field(default_factory=dict)
    maps: tuple[str, ...] = MAP_NAMES


@dataclass
class SubjectMaps:
    """One subject: its reference maps, each method's estimated maps, masks and voxel size.

    ``segmentation_mask`` is the reference mask of Table 1 (None = reference Tmax > threshold in
    the brain); ``evaluate_segmentation=False`` leaves Table 1 out for this subject (no label).
    """

    subject_id: str
    reference: Mapping[str, np.ndarray]
    estimates: Mapping[str, Mapping[str, np.ndarray]]
    brain_mask: np.ndarray
    spacing_mm: tuple[float, ...]
    segmentation_mask: np.ndarray | None = None
    evaluate_segmentation: bool = True


def evaluate_subject(
    reference: Mapping[str, np.ndarray],
    estimate: Mapping[str, np.ndarray],
    *,
    brain_mask: np.ndarray,
    spacing_mm: tuple[float, ...],
    hp_mask: np.ndarray | None = None,
    segmentation_mask: np.ndarray | None = None,
    evaluate_segmentation: bool = True,
    subject_id: str = "",
    method: str = "",
    config: EvaluationConfig = EvaluationConfig(),
) -> pd.DataFrame:
    """Every metric of one subject's estimated maps against its reference maps.

    Parameters
    ----------
    reference, estimate : mapping of str to ndarray, shape (x, y, z)
        Maps by name (``cbv`` ml/100g, ``cbf`` ml/100g/min, ``mtt`` s, ``tmax`` s), NaN allowed
        outside the brain; a :class:`~stnet_lib.maps.PerfusionMaps` works too (``as_dict``).
        Inside the brain only MTT may be NaN (eq. 6: undefined where the estimated CBF ≤ 0, e.g.
        a noise-only voxel); MTT is scored over the voxels where it is defined, and ``n_voxels``
        says how many. Any other NaN inside a region is an error.
    brain_mask : ndarray of bool, shape (x, y, z)
        Whole-brain region (WB).
    spacing_mm : tuple of float
        Voxel size [mm] in array-axis order (for HD95 and the worst-case HD95).
    hp_mask : ndarray of bool, optional
        Hypoperfused region (HP); None = reference Tmax > ``config.threshold_s`` in the brain
        (no HP rows when the reference has no Tmax either).
    segmentation_mask : ndarray of bool, optional
        Reference mask of the segmentation metrics; None = the HP mask (no segmentation rows
        when there is neither).
    evaluate_segmentation : bool
        False leaves out the segmentation rows (e.g. a subject without a lesion label).
    subject_id, method : str
        Written in every row.
    config : EvaluationConfig
        Convention, threshold, data ranges and maps to score.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RESULT_COLUMNS`.
    """
    reference, estimate = _as_dict(reference), _as_dict(estimate)
    brain = as_bool(brain_mask, "brain mask")
    if hp_mask is None and "tmax" in reference:
        hp_mask = metrics.hypoperfusion_mask(reference["tmax"], threshold_s=config.threshold_s, mask=brain)
    regions = {"WB": brain} if hp_mask is None else {"WB": brain, "HP": as_bool(hp_mask, "HP mask") & brain}
    rows = []
    for name in [m for m in config.maps if m in reference]:
        ref_map, est_map = reference[name], _need(estimate, name, "estimate")
        data_range = _subject_range(ref_map, brain, name, config)
        scored = regions
        if name == "mtt":  # eq. 6 leaves MTT undefined (NaN) where the estimated CBF ≤ 0: scored where defined
            scored = {key: mask & np.isfinite(np.asarray(est_map, dtype=np.float64)) for key, mask in regions.items()}
        rows += _agreement_rows(ref_map, est_map, scored, data_range, name, config.convention)
    seg_ref = regions.get("HP") if segmentation_mask is None else segmentation_mask
    if evaluate_segmentation and seg_ref is not None:
        rows += _segmentation_rows(seg_ref, _need(estimate, "tmax", "estimate"), brain,
                                   spacing_mm, config.threshold_s)
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS[2:-1]))
    table.insert(0, "method", method)
    table.insert(0, "subject_id", subject_id)
    table["convention"] = config.convention
    return table[list(RESULT_COLUMNS)]


def evaluate_set(subjects: Iterable[SubjectMaps], config: EvaluationConfig = EvaluationConfig()) -> pd.DataFrame:
    """:func:`evaluate_subject` for every subject and method, concatenated (columns :data:`RESULT_COLUMNS`).

    Bad input of one subject raises StnetInputError naming the subject and the method.
    """
    tables = []
    for subject in subjects:
        for method, estimate in subject.estimates.items():
            try:
                tables.append(evaluate_subject(
                    subject.reference, estimate, brain_mask=subject.brain_mask,
                    spacing_mm=subject.spacing_mm, segmentation_mask=subject.segmentation_mask,
                    evaluate_segmentation=subject.evaluate_segmentation,
                    subject_id=subject.subject_id, method=method, config=config))
            except StnetInputError as error:
                raise StnetInputError(f"subject {subject.subject_id!r}, method {method!r}: {error}") from error
    if not tables:
        raise StnetInputError("no subject to evaluate: check the manifest's split and reference maps")
    return pd.concat(tables, ignore_index=True)


def evaluate_manifest(
    manifest_df: pd.DataFrame,
    pred_dirs: Mapping[str, Path],
    *,
    config: EvaluationConfig = EvaluationConfig(),
    split: str | None = "test",
    segmentation_reference: str = "tmax",
) -> pd.DataFrame:
    """Evaluate every method's maps of a cohort against the manifest's reference maps.

    Parameters
    ----------
    manifest_df : pandas.DataFrame
        From :func:`stnet_lib.manifest.load_manifest` (absolute paths; columns ``cbv``, ``cbf``,
        ``mtt``, ``tmax``, ``brain_mask``, ``lesion_mask``, ``has_lesion_label``).
    pred_dirs : mapping of str to Path
        Method name → folder holding ``<subject_id>/{cbv,cbf,mtt,tmax}.nii.gz``.
    config : EvaluationConfig
        Convention, threshold, data ranges and maps to score.
    split : str, optional
        Only the subjects of this split (None = all).
    segmentation_reference : {"tmax", "lesion_mask"}
        Reference of Table 1: the reference Tmax > threshold (every subject), or the manifest's
        ``lesion_mask`` (only subjects with ``has_lesion_label``, as the paper's 18 labelled
        patients; the others get no segmentation rows).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`RESULT_COLUMNS`. Subjects without reference maps are left out with a log
        message.
    """
    check_in_allowed(segmentation_reference, SEGMENTATION_SOURCES, "segmentation_reference")
    rows = manifest_df if split is None else manifest_df[manifest_df["split"] == split]
    subjects = _manifest_subjects(rows, pred_dirs, config, segmentation_reference)
    return evaluate_set(subjects, config)


# --- per-subject rows -------------------------------------------------------------------------

def _agreement_rows(ref_map, est_map, regions, data_range, name, convention) -> list[dict]:
    functions = {"psnr": metrics.psnr, "ssim": metrics.ssim, "pcc": metrics.pcc,
                 "scc": metrics.scc, "nrmse": metrics.nrmse}
    ranged = {"psnr", "ssim"} if convention == "standard" else set()
    rows = []
    for region_name, region_mask in regions.items():
        n = int(region_mask.sum())
        for metric in AGREEMENT_METRICS:
            options = {"data_range": data_range} if metric in ranged else {}
            value = (functions[metric](ref_map, est_map, mask=region_mask, convention=convention, **options)
                     if n else float("nan"))
            status = "empty_region" if n == 0 else ("undefined" if np.isnan(value) else "ok")
            rows.append(_row(name, region_name, metric, value, status, n))
    return rows


def _segmentation_rows(reference_mask, est_tmax, brain, spacing_mm, threshold_s) -> list[dict]:
    ref = as_bool(reference_mask, "segmentation reference mask") & brain
    est = metrics.hypoperfusion_mask(est_tmax, threshold_s=threshold_s, mask=brain)
    status = metrics.empty_status(ref, est)
    hd = metrics.hd95(ref, est, spacing=spacing_mm)
    if np.isinf(hd):  # one mask empty: the worst case, the field-of-view diagonal
        hd = float(np.linalg.norm(np.asarray(brain.shape) * np.asarray(spacing_mm)))
    point = metrics.optimal_threshold(ref, est_tmax, mask=brain)
    roc_status = "single_class" if np.isnan(point.threshold) else "ok"
    n = int(brain.sum())
    values = {"auc": (metrics.auc(ref, est_tmax, mask=brain), roc_status),
              "dice": (metrics.dice(ref, est), status), "iou": (metrics.iou(ref, est), status),
              "hd95_mm": (hd, status), "roc_threshold_s": (point.threshold, roc_status),
              "roc_tpr": (point.tpr, roc_status), "roc_fpr": (point.fpr, roc_status)}
    return [_row("tmax", "WB", metric, *values[metric], n) for metric in SEGMENTATION_METRICS]


def _row(name, region, metric, value, status, n) -> dict:
    return {"map": name, "region": region, "metric": metric, "value": float(value),
            "status": status, "n_voxels": n}


def _subject_range(ref_map, brain, name, config: EvaluationConfig) -> float | None:
    """The standard data range of one map: configured, or the reference's range in the brain."""
    if config.convention != "standard":
        return None
    if name in config.data_range:
        return float(config.data_range[name])
    values = np.asarray(ref_map, dtype=np.float64)[brain]
    finite = values[np.isfinite(values)]
    spread = float(np.ptp(finite)) if finite.size else 0.0
    return spread if spread > 0 else None


def _as_dict(maps) -> dict[str, np.ndarray]:
    return dict(maps.as_dict()) if hasattr(maps, "as_dict") else dict(maps)


def _need(maps: dict, name: str, what: str) -> np.ndarray:
    if name not in maps:
        raise StnetInputError(f"the {what} maps lack {name!r}; they hold {sorted(maps)}")
    return maps[name]


# --- manifest ---------------------------------------------------------------------------------

def _manifest_subjects(rows: pd.DataFrame, pred_dirs, config, segmentation_reference) -> Iterator[SubjectMaps]:
    """Load each subject of the manifest rows lazily (one subject in memory at a time)."""
    for row in rows.to_dict("records"):
        subject_id = str(row["subject_id"])
        ref_paths = {m: row.get(m) for m in config.maps if _is_path(row.get(m))}
        if not ref_paths:
            log.warning("subject %s has no reference maps in the manifest: left out", subject_id)
            continue
        if not _is_path(row.get("brain_mask")):
            raise StnetInputError(f"subject {subject_id!r} has no brain_mask in the manifest: evaluation needs one")
        grid = load_nifti(next(iter(ref_paths.values())), f"reference maps of {subject_id}")
        reference = {m: _load_on_grid(p, f"reference {m} map of {subject_id}", grid) for m, p in ref_paths.items()}
        brain = _load_on_grid(row["brain_mask"], f"brain mask of {subject_id}", grid) > 0.5
        label = segmentation_reference == "lesion_mask"
        has_label = bool(row.get("has_lesion_label")) and _is_path(row.get("lesion_mask"))
        seg_mask = None
        if label and has_label:
            seg_mask = _load_on_grid(row["lesion_mask"], f"lesion mask of {subject_id}", grid) > 0.5
        estimates = {method: _load_estimates(Path(folder) / subject_id, ref_paths, grid, method)
                     for method, folder in pred_dirs.items()}
        yield SubjectMaps(subject_id, reference, estimates, brain,
                          tuple(float(z) for z in grid.header.get_zooms()[:3]),
                          segmentation_mask=seg_mask, evaluate_segmentation=has_label or not label)


def _load_estimates(folder: Path, names, grid, method: str) -> dict[str, np.ndarray]:
    return {m: _load_on_grid(folder / f"{m}.nii.gz", f"{method} {m} map", grid) for m in names}


def _load_on_grid(path, what: str, grid) -> np.ndarray:
    """A 3-D image as float64, checked to lie on the reference grid (shape and affine)."""
    image = load_nifti(path, what)
    data = np.asarray(image.dataobj, dtype=np.float64)
    if data.shape != grid.shape[:3]:
        raise StnetInputError(f"{what} {path} has shape {data.shape}; the reference maps have {grid.shape[:3]}")
    if not np.allclose(image.affine, grid.affine, atol=AFFINE_TOLERANCE_MM):
        raise StnetInputError(f"{what} {path} has a different affine from the reference maps: resample it")
    return data


def _is_path(value) -> bool:
    return isinstance(value, (str, Path)) and str(value).strip() != ""
