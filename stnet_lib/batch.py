"""Whole cohorts: every subject of a manifest mapped into ``out_dir/<subject>/``, resumably (issue #15).

:func:`map_cohort` loads each subject's scan (:func:`stnet_lib.io.load_scan`), computes its maps
(:func:`stnet_lib.pipeline.compute_maps`) and writes, through :func:`write_scan_outputs`, the maps
and ``maps.json`` (:func:`stnet_lib.io.save_maps`), ``summary.json``, ``rcbf.nii.gz``,
``rcbv.nii.gz`` (:mod:`stnet_lib.summary`) and ``qc.png`` (:mod:`stnet_lib.qc`); then
``summary.csv``, one row per finished subject.

Resuming: a subject's outputs are written into a hidden staging folder and moved into place
whole; only then is its done-marker ``.stnet-done.json`` written (atomically, last). The marker
holds a key: the SHA-256 of every input file (series, its sidecar, masks) with the acquisition
values of the manifest row, the method, its options and the package version. A subject whose
marker holds the key of its current inputs and parameters is skipped; a file whose size and
modification time match the marker's record is not hashed again. A subject interrupted anywhere
has no marker (an old one is removed before anything else is written) and is mapped again.

``subject=`` maps one subject, so that a cluster job array can run one per task; each task then
rewrites ``summary.csv`` from the subjects finished so far, and a last run without ``subject``
(which skips them all) writes the complete table. Why these choices:
docs/decisions/0044-resumable-cohort-mapping.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from ._validation import StnetInputError, check_file
from .acquisition import sidecar_path
from .io import MAP_FILES, atomic_write, load_scan, ordinary_permissions, save_maps, save_nifti
from .manifest import is_empty, load_manifest
from .pipeline import compute_maps
from .summary import SummaryConfig, hypoperfusion_summary
from ._files import sha256_file as _sha256

__all__ = ["DONE_MARKER", "SUMMARY_TABLE", "SUMMARY_FILES", "map_cohort", "map_subject", "save_scan_outputs",
           "write_scan_outputs", "write_summary_table", "subject_inputs"]

log = logging.getLogger(__name__)

#: The file whose presence (with the right key) marks a finished subject.
DONE_MARKER = ".stnet-done.json"
#: The cohort's table of summaries, in ``out_dir``.
SUMMARY_TABLE = "summary.csv"
#: Optional outputs of an earlier run that a rerun with ``overwrite`` removes when it does not write them.
OPTIONAL_OUTPUTS = ("k2.nii.gz", "kep.nii.gz", "aif_mask.nii.gz", "vof_mask.nii.gz", "brain_mask.nii.gz",
                    "aif_qc.png", "motion.csv", "motion.png")
#: Manifest columns whose files a subject's maps depend on.
INPUT_COLUMNS = ("dsc", "brain_mask", "aif_mask", "vof_mask")
#: Manifest columns whose values a subject's maps depend on.
VALUE_COLUMNS = ("te_ms", "tr_s", "field_t")


def subject_inputs(row) -> dict[str, Path]:
    """The files a manifest row's maps are made from: its series, the series' sidecar if any, its masks."""
    files = {name: Path(row[name]) for name in INPUT_COLUMNS if name in row and not is_empty(row[name])}
    sidecar = sidecar_path(files["dsc"])
    if sidecar is not None and Path(sidecar).is_file():
        files["dsc_sidecar"] = Path(sidecar)
    return files


def _file_records(files: dict[str, Path], previous: dict) -> dict:
    """Per input: path, size, mtime and SHA-256 (reused from ``previous`` when path, size and mtime match)."""
    records = {}
    for name, path in files.items():
        stat = path.stat()
        record = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        old = previous.get(name, {})
        same = all(old.get(key) == value for key, value in record.items())
        records[name] = {**record, "sha256": old["sha256"] if same and "sha256" in old else _sha256(path)}
    return records


def _key(records: dict, values: dict, params: dict) -> str:
    content = {"inputs": {name: r["sha256"] for name, r in sorted(records.items())}, "values": values, "params": params}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def _read_marker(folder: Path) -> dict:
    try:
        return json.loads((folder / DONE_MARKER).read_text())
    except (OSError, ValueError):
        return {}


def _curve(params: dict, *keys, length: int):
    """A curve recorded in ``maps.params`` (e.g. ``("aif", "c_mM")``) if it has ``length`` samples, else None."""
    value = params
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return np.asarray(value, dtype=np.float64) if value is not None and len(value) == length else None


def _qc_page(scan, maps, summary, folder: Path, title: str) -> None:
    """``qc.png`` from the scan and what ``compute_maps`` recorded (curves of the prepared series)."""
    import matplotlib.pyplot as plt

    from .qc import plot_qc_page, save_qc_page

    extra = getattr(maps, "extra_volumes", {})
    time_s = np.asarray(maps.params.get("time_s", np.arange(scan.signal.shape[-1]) * scan.tr_s), dtype=np.float64)
    n = time_s.size
    aif_mask = scan.aif_mask if scan.aif_mask is not None else extra.get("aif_mask")
    vof_mask = scan.vof_mask if scan.vof_mask is not None else extra.get("vof_mask")
    figure = plot_qc_page(scan.signal.mean(axis=-1), maps, summary.values, brain_mask=scan.brain_mask, time_s=time_s,
                          aif_curve=_curve(maps.params, "aif", "c_mM", length=n),
                          vof_curve=_curve(maps.params, "vof", "c_mM", length=n),
                          brain_curve=_curve(maps.params, "brain_signal", length=n),
                          aif_mask=None if aif_mask is None else np.asarray(aif_mask, bool),
                          vof_mask=None if vof_mask is None else np.asarray(vof_mask, bool), affine=scan.affine,
                          brain_curve_label="mean signal [a.u.]", title=title)
    try:
        save_qc_page(figure, folder / "qc.png")
    finally:
        plt.close(figure)


def write_scan_outputs(scan, maps, folder, *, summary_config: SummaryConfig = SummaryConfig(), qc: bool = True,
                       title: str = "") -> dict:
    """Write a scan's maps, ``maps.json``, ``summary.json``, ``rcbf.nii.gz``, ``rcbv.nii.gz`` and ``qc.png``.

    Beside them, what ``compute_maps`` adds (masks found automatically, a K2 map) and the curve
    preparation's files (:func:`stnet_lib.curve_qc.preparation_files`: ``aif_qc.png``, and
    ``motion.csv``/``motion.png`` after motion correction).

    Parameters
    ----------
    scan : Scan
        The scan the maps come from (affine, header, brain mask, mean image).
    maps : PerfusionMaps
        From :func:`stnet_lib.pipeline.compute_maps`, shape (x, y, z).
    folder : path
        Where to write (created; existing files of these names are replaced, each atomically).
    summary_config : SummaryConfig
        Thresholds of the summary.
    qc : bool
        Draw ``qc.png``.
    title : str
        Title of the QC page.

    Returns
    -------
    dict
        The summary's values (:attr:`stnet_lib.summary.HypoperfusionSummary.values`).
    """
    from .curve_qc import preparation_files

    folder = Path(folder)
    maps.extra_files.update(preparation_files(scan, maps))  # aif_qc.png; motion.csv, motion.png
    save_maps(maps, folder, scan=scan, overwrite=True)
    summary = hypoperfusion_summary(maps, scan.brain_mask, scan.affine, summary_config)
    with atomic_write(folder / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary.as_json(), indent=2, allow_nan=False) + "\n")
    for name in ("rcbf", "rcbv"):
        save_nifti(getattr(summary, name), folder / f"{name}.nii.gz", affine=scan.affine)
    if qc:
        _qc_page(scan, maps, summary, folder, title or f"Quality control: {maps.method}")
    return summary.values


#: What :func:`write_scan_outputs` writes beside the maps (``qc.png`` only with ``qc``).
SUMMARY_FILES = ("summary.json", "rcbf.nii.gz", "rcbv.nii.gz", "qc.png")


def save_scan_outputs(scan, maps, out_dir, *, overwrite: bool = False, **kwargs) -> dict:
    """:func:`write_scan_outputs` into ``out_dir``, all or nothing (``stnet maps`` on one scan).

    Everything is written into a staging folder beside ``out_dir`` first and moved into place only
    when complete. Raises StnetInputError (nothing written) when ``out_dir`` already holds any of
    the outputs and ``overwrite`` is False; with ``overwrite``, outputs of an earlier run that this
    run does not write (``qc.png`` after ``qc=False``, a K2 map) are removed, so that the folder
    describes this run only. ``kwargs`` go to :func:`write_scan_outputs`; returns the summary.
    """
    out_dir = Path(out_dir)
    known = [*MAP_FILES, *SUMMARY_FILES, *(f"{name}.nii.gz" for name in getattr(maps, "extra_volumes", {}))]
    existing = sorted(name for name in known if (out_dir / name).exists())
    if existing and not overwrite:
        raise StnetInputError(f"{out_dir} already holds {', '.join(existing)}: pass --overwrite or another --out")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        ordinary_permissions(staging)
        values = write_scan_outputs(scan, maps, staging, **kwargs)
        if not out_dir.exists():
            os.replace(staging, out_dir)
            return values
        written = {path.name for path in staging.iterdir()}
        for name in sorted(written):
            os.replace(staging / name, out_dir / name)
        for name in (*SUMMARY_FILES, *OPTIONAL_OUTPUTS):
            if name not in written:
                (out_dir / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return values


def _move_into_place(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` (two renames; an interruption between leaves no finished subject)."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
        os.replace(target, old / target.name)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_leftovers(out_dir: Path, subject_id: str) -> None:
    """Staging and replaced folders of an interrupted earlier run of this subject."""
    for pattern in (f".{subject_id}.tmp-*", f".{subject_id}.old-*"):
        for path in out_dir.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)


def _map_into(row, values: dict, staging: Path, run: dict) -> None:
    masks = {name: (None if is_empty(row.get(name)) else row[name]) for name in ("aif_mask", "vof_mask", "brain_mask")}
    scan = load_scan(row["dsc"], **masks, **values, given_as="manifest")
    maps = compute_maps(scan, run["method"], motion_correct=run["motion_correct"], device=run["device"],
                        **run["options"])
    write_scan_outputs(scan, maps, staging, summary_config=run["summary_config"], qc=run["qc"],
                       title=f"Quality control: {row['subject_id']}, {run['method']}")


def map_subject(row, out_dir, run: dict) -> dict:
    """Map one manifest row into ``out_dir/<subject_id>/`` unless its marker says it is done already.

    ``run`` holds ``method``, ``options``, ``motion_correct``, ``device``, ``qc``, ``summary_config``
    and ``params`` (the JSON-safe parameters that enter the key). Returns ``subject_id``, ``status``
    (``"done"``, ``"skipped"`` or ``"failed"``) and ``message``; a failure is logged, not raised,
    and leaves the subject unfinished.
    """
    out_dir, subject_id = Path(out_dir), str(row["subject_id"])
    target = out_dir / subject_id
    marker = _read_marker(target)
    try:
        records = _file_records(subject_inputs(row), marker.get("inputs", {}))
    except OSError as error:
        return {"subject_id": subject_id, "status": "failed", "message": f"cannot read an input: {error}"}
    values = {name: (None if is_empty(row.get(name)) else float(row[name])) for name in VALUE_COLUMNS}
    key = _key(records, values, run["params"])
    if marker.get("key") == key:
        return {"subject_id": subject_id, "status": "skipped", "message": ""}
    (target / DONE_MARKER).unlink(missing_ok=True)  # from here on the subject is not done
    _remove_leftovers(out_dir, subject_id)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{subject_id}.tmp-"))
    try:
        ordinary_permissions(staging)
        _map_into(row, values, staging, run)
        _move_into_place(staging, target)
        with atomic_write(target / DONE_MARKER) as tmp:
            tmp.write_text(json.dumps({"key": key, "inputs": records, "values": values, "params": run["params"]},
                                      indent=2) + "\n")
    except Exception as error:  # one subject's failure must not stop the cohort; it stays unfinished
        log.error("subject %s failed: %s", subject_id, error, exc_info=not isinstance(error, StnetInputError))
        return {"subject_id": subject_id, "status": "failed", "message": f"{type(error).__name__}: {error}"}
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"subject_id": subject_id, "status": "done", "message": ""}


def write_summary_table(frame: pd.DataFrame, out_dir) -> Path:
    """``out_dir/summary.csv``: one row per finished subject of ``frame`` (manifest order), written atomically."""
    out_dir = Path(out_dir)
    rows = []
    for subject_id in frame["subject_id"].astype(str):
        folder = out_dir / subject_id
        marker = _read_marker(folder)
        if not marker or not (folder / "summary.json").is_file():
            continue
        values = json.loads((folder / "summary.json").read_text())
        values.pop("parameters", None)
        rows.append({"subject_id": subject_id, "method": marker["params"].get("method"), **values})
    path = out_dir / SUMMARY_TABLE
    with atomic_write(path) as tmp:
        pd.DataFrame(rows, columns=None if rows else ["subject_id", "method"]).to_csv(tmp, index=False)
    return path


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _select(frame: pd.DataFrame, subject: str | None) -> pd.DataFrame:
    if subject is None:
        return frame
    chosen = frame[frame["subject_id"].astype(str) == str(subject)]
    if chosen.empty:
        known = ", ".join(frame["subject_id"].astype(str).head(5))
        raise StnetInputError(f"subject {subject!r} is not in the manifest (its subjects start {known}): "
                              "check --subject")
    return chosen


def map_cohort(manifest, out_dir, *, method: str = "osvd", options: dict | None = None, jobs: int = 1,
               subject: str | None = None, qc: bool = True, summary_config: SummaryConfig = SummaryConfig(),
               motion_correct: bool = False, device: str = "cpu") -> pd.DataFrame:
    """Map every subject of a manifest (or one) into ``out_dir/<subject_id>/``, skipping finished ones.

    Parameters
    ----------
    manifest : path or DataFrame
        ``data_manifest.csv`` (:func:`stnet_lib.manifest.load_manifest`) or its loaded table.
    out_dir : path
        Output folder (created).
    method, options, motion_correct, device
        As :func:`stnet_lib.pipeline.compute_maps` takes them.
    jobs : int
        Subjects mapped at once, in spawned processes (torch threads shared out among them).
    subject : str, optional
        Map only this ``subject_id`` (one task of a cluster job array).
    qc : bool
        Write each subject's ``qc.png``.
    summary_config : SummaryConfig
        Thresholds of ``summary.json`` and ``summary.csv``.

    Returns
    -------
    DataFrame
        ``subject_id``, ``status`` (done, skipped, failed), ``message``, one row per subject attempted;
        ``attrs["summary_table"]`` is the path of ``summary.csv``.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise StnetInputError(f"jobs must be a whole number of at least 1; got {jobs!r}")
    frame = manifest if isinstance(manifest, pd.DataFrame) else load_manifest(manifest)
    todo = _select(frame, subject)
    options = dict(options or {})
    params = {"method": method, "options": options, "motion_correct": motion_correct, "qc": qc,
              "summary": dataclasses.asdict(summary_config), "stnet_version": __version__}
    if options.get("checkpoint") is not None:  # a network retrained into the same file maps again
        params["checkpoint_sha256"] = _sha256(check_file(options["checkpoint"], "ST-Net checkpoint"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = {"method": method, "options": options, "motion_correct": motion_correct, "device": device, "qc": qc,
           "summary_config": summary_config, "params": json.loads(json.dumps(params, default=str))}
    rows = [row for _, row in todo.iterrows()]
    if jobs > 1 and len(rows) > 1:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(min(jobs, len(rows)), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init, initargs=(threads,)) as pool:
            status = list(pool.map(map_subject, rows, [out_dir] * len(rows), [run] * len(rows)))
    else:
        status = [map_subject(row, out_dir, run) for row in rows]
    table = pd.DataFrame(status, columns=["subject_id", "status", "message"])
    table.attrs["summary_table"] = write_summary_table(frame, out_dir)
    counts = table["status"].value_counts().to_dict()
    log.info("cohort mapping into %s: %s", out_dir, ", ".join(f"{n} {k}" for k, n in counts.items()))
    return table
