"""``data_manifest.csv``: one row per subject, its columns defined once, here.

A manifest lists each subject's DSC series, masks, optional reference maps and acquisition
parameters. Paths are relative to the manifest's folder (or absolute). ``load_manifest``
validates every row and names the line and column of the first problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ._validation import StnetInputError

__all__ = ["Column", "MANIFEST_COLUMNS", "SPLITS", "PATH_COLUMNS", "load_manifest", "write_manifest"]

#: Allowed values of the ``split`` column.
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Column:
    """A manifest column: its name, kind (``id``, ``split``, ``path``, ``float``, ``bool``), whether required, what it is."""

    name: str
    kind: str
    required: bool
    description: str


MANIFEST_COLUMNS = (
    Column("subject_id", "id", True, "unique subject identifier"),
    Column("split", "split", True, "train, val or test"),
    Column("dsc", "path", True, "4-D DSC series (x, y, z, t), NIfTI"),
    Column("brain_mask", "path", False, "brain mask, NIfTI (computed from the series when empty)"),
    Column("aif_mask", "path", True, "arterial input function voxels, NIfTI"),
    Column("vof_mask", "path", False, "venous output function voxels, NIfTI (k_AV = 1 when empty)"),
    Column("lesion_mask", "path", False, "reference hypoperfusion mask (Tmax > 6 s), NIfTI"),
    Column("core_mask", "path", False, "reference ischaemic core mask, NIfTI"),
    Column("cbv", "path", False, "reference CBV map [ml/100g]"),
    Column("cbf", "path", False, "reference CBF map [ml/100g/min]"),
    Column("mtt", "path", False, "reference MTT map [s]"),
    Column("tmax", "path", False, "reference Tmax map [s]"),
    Column("rapid_cbv", "path", False, "second, RAPID-like reference CBV (a fixed deconvolution of noise-free curves)"),
    Column("rapid_cbf", "path", False, "RAPID-like reference CBF"),
    Column("rapid_mtt", "path", False, "RAPID-like reference MTT"),
    Column("rapid_tmax", "path", False, "RAPID-like reference Tmax"),
    Column("te_ms", "float", True, "echo time [ms]"),
    Column("tr_s", "float", False, "frame interval [s] (the header's 4th zoom when empty)"),
    Column("field_t", "float", False, "field strength [T] (1.5 when empty)"),
    Column("has_lesion_label", "bool", False, "the lesion mask is a label to evaluate segmentation on"),
)
PATH_COLUMNS = tuple(c.name for c in MANIFEST_COLUMNS if c.kind == "path")
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False, "": False}


def _empty(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _parse(column: Column, value, folder: Path, where: str, check_files: bool):
    if _empty(value):
        if column.required:
            raise StnetInputError(f"{where}, column '{column.name}': empty, but it is required ({column.description})")
        return {"path": None, "float": math.nan, "bool": False}.get(column.kind, "")
    text = str(value).strip()
    if column.kind == "split" and text not in SPLITS:
        raise StnetInputError(f"{where}, column 'split': {text!r} is not one of {SPLITS}")
    if column.kind == "float":
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise StnetInputError(f"{where}, column '{column.name}': {text!r} is not a positive number ({column.description})")
        return number
    if column.kind == "bool":
        if text.lower() not in _BOOLS:
            raise StnetInputError(f"{where}, column '{column.name}': {text!r} is not true or false")
        return _BOOLS[text.lower()]
    if column.kind == "path":
        path = Path(text) if Path(text).is_absolute() else folder / text
        if check_files and not path.is_file():
            raise StnetInputError(f"{where}, column '{column.name}': file not found: {path}")
        return path
    return text


def load_manifest(path, *, check_files: bool = True) -> pd.DataFrame:
    """Read and validate a manifest; paths come back absolute (``pathlib.Path`` or None).

    Raises StnetInputError naming the line (as in the file, header = line 1) and column of the
    first problem: a missing required column, an empty required value, an unknown split, a
    non-positive TE/TR, a duplicate subject, a missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise StnetInputError(f"manifest not found: {path} (run `stnet simulate` or write one; see README)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c.name for c in MANIFEST_COLUMNS if c.required and c.name not in table.columns]
    if missing:
        raise StnetInputError(f"manifest {path} lacks column(s) {missing}; its columns are {list(table.columns)}")
    if table.empty:
        raise StnetInputError(f"manifest {path} has no rows")
    rows = []
    for index, raw in table.iterrows():
        where = f"{path.name} line {index + 2} (subject {raw.get('subject_id', '?')!r})"
        row = {c.name: _parse(c, raw.get(c.name), path.parent, where, check_files) for c in MANIFEST_COLUMNS}
        extras = {k: v for k, v in raw.items() if k not in row}
        rows.append({**row, **extras})
    frame = pd.DataFrame(rows)
    duplicated = frame["subject_id"][frame["subject_id"].duplicated()]
    if not duplicated.empty:
        raise StnetInputError(f"manifest {path}: subject_id {duplicated.iloc[0]!r} appears more than once")
    frame["field_t"] = frame["field_t"].fillna(1.5)
    return frame


def write_manifest(frame: pd.DataFrame, path, *, relative_to=None) -> Path:
    """Write a manifest atomically, paths relative to ``relative_to`` (default: the manifest's folder)."""
    from .io import atomic_write

    path = Path(path)
    base = Path(relative_to or path.parent).resolve()
    out = frame.copy()
    for name in PATH_COLUMNS:
        if name in out:
            out[name] = [_relative(value, base) for value in out[name]]
    columns = [c.name for c in MANIFEST_COLUMNS if c.name in out] + [c for c in out if c not in PATH_COLUMNS and c not in {m.name for m in MANIFEST_COLUMNS}]
    with atomic_write(path) as tmp:
        out[columns].to_csv(tmp, index=False)
    return path


def _relative(value, base: Path) -> str:
    if _empty(value):
        return ""
    path = Path(value)
    try:
        return Path(path.resolve()).relative_to(base).as_posix()
    except ValueError:
        return str(path)
