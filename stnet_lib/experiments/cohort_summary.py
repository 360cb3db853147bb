"""Stage 6 — what a cohort of one's own holds: acquisition, masks and reference maps per subject.

The ``cohort`` notebook describes the synthetic cohort against the simulation recipe; for a
manifest of one's own (no simulation truth) it shows these tables and one subject's curves instead.
Only NIfTI headers are read, so the table is quick for a large cohort.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd

from ..constants import MAP_NAMES
from ..manifest import load_manifest

__all__ = ["acquisition_table", "split_table"]

_MASKS = ("brain_mask", "vof_mask", "lesion_mask")


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and str(value) != ""


def acquisition_table(manifest_path) -> pd.DataFrame:
    """One row per subject: split, matrix, voxel size [mm], frames, TR [s] (the manifest's, else the
    header's), TE [ms], field [T], and which optional masks and reference maps the manifest gives."""
    rows = []
    for row in load_manifest(manifest_path).to_dict("records"):
        header = nib.load(row["dsc"]).header
        shape, zooms = header.get_data_shape(), header.get_zooms()
        tr_s = row.get("tr_s")
        rows.append({
            "subject_id": row["subject_id"], "split": row["split"],
            "matrix": "×".join(str(n) for n in shape[:3]),
            "voxel_mm": "×".join(f"{z:.2g}" for z in zooms[:3]),
            "frames": int(shape[3]) if len(shape) > 3 else 1,
            "tr_s": float(tr_s) if _present(tr_s) else float(zooms[3]) if len(zooms) > 3 else np.nan,
            "te_ms": row.get("te_ms"), "field_t": row.get("field_t"),
            "masks": ", ".join(m.removesuffix("_mask") for m in _MASKS if _present(row.get(m))) or "—",
            "reference": ", ".join(m for m in MAP_NAMES if _present(row.get(m))) or "—",
        })
    return pd.DataFrame(rows)


def split_table(manifest_path) -> pd.DataFrame:
    """Subjects per split, with how many have a lesion label and reference maps (from the manifest alone)."""
    manifest = load_manifest(manifest_path)
    labelled = manifest["has_lesion_label"].astype(bool) if "has_lesion_label" in manifest else False
    reference = manifest[[m for m in MAP_NAMES if m in manifest]].map(_present).any(axis=1)
    table = pd.DataFrame({"split": manifest["split"], "labelled": labelled, "reference": reference})
    return table.groupby("split").agg(subjects=("split", "size"), with_lesion_label=("labelled", "sum"),
                                      with_reference_maps=("reference", "sum")).reset_index()
