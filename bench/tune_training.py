"""Choose the quick profile's ST-Net training settings on the cohort's *validation* subjects (issue #16).

Each variant of ``VARIANTS`` changes the quick profile's :class:`~stnet_lib.network.train.TrainConfig`
in one or two fields, trains for ``--epochs`` epochs on the training split of ``data/quick`` and maps
the validation subjects; printed per variant: whole-brain SSIM (standard convention, the report's),
PCC and NRMSE of CBV, CBF and Tmax, Dice of Tmax > 6 s (median over the subjects), and the training
time. The test subjects are never used. Results and the choices made: docs/decisions/0072-*.md.

Usage: ``python bench/tune_training.py [--epochs 12] [--variants paper_sampling batch128 ...] [--out t.csv]``
(about 1.5 min per variant and 12 epochs on 2 idle cores; run ``stnet report --only cohort`` first).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd

from stnet_lib.evaluation import evaluate_manifest
from stnet_lib.experiments.predictions import pred_dir, predict_subjects
from stnet_lib.manifest import load_manifest
from stnet_lib.network.train import train_from_manifest
from stnet_lib.paths import DATA_DIR, RUNS_DIR
from stnet_lib.profiles import PROFILES

#: Name → TrainConfig fields changed from the quick profile's.
VARIANTS = {
    "profile": {},
    "batch512": {"batch_size": 512, "warmup_epochs": 0},
    "batch128": {"batch_size": 128},
    "batch128_boundary": {"batch_size": 128, "boundary_fraction": 0.25},
    "batch128_healthy_tmax": {"batch_size": 128, "tmax_scale": "healthy"},
    "batch128_both": {"batch_size": 128, "boundary_fraction": 0.25, "tmax_scale": "healthy"},
    "batch128_nophysics": {"batch_size": 128, "physics_weight": 0.0},
}
MAPS = ("cbv", "cbf", "tmax")


def run_variant(name: str, changes: dict, epochs: int, manifest: Path, runs: Path) -> dict:
    """Train one variant, map the validation subjects, and summarise their scores."""
    cfg = dataclasses.replace(PROFILES["quick"].train, epochs=epochs, patience=epochs, **changes)
    start = time.perf_counter()
    checkpoint = train_from_manifest(manifest, runs / name, cfg, device="cpu")
    seconds = time.perf_counter() - start
    table = load_manifest(manifest)
    val = table[table["split"] == "val"]
    predict_subjects(manifest, "stnet", runs / name, options={"checkpoint": str(checkpoint)}, rows=val)
    scores = evaluate_manifest(val, {name: pred_dir(runs / name, "stnet")}, split="val")
    scores = scores[(scores["convention"] == "standard") & (scores["status"] == "ok")]
    medians = scores.groupby(["map", "region", "metric"])["value"].median()
    row = {"variant": name, "train_s": round(seconds, 1)}
    for m in MAPS:
        for metric in ("ssim", "pcc", "nrmse"):
            row[f"{m}_{metric}"] = round(float(medians.get((m, "WB", metric), float("nan"))), 3)
    row["dice"] = round(float(scores[scores["metric"] == "dice"]["value"].median()), 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--manifest", type=Path, default=DATA_DIR / "quick" / "data_manifest.csv")
    parser.add_argument("--runs", type=Path, default=RUNS_DIR / "tune_training")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for name in args.variants:
        rows.append(run_variant(name, VARIANTS[name], args.epochs, args.manifest, args.runs))
        print(pd.DataFrame(rows).to_string(index=False), flush=True)
    if args.out:
        pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
