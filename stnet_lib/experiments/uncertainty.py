"""Stage 6 — ST-Net's uncertainty in the report: calibrated on the validation subjects, checked on the test subjects.

Monte-Carlo dropout SDs (:mod:`stnet_lib.network.uncertainty`, docs/decisions/0058-uncertainty-mc-dropout.md)
are scaled per map so that the nominal 90 % interval covers the truth on the validation subjects;
the report then shows how often the intervals of every nominal level cover the truth on test
subjects the scale was not fitted on (issue #17 asks 85–95 % at 90 %).
"""

from __future__ import annotations

import pandas as pd

from .._validation import StnetInputError
from ..manifest import load_manifest
from ..network.checkpoint import load_checkpoint
from ..network.inference import predict_maps
from ..network.uncertainty import Calibration, coverage_table, fit_calibration, pooled_estimate_errors
from .data import subject_scan
from .subjects import reference_maps

__all__ = ["manifest_cases", "uncertainty_coverage"]


def manifest_cases(manifest_path, split: str, *, limit: int | None = None):
    """(scan, truth maps ``cbv``, ``cbf``, ``tmax``) of a manifest's ``split`` subjects (the first
    ``limit``), and their ids."""
    table = load_manifest(manifest_path)
    rows = table[table["split"] == split]
    rows = (rows if limit is None else rows.head(limit)).to_dict("records")
    if not rows:
        raise StnetInputError(f"{manifest_path} has no subject with split '{split}'")
    cases = []
    for row in rows:
        truth = reference_maps(row)
        missing = [name for name in ("cbv", "cbf", "tmax") if name not in truth]
        if missing:
            raise StnetInputError(f"{manifest_path}: subject {row['subject_id']} has no reference {', '.join(missing)} "
                                  "map: uncertainty is calibrated against reference maps (fill those columns)")
        cases.append((subject_scan(row), truth))
    return cases, [str(row["subject_id"]) for row in rows]


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
    errors, sds = pooled_estimate_errors(test_cases, lambda scan: predict_maps(scan, calibrated, uncertainty=True,
                                                                              device=device))
    return coverage_table(errors, sds), calibration
