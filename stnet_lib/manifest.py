"""``data_manifest.csv``: one row per subject, its columns defined once, here.

A manifest lists each subject's DSC series, masks, optional reference maps and acquisition
parameters. Paths are relative to the manifest's folder (or absolute). ``load_manifest``
validates every row and names the line and column of the first problem: each series must be a
4-D NIfTI, and its TE, TR and field strength — from the row, else the series' BIDS sidecar or
header — must be plausible (:mod:`stnet_lib.acquisition`).
"""

from __future__ import annotations

import difflib
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .acquisition import check_acquisition_value, read_sidecar, resolve_acquisition, sidecar_path
from ._validation import StnetInputError

log = logging.getLogger(__name__)

__all__ = ["Column", "MANIFEST_COLUMNS", "SPLITS", "PATH_COLUMNS", "is_empty", "load_manifest", "write_manifest",
           "physiological_subjects"]

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
    Column("aif_mask", "path", False, "arterial input function voxels, NIfTI (found automatically when empty)"),
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
    Column("te_ms", "float", False, "echo time [ms] (the series' sidecar EchoTime when empty)"),
    Column("tr_s", "float", False, "frame interval [s] (the sidecar's RepetitionTime, else the header's 4th zoom, when empty)"),
    Column("field_t", "float", False, "field strength [T] (the sidecar's, else 1.5 with a warning, when empty)"),
    Column("has_lesion_label", "bool", False, "the lesion mask is a label to evaluate segmentation on"),
)
PATH_COLUMNS = tuple(c.name for c in MANIFEST_COLUMNS if c.kind == "path")
#: Columns ``stnet simulate`` adds (kept as they are, without a warning).
SIMULATOR_COLUMNS = ("has_lesion", "snr", "profile", "gm_cbf", "wm_cbf", "gm_cbv", "wm_cbv", "gm_mtt_s", "wm_mtt_s",
                     "snr_measured", "gm_drop", "tmax_healthy_p99_s", "n_baseline_frames", "hypoperfusion_ml",
                     "tmax10_ml", "core_ml", "brain_ml", "vessel_ml", "wmh_ml", "older", "n_non_steady_frames",
                     "dsc_sha256", "wide_mtt", "plain_aif")
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False, "": False}


def physiological_subjects(manifest: pd.DataFrame) -> pd.DataFrame:
    """The rows simulated as the cohort describes: all but the training variants of decision 0077 (``wide_mtt``,
    ``plain_aif``), which the cohort's statistics and realism tables leave out."""
    variant = pd.Series(False, index=manifest.index)
    for column in ("wide_mtt", "plain_aif"):
        if column in manifest:
            variant |= manifest[column].map(lambda value: _BOOLS.get(str(value).strip().lower(), False)).astype(bool)
    return manifest[~variant]


def is_empty(value) -> bool:
    """True for a missing manifest cell: None, NaN or blank text."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _parse(column: Column, value, folder: Path, where: str, check_files: bool):
    if is_empty(value):
        if column.required:
            raise StnetInputError(f"{where}, column '{column.name}': empty, but it is required ({column.description})")
        return {"path": None, "float": math.nan, "bool": False}.get(column.kind, "")
    text = str(value).strip()
    if column.kind == "split" and text not in SPLITS:
        raise StnetInputError(f"{where}, column 'split': {text!r} is not one of {SPLITS}")
    if column.kind == "float":
        try:
            return check_acquisition_value(text, column.name, f"column '{column.name}'")
        except StnetInputError as error:
            raise StnetInputError(f"{where}, {error}") from error
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


def _check_series(row: dict, where: str) -> None:
    """The row's series is a 4-D NIfTI of >= 2 frames whose TE, TR and field are known and plausible."""
    from .io import load_nifti

    try:
        image = load_nifti(row["dsc"], "DSC series")
        if image.ndim != 4 or image.shape[3] < 2:
            raise StnetInputError(f"the DSC series {row['dsc']} has shape {image.shape}: a 4-D (x, y, z, t) series "
                                  "of at least 2 frames is needed")
        sidecar_file = sidecar_path(row["dsc"])
        resolve_acquisition({key: row[key] for key in ("te_ms", "tr_s", "field_t")}, image.header,
                            sidecar=read_sidecar(sidecar_file), sidecar_file=sidecar_file,
                            n_slices=image.shape[2], given_as="column")
    except StnetInputError as error:
        raise StnetInputError(f"{where}: {error}") from error


def _warn_unknown(columns, path: Path) -> None:
    known = [c.name for c in MANIFEST_COLUMNS]
    unknown = [c for c in columns if c not in known and c not in SIMULATOR_COLUMNS]
    if not unknown:
        return
    hints = [f"{c} → {match[0]}?" for c in unknown
             if (match := difflib.get_close_matches(str(c).lower(), known, n=1, cutoff=0.5))]
    log.warning("manifest %s has unknown column(s) %s, which are ignored%s", path.name, unknown,
                f" (did you mean {', '.join(hints)})" if hints else "")


def load_manifest(path, *, check_files: bool = True) -> pd.DataFrame:
    """Read and validate a manifest; paths come back absolute (``pathlib.Path`` or None).

    Raises StnetInputError naming the line (as in the file, header = line 1) and column of the
    first problem: a missing required column, an empty required value, an unknown split, an
    implausible TE/TR/field (a TE in seconds, a TR in milliseconds), a duplicate subject, a
    missing file; with ``check_files``, also a series that is not 4-D or whose TE is neither in
    the row nor in its sidecar. Unknown columns (``TR`` for ``tr_s``) are logged as a warning.
    Empty ``te_ms``, ``tr_s``, ``field_t`` stay NaN: :func:`stnet_lib.io.load_scan` reads them
    from the sidecar or header and records where they came from.
    """
    path = Path(path)
    if not path.is_file():
        raise StnetInputError(f"manifest not found: {path} (run `stnet simulate` or write one; see README)")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise StnetInputError(f"cannot read manifest {path} as CSV: {error}".splitlines()[0]) from error
    missing = [c.name for c in MANIFEST_COLUMNS if c.required and c.name not in table.columns]
    if missing:
        raise StnetInputError(f"manifest {path} lacks column(s) {missing}; its columns are {list(table.columns)}")
    if table.empty:
        raise StnetInputError(f"manifest {path} has no rows")
    _warn_unknown(table.columns, path)
    rows = []
    for index, raw in table.iterrows():
        where = f"{path.name} line {index + 2} (subject {raw.get('subject_id', '?')!r})"
        row = {c.name: _parse(c, raw.get(c.name), path.parent, where, check_files) for c in MANIFEST_COLUMNS}
        if check_files:
            _check_series(row, where)
        extras = {k: v for k, v in raw.items() if k not in row}
        rows.append({**row, **extras})
    frame = pd.DataFrame(rows)
    duplicated = frame["subject_id"][frame["subject_id"].duplicated()]
    if not duplicated.empty:
        raise StnetInputError(f"manifest {path}: subject_id {duplicated.iloc[0]!r} appears more than once")
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
    if is_empty(value):
        return ""
    path = Path(value)
    try:
        return Path(path.resolve()).relative_to(base).as_posix()
    except ValueError:
        return str(path)
