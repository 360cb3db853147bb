"""``stnet convert``: a DICOM DSC series to ``NAME.nii.gz`` + ``NAME.json`` (dcm2niix), to draw masks on its grid."""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

from ..dicom import load_dicom_series
from ..io import atomic_write, load_scan
from .._validation import StnetInputError

log = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``stnet convert``."""
    parser = subparsers.add_parser("convert", help="a DICOM DSC series to NIfTI + JSON sidecar (dcm2niix)",
                                   description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("--dicom", required=True, type=Path, help="DICOM folder of the DSC series")
    parser.add_argument("--series", type=int, help="series number to convert when the folder holds several")
    parser.add_argument("--out", required=True, type=Path, help="NAME: writes NAME.nii.gz and NAME.json")
    parser.add_argument("--overwrite", action="store_true", help="replace NAME.nii.gz and NAME.json if they exist")
    return parser


def output_paths(name: Path) -> tuple[Path, Path]:
    """``NAME.nii.gz`` and ``NAME.json`` for ``--out NAME`` (a ``.nii.gz`` or ``.nii`` suffix is dropped)."""
    text = str(name)
    for suffix in (".nii.gz", ".nii", ".json"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
            break
    if not Path(text).name:
        raise StnetInputError(f"--out {name} names no file: give a path such as scans/sub-01_dsc")
    return Path(text + ".nii.gz"), Path(text + ".json")


def run(args) -> int:
    """Convert, check that the result loads as a DSC series, and write both files."""
    nifti_out, json_out = output_paths(args.out)
    existing = [str(p) for p in (nifti_out, json_out) if p.exists()]
    if existing and not args.overwrite:
        raise StnetInputError(f"{' and '.join(existing)} already exist: pass --overwrite or another --out")
    with tempfile.TemporaryDirectory(prefix="stnet-convert-") as work:
        series, nifti, sidecar = load_dicom_series(args.dicom, args.series, work)
        scan = load_scan(nifti)  # the same checks as `stnet maps`: 4-D, finite, plausible TE/TR/field
        with atomic_write(nifti_out) as tmp_nifti, atomic_write(json_out) as tmp_json:
            shutil.copyfile(nifti, tmp_nifti)
            shutil.copyfile(sidecar, tmp_json)
    log.info("series %s: TE %.4g ms, TR %.4g s, field %.4g T", series.label, scan.te_ms, scan.tr_s, scan.field_t)
    print(f"wrote {nifti_out} and {json_out} (series {series.label}, shape {scan.signal.shape})")
    return 0
