"""Acquisition parameters of a DSC series — TE [ms], TR [s], field [T], slice timing [s] — checked in one place.

Each value is taken from, in order: what the caller gives (a command-line flag, a manifest
column, a keyword), the BIDS sidecar ``X.json`` beside ``X.nii.gz`` (dcm2niix writes one:
``EchoTime`` and ``RepetitionTime`` in seconds, ``MagneticFieldStrength`` in tesla,
``SliceTiming`` in seconds), the NIfTI header (TR from the 4th zoom; TE from dcm2niix's
``descrip`` ``TE=30;...``), and for the field only a default (1.5 T, with a warning). Where each
value came from is recorded (:attr:`Acquisition.provenance`), so that ``maps.json`` says it.

Every value must lie in a plausible range (:data:`RANGES`): a TE typed in seconds, as a BIDS
sidecar gives it, or a TR typed in milliseconds is refused with a hint instead of giving a CBV
of 42 ml/100g or an MTT of hours (docs/decisions/0035-acquisition-values-and-dicom-route.md).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._validation import StnetInputError

__all__ = ["RANGES", "DEFAULT_FIELD_T", "Acquisition", "check_acquisition_value", "sidecar_path", "read_sidecar",
           "resolve_acquisition"]

#: Plausible (low, high) of each acquisition value, in its own unit (DSC-MRI, clinical to 11.7 T).
RANGES = {"te_ms": (5.0, 120.0), "tr_s": (0.2, 5.0), "field_t": (0.5, 11.7)}
UNITS = {"te_ms": "ms", "tr_s": "s", "field_t": "T"}
#: Field strength assumed where neither the caller nor a sidecar gives one [T].
DEFAULT_FIELD_T = 1.5
#: BIDS sidecar field of each value and the factor from the sidecar's unit to ours.
SIDECAR_FIELDS = {"te_ms": ("EchoTime", 1000.0), "tr_s": ("RepetitionTime", 1.0), "field_t": ("MagneticFieldStrength", 1.0)}
FLAGS = {"te_ms": "--te-ms", "tr_s": "--tr-s", "field_t": "--field-t"}
#: Relative difference above which two sources of one value are said to disagree.
AGREEMENT_RTOL = 1e-3
_DESCRIP_TE = re.compile(r"(?:^|;)\s*TE=([0-9]*\.?[0-9]+)")


@dataclass
class Acquisition:
    """Checked acquisition values, where each came from, and the warnings to log."""

    te_ms: float
    tr_s: float
    field_t: float
    slice_timing_s: np.ndarray | None = None
    provenance: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


def _number(value) -> float:
    if isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _hint(raw: float, unit: str, low: float, high: float, name: str) -> str:
    if unit == "ms" and low <= raw * 1000 <= high:
        return f": {raw:g} looks like seconds: {name} is in milliseconds"
    if unit == "s" and low <= raw / 1000 <= high:
        return f": {raw:g} looks like milliseconds: {name} is in seconds"
    return ""


def check_acquisition_value(raw, key: str, name: str, *, unit: str | None = None, scale: float = 1.0) -> float:
    """Return ``raw × scale`` (in the unit of ``key``) if positive and within :data:`RANGES`, else raise.

    Parameters
    ----------
    raw : float or str
        The value as given, in ``unit`` (default: the unit of ``key``).
    key : str
        ``"te_ms"``, ``"tr_s"`` or ``"field_t"``.
    name : str
        How the value was given, for the message: ``"--te-ms"``, ``"EchoTime in x.json"``...
    unit, scale : str, float
        The unit of ``raw`` and the factor to the unit of ``key`` (a sidecar's EchoTime: ``"s"``, 1000).
    """
    unit = unit or UNITS[key]
    number = _number(raw)
    if not (math.isfinite(number) and number > 0):
        raise StnetInputError(f"{name} must be a positive number in {unit}; got {raw!r}")
    low, high = (bound / scale for bound in RANGES[key])
    if not low <= number <= high:
        raise StnetInputError(f"{name} = {number:g} {unit} is outside the plausible {low:g}–{high:g} {unit}"
                              + _hint(number, unit, low, high, name))
    return number * scale


def sidecar_path(dsc_path) -> Path:
    """The BIDS sidecar of a NIfTI series: ``X.json`` beside ``X.nii.gz`` or ``X.nii``."""
    path = Path(dsc_path)
    stem = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem
    return path.with_name(stem + ".json")


def read_sidecar(path) -> dict | None:
    """The JSON object in ``path`` (None if there is no such file); StnetInputError if unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StnetInputError(f"cannot read the sidecar {path}: {error}: fix the JSON or move it away".splitlines()[0]) from error
    if not isinstance(content, dict):
        raise StnetInputError(f"the sidecar {path} is not a JSON object: fix it or move it away")
    return content


def _header_values(header) -> dict:
    """(raw value, unit, scale, name) of TR (4th zoom) and TE (dcm2niix's descrip) in a NIfTI header."""
    found = {}
    zooms = header.get_zooms()
    if len(zooms) > 3 and float(zooms[3]) > 0:
        msec = header.get_xyzt_units()[1] == "msec"
        found["tr_s"] = (float(zooms[3]), "ms" if msec else "s", 1e-3 if msec else 1.0,
                         "the header's frame interval (4th zoom)")
    descrip = header["descrip"].item() if "descrip" in header else b""
    match = _DESCRIP_TE.search(descrip.decode("latin-1") if isinstance(descrip, bytes) else str(descrip))
    if match:
        found["te_ms"] = (float(match.group(1)), "ms", 1.0, "TE in the header's description")
    return found


def _sidecar_values(sidecar: dict | None, where: str) -> dict:
    found = {}
    for key, (name, scale) in SIDECAR_FIELDS.items():
        if sidecar is None or sidecar.get(name) is None:
            continue
        value = sidecar[name]
        if isinstance(value, list):
            raise StnetInputError(f"{name} in {where} is a list ({value}): a single-echo series is needed")
        found[key] = (value, "s" if key != "field_t" else "T", scale, f"{name} in {where}")
    return found


def _given_name(key: str, given_as: str) -> str:
    return FLAGS[key] if given_as == "flag" else f"{given_as} {key}"


def _choose(key: str, given, sources: dict, given_as: str, acquisition_warnings: list):
    """(value, source) of one acquisition value: the given one, else the sidecar's, else the header's."""
    candidates = {}
    if given is not None and not (isinstance(given, float) and math.isnan(given)):
        candidates[given_as] = (given, UNITS[key], 1.0, _given_name(key, given_as))
    for source, values in sources.items():
        if key in values:
            candidates[source] = values[key]
    if not candidates:
        return None, None
    source, (raw, unit, scale, name) = next(iter(candidates.items()))
    value = check_acquisition_value(raw, key, name, unit=unit, scale=scale)
    for other, (other_raw, other_unit, other_scale, other_name) in list(candidates.items())[1:]:
        other_value = _number(other_raw) * other_scale
        if not math.isclose(value, other_value, rel_tol=AGREEMENT_RTOL):
            acquisition_warnings.append(f"{name} = {raw:g} {unit} disagrees with {other_name} = {_number(other_raw):g} "
                                        f"{other_unit}: using {name}")
    return value, source


def _slice_timing(sidecar: dict | None, where: str, n_slices: int, tr_s: float) -> np.ndarray | None:
    if sidecar is None or sidecar.get("SliceTiming") is None:
        return None
    raw = sidecar["SliceTiming"]
    values = np.array([_number(v) for v in raw], dtype=float) if isinstance(raw, list) else np.array([math.nan])
    if values.size != n_slices:
        raise StnetInputError(f"SliceTiming in {where} has {values.size} value(s) for {n_slices} slice(s): "
                              "fix the sidecar or remove SliceTiming")
    if not (np.isfinite(values).all() and (values >= 0).all() and (values < tr_s * (1 + AGREEMENT_RTOL)).all()):
        raise StnetInputError(f"SliceTiming in {where} must hold times in [0, TR = {tr_s:g} s) in seconds; "
                              f"got {raw}: fix the sidecar or remove SliceTiming")
    return values


def resolve_acquisition(given: dict, header, *, sidecar: dict | None = None, sidecar_file=None,
                        n_slices: int = 1, given_as: str = "argument") -> Acquisition:
    """TE [ms], TR [s], field [T] and slice timing [s] of a series, checked, with their sources.

    Parameters
    ----------
    given : dict
        ``te_ms``, ``tr_s``, ``field_t`` as given by the caller (None or NaN: not given).
    header : nibabel.Nifti1Header
        The series' header (TR from its 4th zoom, TE from a dcm2niix description).
    sidecar, sidecar_file : dict, path
        The BIDS sidecar's content and where it is.
    n_slices : int
        Slices of the series (the length ``SliceTiming`` must have).
    given_as : str
        How ``given`` was given — ``"flag"`` (messages name ``--te-ms``), ``"argument"``,
        ``"manifest"`` — recorded as the source of the values it holds.
    """
    where = Path(sidecar_file).name if sidecar_file is not None else "the sidecar"
    sources = {"sidecar": _sidecar_values(sidecar, where), "header": _header_values(header)}
    notes: list[str] = []
    values, provenance = {}, {}
    for key in ("te_ms", "tr_s", "field_t"):
        values[key], provenance[key] = _choose(key, given.get(key), sources, given_as, notes)
    if values["te_ms"] is None:
        name = "--te-ms" if given_as == "flag" else "te_ms"
        raise StnetInputError(f"the echo time is missing: pass {name} in milliseconds (or put EchoTime [s] in "
                              "the series' JSON sidecar)")
    if values["tr_s"] is None:
        name = "--tr-s" if given_as == "flag" else "tr_s"
        raise StnetInputError(f"the series' header has no frame interval: pass {name} in seconds (or put "
                              "RepetitionTime [s] in the series' JSON sidecar)")
    if values["field_t"] is None:
        values["field_t"], provenance["field_t"] = DEFAULT_FIELD_T, "default"
        notes.append(f"no field strength given or in a sidecar: assuming {DEFAULT_FIELD_T:g} T (it scales every "
                     "relaxivity; pass --field-t or field_t)")
    timing = _slice_timing(sidecar, where, n_slices, values["tr_s"])
    provenance["slice_timing_s"] = None if timing is None else "sidecar"
    if sidecar is not None:
        used = [name for name, _ in SIDECAR_FIELDS.values()] + ["SliceTiming", "ConversionSoftware",
                                                                 "ConversionSoftwareVersion"]
        provenance["sidecar"] = {"path": str(Path(sidecar_file).resolve()) if sidecar_file else None,
                                 **{name: sidecar[name] for name in used if sidecar.get(name) is not None}}
    return Acquisition(values["te_ms"], values["tr_s"], values["field_t"], timing, provenance, notes)
