"""Stage 6 — the paper's Tables 1 and 2 on a cohort, with the paper's values beside ours.

Per-subject results come from :func:`stnet_lib.evaluation.evaluate_manifest`, cached under
``<runs_dir>/evaluation/`` and recomputed only when a method's maps, the manifest or the
settings change. Both conventions of PSNR/SSIM are computed: ``standard`` (documented masked
2-D SSIM, explicit data range) for our own tables, and ``paper`` (the authors' per-slice,
min–max, 1-D code) for the comparison with the paper's numbers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .. import paper
from ..evaluation import AGREEMENT_METRICS, EvaluationConfig, evaluate_manifest
from ..io import atomic_write
from ..manifest import load_manifest
from ..statistics import paired_tests, summarize
from .data import METRICS_CODE, code_key, content_key, digest
from .evaluation_tables import format_table
from .predictions import pred_dirs

__all__ = ["METHOD_LABELS", "TABLE1_METRICS", "evaluate_cached", "table2", "table2_beside_paper",
           "table1", "table1_tests"]

log = logging.getLogger(__name__)

#: Display names of the methods (the paper calls TTV "Fang").
METHOD_LABELS = {"stnet": "ST-Net", "ttv": "TTV (Fang)", "osvd": "oSVD", "csvd": "cSVD", "ssvd": "sSVD"}
#: Columns of Table 1, in the paper's order, then the ROC operating point.
TABLE1_METRICS = ("auc", "dice", "iou", "hd95_mm", "roc_threshold_s")
_TABLE1_LABELS = {"auc": "AUC", "dice": "Dice", "iou": "IoU", "hd95_mm": "HD95 [mm]",
                  "roc_threshold_s": "ROC-optimal threshold [s]"}


def _evaluation_key(manifest_path, runs_dir, methods, config, split, segmentation_reference) -> str:
    table = load_manifest(manifest_path)
    rows = table if split is None else table[table["split"] == split]
    keys = []
    for method, folder in pred_dirs(runs_dir, methods).items():
        for subject_id in rows["subject_id"]:
            try:
                keys.append(json.loads((folder / str(subject_id) / "maps.json").read_text())["params"].get("run_key"))
            except (OSError, ValueError):
                keys.append(None)
    return digest(list(methods), dataclasses.asdict(config), split, segmentation_reference,
                  content_key(manifest_path), keys, code_key(*METRICS_CODE))


def evaluate_cached(manifest_path, runs_dir, methods, *, config: EvaluationConfig = EvaluationConfig(),
                    split: str | None = "test", segmentation_reference: str = "tmax") -> pd.DataFrame:
    """Per-subject results (:data:`stnet_lib.evaluation.RESULT_COLUMNS`) of ``methods``' maps in ``runs_dir``.

    Cached as ``<runs_dir>/evaluation/<convention>-<segmentation_reference>.csv`` with its key
    in a ``.json`` beside it.
    """
    key = _evaluation_key(manifest_path, runs_dir, methods, config, split, segmentation_reference)
    stem = Path(runs_dir) / "evaluation" / f"{config.convention}-{segmentation_reference}"
    csv, stamp = stem.with_suffix(".csv"), stem.with_suffix(".json")
    try:
        if json.loads(stamp.read_text()).get("key") == key:
            return pd.read_csv(csv, dtype={"subject_id": str})
    except (OSError, ValueError):
        pass
    results = evaluate_manifest(load_manifest(manifest_path), pred_dirs(runs_dir, methods), config=config,
                                split=split, segmentation_reference=segmentation_reference)
    with atomic_write(csv) as tmp:
        results.to_csv(tmp, index=False)
    with atomic_write(stamp) as tmp:
        tmp.write_text(json.dumps({"key": key, "methods": list(methods)}) + "\n")
    return results


def _tests(results: pd.DataFrame, reference: str, others) -> pd.DataFrame | None:
    tests = [paired_tests(results, reference, other) for other in others if other in set(results["method"])]
    return pd.concat(tests, ignore_index=True) if tests else None


def table2(results: pd.DataFrame, methods, *, reference: str = "stnet") -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Table 2: map agreement "mean (std)" per region × map × metric and method, with paired p-values.

    Parameters
    ----------
    results : DataFrame
        Per-subject results of one convention.
    methods : sequence of str
        Methods to show, in column order; ``reference`` is tested against each other one.

    Returns
    -------
    (table, tests)
        The formatted table and the paired tests (None with a single method).
    """
    rows = results[results["metric"].isin(AGREEMENT_METRICS) & results["method"].isin(methods)]
    summary = summarize(rows)
    summary["method"] = pd.Categorical(summary["method"], categories=list(methods), ordered=True)
    summary = summary.sort_values("method", kind="stable")
    summary["method"] = summary["method"].astype(str).map(lambda m: METHOD_LABELS.get(m, m))
    tests = _tests(rows, reference, [m for m in methods if m != reference])
    if tests is not None:
        tests["comparison"] = tests["comparison"].replace(
            {f"{reference} vs {m}": f"{METHOD_LABELS.get(reference, reference)} vs {METHOD_LABELS.get(m, m)}"
             for m in methods})
    return format_table(summary, tests=tests), tests


def _mean(results: pd.DataFrame, method: str, region: str, name: str, metric: str) -> float:
    rows = results[(results["method"] == method) & (results["region"] == region) & (results["map"] == name)
                   & (results["metric"] == metric)]
    return float(rows["value"].mean()) if len(rows) else np.nan


def table2_beside_paper(paper_results: pd.DataFrame, standard_results: pd.DataFrame, methods) -> pd.DataFrame:
    """The paper's whole-brain SSIM and PSNR of ST-Net beside ours (means over test subjects).

    Columns: map, metric, the paper's ST-Net, then each method in the authors' convention, then
    ST-Net in the standard convention.
    """
    rows = []
    for name, values in paper.TABLE2_WB.items():
        for metric in ("ssim", "psnr"):
            row = {"map": name.upper(), "metric": "PSNR [dB]" if metric == "psnr" else "SSIM",
                   f"paper ST-Net (n={paper.TABLE2_N_SUBJECTS})": values[metric]}
            for method in methods:
                row[f"{METHOD_LABELS.get(method, method)} (paper convention)"] = _mean(paper_results, method, "WB",
                                                                                      name, metric)
            if "stnet" in methods:
                row["ST-Net (standard convention)"] = _mean(standard_results, "stnet", "WB", name, metric)
            rows.append(row)
    return pd.DataFrame(rows)


def table1(results: pd.DataFrame, methods) -> pd.DataFrame:
    """Table 1: segmentation metrics "mean (std)" per method, ours and the paper's beside.

    ``results`` should come from ``segmentation_reference="lesion_mask"`` (the labelled test
    subjects, as the paper's 18). The paper's row follows each of ST-Net and TTV.
    """
    seg = results[results["metric"].isin(TABLE1_METRICS) & results["method"].isin(methods)]
    summary = summarize(seg).set_index(["method", "metric"])
    rows = []
    for method in methods:
        if method not in set(seg["method"]):
            continue
        n = int(seg[seg["method"] == method]["subject_id"].nunique())
        row = {"method": METHOD_LABELS.get(method, method), "source": "ours", "subjects": n}
        row.update({_TABLE1_LABELS[m]: summary.loc[(method, m), "formatted"] if (method, m) in summary.index else "n/a"
                    for m in TABLE1_METRICS})
        rows.append(row)
        if method in paper.TABLE1:
            theirs = {"method": METHOD_LABELS[method], "source": "paper", "subjects": paper.TABLE1_N_SUBJECTS}
            theirs.update({_TABLE1_LABELS[m]: f"{paper.TABLE1[method][m]:.3f}" if m in paper.TABLE1[method] else ""
                           for m in TABLE1_METRICS})
            if method == "stnet":
                theirs[_TABLE1_LABELS["roc_threshold_s"]] = f"{paper.ROC_OPTIMAL_THRESHOLD_S:.3f}"
            rows.append(theirs)
    return pd.DataFrame(rows)


def table1_tests(results: pd.DataFrame, methods, *, reference: str = "stnet") -> pd.DataFrame:
    """Paired tests of ``reference`` against every other method on the Table 1 metrics."""
    seg = results[results["metric"].isin(TABLE1_METRICS) & results["method"].isin(methods)]
    tests = _tests(seg, reference, [m for m in methods if m != reference])
    if tests is None:
        return pd.DataFrame()
    columns = ["comparison", "metric", "n_pairs", "mean_a", "mean_b", "p_wilcoxon", "p_ttest", "p_wilcoxon_bh"]
    return tests[columns]
