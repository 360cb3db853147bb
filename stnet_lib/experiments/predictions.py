"""Stage 6 — every method's maps of a cohort's test subjects, and the ST-Net they need, cached.

Layout under a profile's ``runs_dir`` (``runs/<profile>``)::

    stnet/                    the trained ST-Net: best.pt, last.pt, learning_curve.csv, train.json
    pred/<method>/<subject>/  cbv, cbf, mtt, tmax .nii.gz + maps.json (written by io.save_maps)

A subject's maps are valid while ``maps.json`` holds the same ``run_key``: a digest of the
method, its options, the subject's input files (size and modification time), the ST-Net
checkpoint for ``stnet``, the package version and the source of the code that computes them
(:func:`stnet_lib.experiments.data.code_key`: a changed default or formula redoes the maps). Anything else is recomputed; valid maps are
kept, so a report re-run does only what changed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .. import __version__
from ..deconvolution import METHODS
from ..io import MAP_FILES, atomic_write, save_maps
from ..manifest import load_manifest
from ..network.stnet import STNetConfig
from ..network.train import TrainConfig, train_from_manifest
from ..network.train import time_grid as network_time_grid
from ..pipeline import compute_maps
from .data import (NETWORK_CODE, PHYSICS_CODE, code_key, digest, file_key, held_out_subjects,
                   subject_scan)

__all__ = ["available", "pred_dir", "pred_dirs", "predict_subjects", "time_grid", "train_stnet",
           "stnet_checkpoint", "training_record", "training_summary", "runs_summary"]

log = logging.getLogger(__name__)

_INPUT_COLUMNS = ("dsc", "brain_mask", "aif_mask", "vof_mask")


def available(methods) -> tuple[str, ...]:
    """The ``methods`` that can run here: registered deconvolution methods and ``stnet``."""
    return tuple(m for m in methods if m in METHODS or m == "stnet")


def pred_dir(runs_dir, method: str) -> Path:
    """Folder of ``method``'s maps: ``<runs_dir>/pred/<method>``."""
    return Path(runs_dir) / "pred" / method


def pred_dirs(runs_dir, methods) -> dict[str, Path]:
    """``{method: pred_dir}`` for :func:`stnet_lib.evaluation.evaluate_manifest`."""
    return {method: pred_dir(runs_dir, method) for method in methods}


def _run_key(row: dict, method: str, options: dict) -> str:
    inputs = [file_key(row.get(column)) for column in _INPUT_COLUMNS]
    acquisition = [row.get("te_ms"), row.get("tr_s"), row.get("field_t")]
    opts = sorted((k, file_key(v) if k == "checkpoint" else repr(v)) for k, v in options.items())
    code = code_key(*PHYSICS_CODE, *(NETWORK_CODE if method == "stnet" else ()))
    return digest(method, opts, inputs, acquisition, __version__, code)


def _is_valid(folder: Path, key: str) -> bool:
    try:
        sidecar = json.loads((folder / "maps.json").read_text())
    except (OSError, ValueError):
        return False
    return all((folder / name).is_file() for name in MAP_FILES) and sidecar.get("params", {}).get("run_key") == key


def predict_subjects(manifest_path, method: str, runs_dir, *, device: str = "cpu", options: dict | None = None,
                     rows: pd.DataFrame | None = None, progress: bool = False) -> pd.DataFrame:
    """Maps of ``method`` for every test subject, into ``<runs_dir>/pred/<method>/<subject_id>/``.

    Parameters
    ----------
    manifest_path : path
        The cohort's manifest.
    method : str
        A deconvolution method of ``stnet_lib.deconvolution.METHODS``, or ``"stnet"`` (then
        ``options`` must hold ``checkpoint``).
    runs_dir : path
        The profile's run folder.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    options : dict, optional
        Method options for :func:`stnet_lib.pipeline.compute_maps`.
    rows : DataFrame, optional
        Manifest rows to compute (default: every test subject).
    progress : bool
        Progress bar over subjects.

    Returns
    -------
    DataFrame
        One row per subject: ``subject_id``, ``method``, ``seconds`` (of the computation, now or
        when the cached maps were made), ``status`` (``computed`` or ``cached``).
    """
    options = dict(options or {})
    rows = held_out_subjects(manifest_path) if rows is None else rows
    out, records = pred_dir(runs_dir, method), []
    for row in tqdm(rows.to_dict("records"), desc=method, unit="subject", disable=not progress):
        folder, key = out / str(row["subject_id"]), _run_key(row, method, options)
        status = "cached" if _is_valid(folder, key) else "computed"
        if status == "computed":
            scan = subject_scan(row)
            start = time.perf_counter()
            maps = compute_maps(scan, method, device=device, **options)
            maps.params.update(run_key=key, seconds=time.perf_counter() - start, subject_id=row["subject_id"])
            save_maps(maps, folder, affine=scan.affine, header=scan.header, overwrite=True)
        params = json.loads((folder / "maps.json").read_text())["params"]
        records.append({"subject_id": row["subject_id"], "method": method, "seconds": params.get("seconds"),
                        "status": status})
    return pd.DataFrame(records, columns=["subject_id", "method", "seconds", "status"])


def time_grid(manifest_path) -> tuple[int, float]:
    """ST-Net's time grid (frames, interval [s]) that every subject of the manifest covers
    (:func:`stnet_lib.network.train.time_grid` over all rows).

    ``train_from_manifest`` derives its default grid from the training series only, which refuses
    test scans of a shorter span (the synthetic cohort draws TR per subject); the acquisition span
    is known before any label, so using every subject's is no leak.
    """
    return network_time_grid(load_manifest(manifest_path), splits=None)


def _training_key(manifest_path, cfg: TrainConfig, model_config: STNetConfig) -> str:
    table = load_manifest(manifest_path)
    rows = table[table["split"].isin(["train", "val"])].to_dict("records")
    files = [(r["subject_id"], r["split"], [file_key(r.get(c)) for c in (*_INPUT_COLUMNS, "cbv", "cbf", "tmax",
                                                                           "lesion_mask")]) for r in rows]
    return digest(dataclasses.asdict(cfg), model_config.to_dict(), files, __version__, code_key(*NETWORK_CODE))


def training_record(run_dir) -> dict:
    """``train.json`` of a run folder (empty dict when absent)."""
    try:
        return json.loads((Path(run_dir) / "train.json").read_text())
    except (OSError, ValueError):
        return {}


def train_stnet(manifest_path, run_dir, cfg: TrainConfig, *, model_config: STNetConfig | None = None,
                device: str = "cpu", progress: bool = False) -> Path:
    """Train ST-Net on the manifest's train/val subjects into ``run_dir``, unless a valid run is there.

    A run is valid while ``train.json`` holds the same key (training and model settings, the
    train/val subjects' files, the package version) and says it finished. An interrupted run with
    the same key is resumed from its ``last.pt``; a run with another key is deleted and redone.
    ``model_config`` defaults to ``STNetConfig`` on the manifest's :func:`time_grid`.

    Returns
    -------
    Path
        ``run_dir/best.pt``.
    """
    run_dir = Path(run_dir)
    if model_config is None:
        n_frames, dt_s = time_grid(manifest_path)
        model_config = STNetConfig(n_frames=n_frames, dt_s=dt_s)
    key = _training_key(manifest_path, cfg, model_config)
    record = training_record(run_dir)
    if record.get("key") == key and record.get("complete") and (run_dir / "best.pt").is_file():
        return run_dir / "best.pt"
    if run_dir.exists() and record.get("key") != key:
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_record(run_dir, {"key": key, "complete": False, "train_config": dataclasses.asdict(cfg)})
    start = time.perf_counter()
    best = train_from_manifest(manifest_path, run_dir, cfg, model_config=model_config, resume=True, device=device,
                               progress=progress)
    seconds = time.perf_counter() - start + record.get("seconds", 0.0) * (record.get("key") == key)
    _write_record(run_dir, {"key": key, "complete": True, "train_config": dataclasses.asdict(cfg),
                            "seconds": seconds, "device": device})
    return best


def _write_record(run_dir: Path, record: dict) -> None:
    with atomic_write(run_dir / "train.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")


def stnet_checkpoint(runs_dir) -> Path:
    """The report's ST-Net checkpoint: ``<runs_dir>/stnet/best.pt``."""
    return Path(runs_dir) / "stnet" / "best.pt"


def training_summary(run_dir) -> pd.DataFrame:
    """One row per fact of a finished run (``setting``, ``value``): epochs, best epoch and loss, time, device."""
    run_dir = Path(run_dir)
    record = training_record(run_dir)
    curve = pd.read_csv(run_dir / "learning_curve.csv")
    best = curve.loc[curve["val_loss"].idxmin()]
    cfg = record.get("train_config", {})
    facts = {
        "epochs run": len(curve), "epochs allowed": cfg.get("epochs"), "early stop patience": cfg.get("patience"),
        "best epoch (0-based)": int(best["epoch"]), "best validation loss (eq. 9)": float(best["val_loss"]),
        "its supervised part": float(best["val_supervised"]), "its physics term [mM·s]": float(best["val_physics"]),
        "training samples per epoch (mean)": float(curve["n_samples"].mean()),
        "training time [s]": record.get("seconds"), "device": record.get("device"),
        "learning rate": cfg.get("lr"), "batch": cfg.get("batch_size"), "stride": cfg.get("stride"),
        "normal:lesion ratio": cfg.get("ratio"), "physics weight w": cfg.get("physics_weight"), "seed": cfg.get("seed"),
    }
    return pd.DataFrame({"setting": list(facts), "value": [str(v) if not isinstance(v, float) else f"{v:.4g}"
                                                           for v in facts.values()]})


def runs_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method: subjects, how many were computed now (the others were cached), mean seconds per subject."""
    return runs.groupby("method", sort=False).agg(
        subjects=("subject_id", "size"), computed_now=("status", lambda s: int((s == "computed").sum())),
        seconds_per_subject=("seconds", "mean")).reset_index()
