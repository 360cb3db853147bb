"""Stage 6 — the cohort a report works on: the profile's synthetic cohort (simulated once, cached) or
any cohort described by a manifest.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import Scan, load_scan
from ..manifest import load_manifest
from ..profiles import Profile
from ..simulation.cohort import simulate_cohort

__all__ = ["MANIFEST_NAME", "cohort_manifest", "held_out_subjects", "subject_scan", "file_key", "content_key",
           "digest", "code_key", "PHYSICS_CODE", "NETWORK_CODE", "METRICS_CODE"]

log = logging.getLogger(__name__)

#: Name of the manifest inside a cohort folder.
MANIFEST_NAME = "data_manifest.csv"

#: The library's source (files or folders under ``stnet_lib/``) that each kind of cached result
#: depends on: deconvolution maps, ST-Net training and inference, metrics and tables.
#: The curve preparation every method shares (non-steady frames, slice timing, motion, automatic AIF,
#: acquisition values, leakage): part of both keys (``tests/test_experiments.py`` checks the imports).
_CURVES_CODE = ("constants.py", "signal.py", "io.py", "masking.py", "maps.py", "acquisition.py", "curves.py",
                "aif.py", "motion.py", "leakage.py", "device.py")
PHYSICS_CODE = (*_CURVES_CODE, "pipeline.py", "deconvolution")
NETWORK_CODE = (*_CURVES_CODE, "pipeline.py", "network")
METRICS_CODE = ("metrics", "evaluation.py")
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def cohort_manifest(profile: Profile, data_dir, manifest=None, *, progress: bool = False) -> Path:
    """The manifest to report on: ``manifest`` if given, else the profile's synthetic cohort in ``data_dir``.

    The synthetic cohort is simulated only where a subject is missing or stale
    (:func:`stnet_lib.simulation.cohort.simulate_cohort` keeps complete, valid subjects).

    Parameters
    ----------
    profile : Profile
    data_dir : path
        Cohort folder of the profile (``data/<profile>``).
    manifest : path, optional
        A ``data_manifest.csv`` of one's own cohort (then nothing is simulated).
    progress : bool
        Progress bar while simulating.

    Returns
    -------
    Path
        The manifest, validated by :func:`stnet_lib.manifest.load_manifest`.
    """
    if manifest is not None:
        path = Path(manifest)
    else:
        path = Path(data_dir) / MANIFEST_NAME
        simulate_cohort(profile.cohort, Path(data_dir), progress=progress, jobs=min(4, os.cpu_count() or 1))
    load_manifest(path)
    return path


def held_out_subjects(manifest_path, *, labelled: bool = False, limit: int | None = None) -> pd.DataFrame:
    """The manifest's ``test`` rows (only those with a lesion label when ``labelled``), first ``limit``."""
    table = load_manifest(manifest_path)
    rows = table[table["split"] == "test"]
    if labelled:
        rows = rows[rows["has_lesion_label"].astype(bool)]
    return rows.iloc[:limit] if limit is not None else rows


def subject_scan(row) -> Scan:
    """Load one manifest row's scan (a row of :func:`load_manifest`, as a Series or namedtuple)."""
    get = row.get if hasattr(row, "get") else lambda name: getattr(row, name)
    tr_s = get("tr_s")
    tr_s = None if tr_s is None or not np.isfinite(tr_s) else float(tr_s)
    return load_scan(get("dsc"), get("aif_mask"), get("vof_mask"), get("brain_mask"), get("te_ms"), tr_s,
                     field_t=get("field_t"))


def file_key(path) -> str:
    """A cheap identity of a file: its size and modification time (empty for no file)."""
    if path is None or (isinstance(path, float) and np.isnan(path)) or str(path) == "":
        return ""
    stat = Path(path).stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def content_key(path) -> str:
    """A digest of a small file's bytes (a manifest, which the simulator rewrites unchanged on every run)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def code_key(*parts: str, package_dir: Path | None = None) -> str:
    """A digest of the bytes of the library's ``.py`` files under ``parts`` (paths relative to
    ``stnet_lib/``), so that a cached result is redone when the code that made it changes, not
    only when the version number does. The imported library's keys are computed once per process
    (the code a process runs does not change under it); another ``package_dir`` is read each time."""
    if package_dir is None:
        return _library_code_key(tuple(sorted(set(parts))))
    return _source_digest(Path(package_dir), sorted(set(parts)))


@functools.lru_cache(maxsize=None)
def _library_code_key(parts: tuple[str, ...]) -> str:
    return _source_digest(_PACKAGE_DIR, parts)


def _source_digest(root: Path, parts) -> str:
    files = []
    for part in parts:
        path = root / part
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    sha = hashlib.sha256()
    for path in files:
        sha.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return sha.hexdigest()[:16]


def digest(*parts) -> str:
    """A short SHA-256 of the parts' ``repr``."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
