"""Stage 6 — ST-Net's uncertainty in the report: calibrated on the validation subjects, checked on the test subjects.

Monte-Carlo dropout SDs (:mod:`stnet_lib.network.uncertainty`, docs/decisions/0058-uncertainty-mc-dropout.md)
are scaled per map so that the nominal 90 % interval covers the truth on the validation subjects;
the report then shows how often the intervals of every nominal level cover the truth on test
subjects the scale was not fitted on (issue #17 asks 85–95 % at 90 %).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import load_nifti, load_scan
from ..manifest import load_manifest
from ..network.checkpoint import load_checkpoint
from ..network.inference import predict_maps
from ..network.uncertainty import Calibration, coverage_table, fit_calibration
from .._validation import StnetInputError

__all__ = ["manifest_cases", "uncertainty_coverage"]


def manifest_cases(manifest_path, split: str, *, labelled: bool = False, limit: int | None = None):
    """(scan, truth maps ``cbv``, ``cbf``, ``tmax``) of a manifest's ``split`` subjects, and their ids.

    ``labelled`` keeps only subjects with ``has_lesion_label``; ``limit`` the first ``limit`` of them.
    """
    table = load_manifest(manifest_path)
    rows = table[table["split"] == split]
    if labelled:
        rows = rows[rows["has_lesion_label"].astype(bool)]
    rows = list(rows.head(limit).itertuples() if limit else rows.itertuples())
    if not rows:
        raise StnetInputError(f"{manifest_path} has no subject with split '{split}'" + (" and a lesion label" if labelled else ""))
    cases = []
    for row in rows:
        tr_s = row.tr_s if np.isfinite(row.tr_s) else None
        scan = load_scan(row.dsc, row.aif_mask, row.vof_mask, row.brain_mask, row.te_ms, tr_s, field_t=row.field_t)
        truth = {name: np.asarray(load_nifti(getattr(row, name), f"reference {name} map").dataobj, dtype=np.float64)
                 for name in ("cbv", "cbf", "tmax")}
        cases.append((scan, truth))
    return cases, [str(row.subject_id) for row in rows]


def uncertainty_coverage(manifest_path, checkpoint, *, device: str = "cpu",
                         n_test: int | None = 18) -> tuple[pd.DataFrame, Calibration]:
    """Calibrate ``checkpoint``'s Monte-Carlo dropout SDs on the validation subjects and measure the
    coverage of the calibrated intervals on the first ``n_test`` test subjects (None: all; 18 keeps
    the quick report's cost near a minute).

    Returns
    -------
    table : DataFrame
        :func:`~stnet_lib.network.uncertainty.coverage_table` on the test voxels (``map``,
        ``nominal``, ``observed``, ``n_voxels``).
    calibration : Calibration
        The scales (fitted on the validation subjects).
    """
    val_cases, val_ids = manifest_cases(manifest_path, "val")
    payload = load_checkpoint(checkpoint)
    calibration = fit_calibration(payload, val_cases, subject_ids=val_ids, device=device)
    calibrated = {**{k: v for k, v in payload.items() if k != "uncertainty"}, "uncertainty": calibration.to_dict()}
    test_cases, _ = manifest_cases(manifest_path, "test", limit=n_test)
    errors, sds = {}, {}
    for scan, truth in test_cases:
        maps = predict_maps(scan, calibrated, uncertainty=True, device=device)
        brain = scan.brain_mask & np.isfinite(truth["tmax"])
        for name in ("cbv", "cbf", "tmax"):
            errors.setdefault(name, []).append(getattr(maps, name)[brain] - truth[name][brain])
            sds.setdefault(name, []).append(maps.extra_volumes[f"{name}_sd"][brain])
    table = coverage_table({k: np.concatenate(v) for k, v in errors.items()},
                           {k: np.concatenate(v) for k, v in sds.items()})
    return table, calibration
