"""A DSC series from a DICOM folder: list the series, pick one, check it, convert it with dcm2niix.

The headers are read with pydicom (no pixel data); the chosen series' files are linked into a
private folder and converted there by dcm2niix (the binary shipped by the ``dcm2niix`` package on
PyPI; no network), which writes the 4-D NIfTI and its BIDS JSON sidecar (``EchoTime``,
``RepetitionTime``, ``MagneticFieldStrength``, ``SliceTiming``) that :func:`stnet_lib.io.load_scan`
reads. A folder with several series is refused unless one is picked by its series number; a
multi-echo, non-MR or non-EPI series is refused (docs/decisions/0035-acquisition-values-and-dicom-route.md).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ._validation import StnetInputError

__all__ = ["DicomSeries", "list_series", "select_series", "check_dsc_series", "convert_series", "dcm2niix_binary",
           "load_dicom_series"]

log = logging.getLogger(__name__)

#: Header tags read from every file (pixel data is never read).
_TAGS = ("SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Modality", "EchoTime", "EchoNumbers",
         "ScanningSequence", "SequenceName", "SOPClassUID", "ImageType")
#: Longest a conversion may take [s].
DCM2NIIX_TIMEOUT_S = 900


@dataclass(frozen=True)
class DicomSeries:
    """One series of a DICOM folder: its identity and what its files' headers say."""

    uid: str
    number: int | None
    description: str
    modality: str
    files: tuple
    echo_times_ms: tuple
    echo_numbers: tuple
    scanning_sequences: tuple
    sequence_names: tuple
    folder: Path

    @property
    def label(self) -> str:
        """``"5: ep2d_perf"`` — series number and description."""
        return f"{self.number if self.number is not None else '?'}: {self.description or '(no description)'}"

    def record(self) -> dict:
        """Where the maps came from, for ``maps.json``."""
        return {"dicom_folder": str(self.folder.resolve()), "series_instance_uid": self.uid,
                "series_number": self.number, "series_description": self.description, "n_files": len(self.files)}


def _read_header(path: Path):
    import pydicom

    quiet = logging.getLogger("pydicom")  # it also logs its guesses ("Expected implicit VR, but found explicit
    level, quiet.level = quiet.level, logging.ERROR  # VR"): a refused folder must still be one line
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about odd values in non-conformant files
            dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=list(_TAGS))
        uid = dataset.get("SeriesInstanceUID")
    except Exception:  # noqa: BLE001  (pydicom raises many types on non-DICOM or corrupt files)
        return None
    finally:
        quiet.setLevel(level)
    return dataset if isinstance(uid, str) and uid.strip() else None


def _value(dataset, name, default=None):
    try:
        value = dataset.get(name, default)
    except Exception:  # noqa: BLE001  (a malformed element fails only when converted)
        return default
    return default if value is None or value == "" else value


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float_or_none(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _as_tuple(values) -> tuple:
    return tuple(sorted({str(v) for v in values if v not in (None, "")}))


def _series_from(uid: str, entries: list, folder: Path) -> DicomSeries:
    datasets = [d for _, d in entries]
    echo_times = {round(t, 3) for d in datasets if (t := _float_or_none(_value(d, "EchoTime"))) is not None}
    echo_numbers = {_int_or_none(n) for d in datasets if (n := _value(d, "EchoNumbers")) is not None}
    first = datasets[0]
    return DicomSeries(
        uid=uid, number=_int_or_none(_value(first, "SeriesNumber")),
        description=str(_value(first, "SeriesDescription", "")).strip(), modality=str(_value(first, "Modality", "")),
        files=tuple(sorted(p for p, _ in entries)), echo_times_ms=tuple(sorted(echo_times)),
        echo_numbers=tuple(sorted(n for n in echo_numbers if n is not None)),
        scanning_sequences=_as_tuple("\\".join(map(str, s)) if not isinstance(s, str) else s
                                     for d in datasets if (s := _value(d, "ScanningSequence")) is not None),
        sequence_names=_as_tuple(_value(d, "SequenceName") for d in datasets), folder=folder)


def list_series(folder) -> list[DicomSeries]:
    """The DICOM series in ``folder`` and its sub-folders, by series number; StnetInputError if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StnetInputError(f"DICOM folder not found: {folder} (check the path)")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    groups: dict[str, list] = defaultdict(list)
    for path in files:
        dataset = _read_header(path)
        if dataset is not None:
            groups[dataset.SeriesInstanceUID.strip()].append((path, dataset))
    if not groups:
        raise StnetInputError(f"no DICOM series in {folder} ({len(files)} file(s), none readable as DICOM with a "
                              "SeriesInstanceUID): pass the folder that holds the scan's .dcm files")
    log.info("%d DICOM file(s) in %d series in %s (%d other file(s) skipped)", sum(map(len, groups.values())),
             len(groups), folder, len(files) - sum(map(len, groups.values())))
    series = [_series_from(uid, entries, folder) for uid, entries in groups.items()]
    return sorted(series, key=lambda s: (s.number is None, s.number or 0, s.uid))


def select_series(series: list[DicomSeries], number: int | None) -> DicomSeries:
    """The series numbered ``number``, or the only one; StnetInputError listing them otherwise."""
    listing = ", ".join(s.label for s in series)
    folder = series[0].folder
    if number is None:
        if len(series) == 1:
            return series[0]
        raise StnetInputError(f"{folder} holds {len(series)} series ({listing}): pick one with --series N")
    chosen = [s for s in series if s.number == number]
    if not chosen:
        raise StnetInputError(f"{folder} has no series {number}; its series are {listing}")
    if len(chosen) > 1:
        raise StnetInputError(f"{folder} holds {len(chosen)} series numbered {number} (several studies?): "
                              "move the other study's files out of the folder")
    return chosen[0]


def _is_epi(series: DicomSeries) -> bool | None:
    """True/False where the headers say; None where they do not (no ScanningSequence)."""
    if any("EP" in s.upper().split("\\") for s in series.scanning_sequences):
        return True
    if any("ep" in name.lower() for name in series.sequence_names):  # Siemens *epfid2d1_128, GE epi
        return True
    return False if series.scanning_sequences else None


def check_dsc_series(series: DicomSeries) -> DicomSeries:
    """Refuse a series that cannot be a single-echo DSC EPI series (non-MR, several echoes, not EPI)."""
    if series.modality and series.modality.upper() != "MR":
        raise StnetInputError(f"series {series.label} is {series.modality}, not MR: pick the DSC-MRI series with --series N")
    if len(series.echo_times_ms) > 1 or len(series.echo_numbers) > 1:
        raise StnetInputError(f"series {series.label} has several echoes (TE {list(series.echo_times_ms)} ms, echo "
                              f"numbers {list(series.echo_numbers)}): multi-echo DSC is not supported; export one echo "
                              "as its own series")
    if _is_epi(series) is False:
        raise StnetInputError(f"series {series.label} is not an EPI acquisition (ScanningSequence "
                              f"{'/'.join(series.scanning_sequences)}): DSC-MRI needs a gradient- or spin-echo EPI series")
    return series


def dcm2niix_binary() -> str:
    """Path of the dcm2niix executable (the ``dcm2niix`` package's, else one on PATH)."""
    try:
        import dcm2niix

        if Path(dcm2niix.bin).is_file():
            return str(dcm2niix.bin)
    except ImportError:
        pass
    found = shutil.which("dcm2niix")
    if found is None:
        raise StnetInputError("dcm2niix is not installed: `pip install dcm2niix` (or install the environment again)")
    return found


def convert_series(series: DicomSeries, work_dir) -> tuple[Path, Path]:
    """Convert ``series`` with dcm2niix inside ``work_dir``; return the NIfTI and its JSON sidecar.

    The series' files are linked into ``work_dir/dicom`` so that dcm2niix sees only them; its
    defaults file is ignored (``-g i``) so that a user's settings do not change the result.
    """
    work_dir = Path(work_dir)
    source, output = work_dir / "dicom", work_dir / "nifti"
    source.mkdir(parents=True)
    output.mkdir()
    for index, path in enumerate(series.files):
        os.symlink(Path(path).resolve(), source / f"{index:06d}.dcm")
    command = [dcm2niix_binary(), "-g", "i", "-b", "y", "-ba", "y", "-z", "y", "-d", "0", "-f", "series",
               "-o", str(output), str(source)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=DCM2NIIX_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise StnetInputError(f"dcm2niix could not convert series {series.label}: {error}".splitlines()[0]) from error
    log.debug("dcm2niix: %s", result.stdout)
    volumes = sorted(output.glob("*.nii.gz"))
    if result.returncode != 0 or not volumes:
        said = [line for line in (result.stderr + result.stdout).splitlines() if "rror" in line or "arning" in line]
        raise StnetInputError(f"dcm2niix could not convert series {series.label} (exit {result.returncode}): "
                              f"{(said or ['no NIfTI written'])[-1].strip()}")
    if len(volumes) > 1:
        raise StnetInputError(f"dcm2niix split series {series.label} into {len(volumes)} volumes "
                              f"({', '.join(v.name for v in volumes)}): export a single DSC series")
    sidecar = volumes[0].with_name(volumes[0].name[: -len(".nii.gz")] + ".json")
    if not sidecar.is_file():
        raise StnetInputError(f"dcm2niix wrote no JSON sidecar for series {series.label}")
    return volumes[0], sidecar


def load_dicom_series(folder, number: int | None, work_dir) -> tuple[DicomSeries, Path, Path]:
    """List, pick, check and convert: the series and its NIfTI and sidecar in ``work_dir``."""
    series = check_dsc_series(select_series(list_series(folder), number))
    log.info("converting series %s (%d files) with dcm2niix", series.label, len(series.files))
    nifti, sidecar = convert_series(series, work_dir)
    return series, nifti, sidecar
