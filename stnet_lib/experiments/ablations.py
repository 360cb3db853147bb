"""Stage 6 — Fig. 3: how ST-Net's training choices change its accuracy in the hypoperfused area.

Each run changes one setting of the profile's training (patch stride, normal:lesion ratio,
learning rate, physics-loss weight) or of the network's outputs, and sees the same number of
training samples (:attr:`stnet_lib.profiles.AblationPlan.samples`), so that strides and
ratios, which change the samples per epoch, get the same compute. Runs live in
``<runs_dir>/ablations/<name>/`` and are cached like the main training
(:func:`stnet_lib.experiments.predictions.train_stnet`).

One output against three (the paper's ablation): the plan's ``outputs`` axis holds ``"all"``
(the profile's three-output network, the run every axis shares) and map names; a map name is
a network with that single output (``STNetConfig.outputs``, a one-unit head), trained with the
profile's settings and the same sample budget. A network without a CBV output has no physics
term (see ``stnet_lib.network.physics_loss``), so the CBF-only and Tmax-only runs are trained
with physics weight 0 (their names and ``fig3_runs`` say so); the three-output run without the
physics term is the physics axis's ``w = 0`` point. :func:`ablation_summary` labels the axis's
points "three outputs" and "one output", and :func:`output_comparison` sets them side by side
per map.

Scoring: the HP metrics (reference Tmax > threshold in the brain) of CBV, CBF and Tmax on the
labelled test subjects; a single-output run is scored on its own map only. The network is run
only on the HP voxels and a margin of ``HP_MARGIN_VOXELS`` in-plane voxels around them, enough
for every 7×7 SSIM window centred in the HP, so that the HP metrics equal those of a
whole-brain prediction.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from .._validation import StnetInputError
from ..evaluation import evaluate_subject
from ..io import atomic_write
from ..manifest import load_manifest
from ..metrics import hypoperfusion_mask
from ..network.checkpoint import load_checkpoint
from ..network.cohort import Cohort, load_subjects, sample_epoch
from ..network.inference import predict_maps
from ..network.stnet import TARGET_NAMES, STNetConfig
from ..network.train import TrainConfig, fit
from ..profiles import Profile
from .data import (METRICS_CODE, NETWORK_CODE, code_key, content_key, digest, file_key, held_out_subjects,
                   subject_scan)
from .predictions import _training_key, time_grid, training_record

__all__ = ["AXES", "OUTPUTS_AXIS", "OUTPUT_LABELS", "AblationRun", "ablation_runs", "train_ablations",
           "score_ablations", "ablation_summary", "output_comparison", "HP_MARGIN_VOXELS"]

log = logging.getLogger(__name__)

#: Ablation axes: plan attribute → TrainConfig field.
AXES = {"strides": "stride", "ratios": "ratio", "learning_rates": "lr", "physics_weights": "physics_weight"}
#: The axis of the plan's ``outputs`` (a network setting, ``STNetConfig.outputs``, not a TrainConfig field).
OUTPUTS_AXIS = "outputs"
#: How :func:`ablation_summary` labels the outputs axis's points.
OUTPUT_LABELS = ("three outputs", "one output")
#: In-plane margin [voxels] predicted around the HP (half the 7×7 SSIM window).
HP_MARGIN_VOXELS = 3
_SCORED_MAPS = ("cbv", "cbf", "tmax")


@dataclass(frozen=True)
class AblationRun:
    """One training run of Fig. 3: its folder name, training settings (epochs set from the sample
    budget) and the maps its network regresses."""

    name: str
    config: TrainConfig
    outputs: tuple[str, ...] = TARGET_NAMES


def _name(cfg: TrainConfig) -> str:
    return f"stride{cfg.stride}_ratio{cfg.ratio:g}_lr{cfg.lr:g}_w{cfg.physics_weight:g}"


def _outputs_run(train: TrainConfig, value: str) -> AblationRun:
    """The run of the outputs axis's point ``value``: ``"all"`` or one map (physics weight 0 without CBV)."""
    if value == "all":
        return AblationRun(_name(train), train)
    cfg = train if value == "cbv" else dataclasses.replace(train, physics_weight=0.0)
    return AblationRun(f"{_name(cfg)}_{value}-only", cfg, (value,))


def ablation_runs(profile: Profile) -> tuple[list[AblationRun], pd.DataFrame]:
    """The distinct runs of the profile's plan and a table ``axis, value, run`` (each axis's points).

    The profile's own setting of an axis is shared by every axis (one run, not five); the
    outputs axis's values are ``"all"`` (that shared run) and map names (single-output runs).
    """
    runs, points = {}, []
    for plan_name, field in AXES.items():
        for value in getattr(profile.ablations, plan_name):
            cfg = dataclasses.replace(profile.train, **{field: type(getattr(profile.train, field))(value)})
            runs.setdefault(_name(cfg), AblationRun(_name(cfg), cfg))
            points.append({"axis": field, "value": value, "run": _name(cfg)})
    for value in profile.ablations.outputs:
        run = _outputs_run(profile.train, value)
        runs.setdefault(run.name, run)
        points.append({"axis": OUTPUTS_AXIS, "value": value, "run": run.name})
    return list(runs.values()), pd.DataFrame(points)


#: Bumped when the ablation runs' training data change (2: VOF correction as for the main model).
ABLATION_DATA_VERSION = 2


def _model_config(manifest_path, runs_dir) -> STNetConfig:
    """The main ST-Net's configuration (time grid, input normalisation, layers), target statistics reset."""
    best = Path(runs_dir) / "stnet" / "best.pt"
    if best.is_file():
        saved = STNetConfig.from_dict(dict(load_checkpoint(best)["config"]))
        return dataclasses.replace(saved, target_mean=None, target_std=None)
    n_frames, dt_s = time_grid(manifest_path)
    manifest = load_manifest(manifest_path)
    used = manifest[manifest["split"].isin(["train", "val"])]
    return STNetConfig(n_frames=n_frames, dt_s=dt_s, vof_correction=bool(used["vof_mask"].notna().any()))


def _cohorts(manifest_path, model_config: STNetConfig) -> tuple[Cohort, Cohort]:
    """Train and val subjects prepared exactly as for the main model (grid, normalisation, k_AV from the VOF)."""
    manifest = load_manifest(manifest_path)
    grid = {"n_frames": model_config.n_frames, "dt_s": model_config.dt_s,
            "normalisation": model_config.input_normalisation, "vof_correction": model_config.vof_correction}
    return tuple(Cohort(load_subjects(manifest, split, **grid), model_config.patch_size) for split in ("train", "val"))


def _run_model_config(base: STNetConfig, run: AblationRun) -> STNetConfig:
    """The main network's configuration with the run's outputs (one standardisation entry per output)."""
    return dataclasses.replace(base, outputs=run.outputs, target_mean=None, target_std=None)


def train_ablations(manifest_path, runs_dir, profile: Profile, *, device: str = "cpu") -> pd.DataFrame:
    """Train (or keep) every run of the plan; one row per run: ``run``, ``outputs``, settings, ``epochs``,
    ``seconds``, ``status``."""
    runs, _ = ablation_runs(profile)
    base_config = _model_config(manifest_path, runs_dir)
    cohorts, rows = None, []
    for run in runs:
        model_config = _run_model_config(base_config, run)
        out = Path(runs_dir) / "ablations" / run.name
        record = training_record(out)
        key = _training_key(manifest_path, dataclasses.replace(run.config, epochs=0, patience=0), model_config)
        key = digest(key, profile.ablations.samples, ABLATION_DATA_VERSION)
        status = "cached"
        if not (record.get("key") == key and record.get("complete") and (out / "best.pt").is_file()):
            cohorts = cohorts or _cohorts(manifest_path, base_config)
            record = _train_one(run, out, key, record, cohorts, model_config, profile.ablations.samples, device)
            status = "computed"
        rows.append({"run": run.name, "outputs": "+".join(run.outputs), "stride": run.config.stride,
                     "ratio": run.config.ratio, "lr": run.config.lr, "physics_weight": run.config.physics_weight,
                     "epochs": record["epochs"], "samples_per_epoch": record["samples_per_epoch"],
                     "seconds": record["seconds"], "status": status})
    return pd.DataFrame(rows)


def _train_one(run: AblationRun, out: Path, key: str, record: dict, cohorts, model_config, samples: int,
               device: str) -> dict:
    train, val = cohorts
    cfg = run.config
    per_epoch = len(sample_epoch(train, stride=cfg.stride, ratio=cfg.ratio, rng=np.random.default_rng([cfg.seed, 0]),
                                 boundary_fraction=cfg.boundary_fraction))
    epochs = max(1, int(round(samples / max(per_epoch, 1))))
    cfg = dataclasses.replace(cfg, epochs=epochs, patience=epochs)
    if out.exists() and record.get("key") != key:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    fit(train, val, model_config, cfg, out, resume=True, device=device, progress=False)
    record = {"key": key, "complete": True, "train_config": dataclasses.asdict(cfg), "epochs": epochs,
              "samples_per_epoch": per_epoch, "seconds": time.perf_counter() - start}
    with atomic_write(out / "train.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return record


def _subject_inputs(row: dict, threshold_s: float):
    scan = subject_scan(row)
    reference = {m: np.asarray(nib.load(row[m]).dataobj, dtype=np.float64) for m in _SCORED_MAPS}
    brain = scan.brain_mask
    hp = hypoperfusion_mask(reference["tmax"], threshold_s=threshold_s, mask=brain)
    margin = np.ones((2 * HP_MARGIN_VOXELS + 1,) * 2 + (1,), dtype=bool)
    return scan, reference, brain, hp, ndimage.binary_dilation(hp, structure=margin)


def _scored_subjects(manifest_path, limit: int | None) -> pd.DataFrame:
    """The labelled test subjects; for a cohort without lesion labels, the test subjects with a
    reference Tmax (their HP is reference Tmax > threshold all the same)."""
    rows = held_out_subjects(manifest_path, labelled=True, limit=limit)
    if rows.empty:
        rows = held_out_subjects(manifest_path)
        rows = rows[rows["tmax"].notna() & (rows["tmax"].astype(str) != "")] if "tmax" in rows else rows.iloc[:0]
        rows = rows.iloc[:limit] if limit is not None else rows
    if rows.empty:
        raise StnetInputError(f"{manifest_path} has no test subject with a reference Tmax map, on which the "
                              "ablations are scored: give test subjects a tmax column (and cbv, cbf)")
    return rows


def score_ablations(manifest_path, runs_dir, profile: Profile, *, device: str = "cpu") -> pd.DataFrame:
    """HP metrics of every ablation run on the labelled test subjects (per-subject rows, cached).

    A run is scored on the maps its network regresses (a single-output run on its own map only).

    Returns
    -------
    DataFrame
        :data:`stnet_lib.evaluation.RESULT_COLUMNS` (region ``HP`` only) plus ``run``.
    """
    runs, _ = ablation_runs(profile)
    rows = _scored_subjects(manifest_path, profile.ablations.n_subjects)
    checkpoints = {run.name: Path(runs_dir) / "ablations" / run.name / "best.pt" for run in runs}
    outputs = {run.name: run.outputs for run in runs}
    key = digest({k: file_key(v) for k, v in checkpoints.items()}, outputs, content_key(manifest_path),
                 dataclasses.asdict(profile.evaluation), list(rows["subject_id"]), code_key(*METRICS_CODE, *NETWORK_CODE))
    cache = Path(runs_dir) / "ablations" / "scores.csv"
    stamp = cache.with_suffix(".json")
    try:
        if json.loads(stamp.read_text()).get("key") == key:
            return pd.read_csv(cache, dtype={"subject_id": str})
    except (OSError, ValueError):
        pass
    tables = []
    for row in rows.to_dict("records"):
        scan, reference, brain, hp, region = _subject_inputs(row, profile.evaluation.threshold_s)
        ranges = {m: float(np.ptp(reference[m][brain])) for m in _SCORED_MAPS}
        for name, checkpoint in checkpoints.items():
            config = dataclasses.replace(profile.evaluation, maps=outputs[name], data_range=ranges)
            estimate = predict_maps(scan, checkpoint, device=device, region=region)
            table = evaluate_subject(reference, estimate, brain_mask=region & brain, spacing_mm=scan.zooms_mm,
                                     hp_mask=hp, evaluate_segmentation=False, subject_id=str(row["subject_id"]),
                                     method="stnet", config=config)
            tables.append(table[table["region"] == "HP"].assign(run=name))
    scores = pd.concat(tables, ignore_index=True)
    with atomic_write(cache) as tmp:
        scores.to_csv(tmp, index=False)
    with atomic_write(stamp) as tmp:
        tmp.write_text(json.dumps({"key": key}) + "\n")
    return scores


def ablation_summary(scores: pd.DataFrame, points: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over subjects of each run's HP metrics, one row per axis × value × map × metric.

    On the outputs axis the value is ``"three outputs"`` (the ``"all"`` point) or ``"one
    output"`` (a single-output run, which has rows for its own map only), so that each map has
    one row of each per metric.
    """
    stats = (scores.groupby(["run", "map", "metric"])["value"]
             .agg(mean="mean", std="std", n_valid="count").reset_index())
    points = points.assign(value=[OUTPUT_LABELS[value != "all"] if axis == OUTPUTS_AXIS else value
                                  for axis, value in zip(points["axis"], points["value"])])
    return points.merge(stats, on="run", how="left")


def output_comparison(summary: pd.DataFrame, metrics=("psnr", "ssim", "pcc", "nrmse")) -> pd.DataFrame:
    """One output against three, per map and metric: each side's mean and std over subjects, and the difference.

    Parameters
    ----------
    summary : DataFrame
        From :func:`ablation_summary` (only its outputs-axis rows are used).
    metrics : tuple of str
        HP metrics to keep, in this order.

    Returns
    -------
    DataFrame
        Columns ``map, metric, three outputs, three outputs std, one output, one output std,
        one − three, subjects``; one row per map (CBV, CBF, Tmax order) and metric that has
        both points.
    """
    three, one = OUTPUT_LABELS
    rows = summary[summary["axis"] == OUTPUTS_AXIS].set_index(["map", "metric", "value"])
    records = []
    for name in TARGET_NAMES:
        for metric in metrics:
            if (name, metric, three) not in rows.index or (name, metric, one) not in rows.index:
                continue
            a, b = rows.loc[(name, metric, three)], rows.loc[(name, metric, one)]
            records.append({"map": name, "metric": metric, three: a["mean"], f"{three} std": a["std"],
                            one: b["mean"], f"{one} std": b["std"], "one − three": b["mean"] - a["mean"],
                            "subjects": b["n_valid"]})
    return pd.DataFrame(records, columns=["map", "metric", three, f"{three} std", one, f"{one} std", "one − three",
                                          "subjects"])
