"""Hypoperfusion volumes of every test subject against the truth's, with Bland–Altman agreement (issue #15).

A trial's inclusion rule reads a volume (Tmax > 6 s, Tmax > 10 s, their ratio), so the report sets
each method's volumes beside the truth's: per subject, and per method as the bias and the 95 %
limits of agreement of Bland and Altman (Lancet 1986;1(8476):307–10), bias ± 1.96 SD of the
differences (estimate − truth).

The volumes use the rule of ``stnet maps``' ``summary.json`` (:func:`stnet_lib.summary.tmax_volumes`:
Tmax strictly above the threshold, inside the manifest's brain mask, voxel volume from the
reference map's affine). The truth is the manifest's reference Tmax map, each method's estimate the
``tmax.nii.gz`` that :func:`stnet_lib.experiments.predictions.predict_subjects` wrote into
``<runs_dir>/pred/<method>/<subject_id>/``. The HIR is vol(Tmax > 10 s)/vol(Tmax > 6 s), NaN
where nothing exceeds 6 s; such a subject is left out of the HIR's agreement (``n`` says how many
pairs remain).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .._validation import StnetInputError
from ..io import load_nifti
from ..manifest import load_manifest
from ..summary import tmax_volumes
from .predictions import pred_dir
from .tables import METHOD_LABELS

__all__ = ["QUANTITIES", "bland_altman", "subject_volumes", "volume_agreement", "volume_table"]

log = logging.getLogger(__name__)

#: The quantities compared, with their display names (units in brackets).
QUANTITIES = {"tmax_gt_6s_ml": "Tmax > 6 s [ml]", "tmax_gt_10s_ml": "Tmax > 10 s [ml]", "hir": "HIR"}
#: Limits of agreement: bias ± this many standard deviations of the differences.
LOA_SD = 1.96


def _volumes(tmax: np.ndarray, brain: np.ndarray, voxel_ml: float) -> dict:
    """Tmax > 6 s and > 10 s volumes [ml] and their ratio (NaN without Tmax > 6 s)."""
    values = tmax_volumes(tmax, brain, (6.0, 10.0), voxel_ml)
    low, high = values["tmax_gt_6s_ml"], values["tmax_gt_10s_ml"]
    return {**values, "hir": high / low if low > 0 else float("nan")}


def _on_grid(path, what: str, grid) -> np.ndarray:
    image = load_nifti(path, what)
    if image.shape[:3] != grid.shape[:3] or not np.allclose(image.affine, grid.affine, atol=1e-3):
        raise StnetInputError(f"{what} {path} is not on the grid of the reference Tmax map (shape "
                              f"{grid.shape[:3]}): compute the maps from this manifest's series")
    return np.asarray(image.dataobj, dtype=np.float64)


def subject_volumes(manifest_path, runs_dir, methods, *, split: str | None = "test") -> pd.DataFrame:
    """Every method's volumes of every subject beside the truth's.

    Parameters
    ----------
    manifest_path : path
        The cohort's manifest (reference ``tmax`` and ``brain_mask`` per subject).
    runs_dir : path
        The profile's run folder (``pred/<method>/<subject_id>/tmax.nii.gz``).
    methods : sequence of str
        Methods to read; a subject a method has no maps for is left out of that method's rows.
    split : str, optional
        Only the subjects of this split (None: all).

    Returns
    -------
    DataFrame
        One row per subject × method × quantity (:data:`QUANTITIES`): ``subject_id``, ``method``,
        ``quantity``, ``estimate``, ``truth``, ``mean`` (of the two) and ``difference``
        (estimate − truth); volumes in ml, the HIR dimensionless.
    """
    table = load_manifest(manifest_path)
    rows = table if split is None else table[table["split"] == split]
    records = []
    for row in rows.to_dict("records"):
        subject_id = str(row["subject_id"])
        if row.get("tmax") is None or row.get("brain_mask") is None:
            log.warning("subject %s has no reference Tmax or brain mask in the manifest: left out", subject_id)
            continue
        grid = load_nifti(row["tmax"], f"reference Tmax map of {subject_id}")
        brain = _on_grid(row["brain_mask"], f"brain mask of {subject_id}", grid) > 0.5
        voxel_ml = abs(float(np.linalg.det(grid.affine[:3, :3]))) / 1000.0
        truth = _volumes(np.asarray(grid.dataobj, dtype=np.float64), brain, voxel_ml)
        for method in methods:
            path = pred_dir(runs_dir, method) / subject_id / "tmax.nii.gz"
            if not Path(path).is_file():
                log.warning("no %s maps of subject %s (%s): left out", method, subject_id, path)
                continue
            estimate = _volumes(_on_grid(path, f"{method} Tmax map of {subject_id}", grid), brain, voxel_ml)
            records += [{"subject_id": subject_id, "method": method, "quantity": quantity,
                         "estimate": estimate[quantity], "truth": truth[quantity]} for quantity in QUANTITIES]
    frame = pd.DataFrame(records, columns=["subject_id", "method", "quantity", "estimate", "truth"])
    frame["mean"] = (frame["estimate"] + frame["truth"]) / 2
    frame["difference"] = frame["estimate"] - frame["truth"]
    return frame


def bland_altman(estimate, truth) -> dict:
    """Bland–Altman statistics of paired values (pairs with a NaN left out).

    Returns
    -------
    dict
        ``n`` (pairs), ``bias`` (mean of estimate − truth), ``sd`` (standard deviation of the
        differences, n − 1 in the denominator; NaN below 2 pairs), ``loa_low`` and ``loa_high``
        (bias ∓ 1.96 SD), in the values' unit.
    """
    estimate, truth = np.asarray(estimate, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if estimate.shape != truth.shape:
        raise StnetInputError(f"estimate and truth must be paired; got {estimate.size} and {truth.size} values")
    difference = (estimate - truth)[np.isfinite(estimate) & np.isfinite(truth)]
    n = int(difference.size)
    bias = float(difference.mean()) if n else float("nan")
    sd = float(difference.std(ddof=1)) if n > 1 else float("nan")
    return {"n": n, "bias": bias, "sd": sd, "loa_low": bias - LOA_SD * sd, "loa_high": bias + LOA_SD * sd}


def volume_agreement(volumes: pd.DataFrame, methods=None) -> pd.DataFrame:
    """Per method × quantity: ``n``, the truth's mean over those pairs, ``bias``, ``sd``, ``loa_low``, ``loa_high``
    (:func:`bland_altman`)."""
    methods = list(dict.fromkeys(volumes["method"])) if methods is None else list(methods)
    rows = []
    for method in methods:
        for quantity in QUANTITIES:
            pairs = volumes[(volumes["method"] == method) & (volumes["quantity"] == quantity)]
            if pairs.empty:
                continue
            paired = pairs[["estimate", "truth"]].dropna()  # the pairs the statistics use
            rows.append({"method": method, "quantity": quantity,
                         "truth_mean": float(paired["truth"].mean()) if len(paired) else float("nan"),
                         **bland_altman(pairs["estimate"], pairs["truth"])})
    return pd.DataFrame(rows, columns=["method", "quantity", "truth_mean", "n", "bias", "sd", "loa_low", "loa_high"])


def volume_table(volumes: pd.DataFrame, methods) -> pd.DataFrame:
    """Per subject and quantity: the truth and each method's value, one column each (display names)."""
    wide = volumes.pivot_table(index=["subject_id", "quantity"], columns="method", values="estimate", dropna=False)
    truth = volumes.groupby(["subject_id", "quantity"])["truth"].first()
    table = pd.concat([truth.rename("truth"), wide[[m for m in methods if m in wide.columns]]], axis=1).reset_index()
    table["quantity"] = pd.Categorical(table["quantity"], categories=list(QUANTITIES), ordered=True)
    table = table.sort_values(["quantity", "subject_id"], kind="stable")
    table["quantity"] = table["quantity"].astype(str).map(QUANTITIES)
    return table.rename(columns={m: METHOD_LABELS.get(m, m) for m in methods}).reset_index(drop=True)
