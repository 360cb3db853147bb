"""The evaluation's tables as Markdown and CSV (``stnet evaluate`` and the report's Tables 1 and 2).

:func:`format_table` sets a summary (:func:`stnet_lib.statistics.summarize`) in the paper's
layout, :func:`to_markdown` renders it, :func:`write_tables` writes the per-subject table, the
summary, the paired tests and ``tables.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
import skimage
import sklearn

from ..constants import UNITS
from ..evaluation import AGREEMENT_METRICS, SEGMENTATION_METRICS, EvaluationConfig
from ..io import atomic_write
from ..reporting import markdown_table, save_markdown
from ..statistics import paired_tests, summarize

__all__ = ["format_table", "to_markdown", "write_tables"]

_LABELS = {"psnr": "PSNR [dB]", "ssim": "SSIM", "pcc": "PCC", "scc": "SCC", "nrmse": "NRMSE",
           "auc": "AUC", "dice": "Dice", "iou": "IoU", "hd95_mm": "HD95 [mm]",
           "roc_threshold_s": "ROC threshold [s]", "roc_tpr": "TPR at threshold",
           "roc_fpr": "FPR at threshold"}
_CONVENTION_NOTES = {
    "standard": "PSNR on region voxels, SSIM = scikit-image 2-D per-slice SSIM map (uniform 7×7, "
                "sample covariance) averaged over region voxels, explicit data range",
    "paper": "the authors' code: negatives → 0, per-slice min–max, 1-D PSNR (range 1) and SSIM "
             "(window 7, range 2) on region voxels, mean over slices with ≥ 8 region voxels",
}


def format_table(summary: pd.DataFrame, *, tests: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's layout: one row per region × map × metric, one "mean (std)" column per method.

    ``tests`` (from :func:`paired_tests`) adds the Wilcoxon and t-test p-values of that
    comparison as two more columns.
    """
    keys = ["region", "map", "metric"]
    if summary.empty:
        return pd.DataFrame(columns=keys)
    table = summary.pivot_table(index=keys, columns="method", values="formatted", aggfunc="first", sort=False)
    table.columns.name = None
    if tests is not None:
        for _, comparison in tests.groupby("comparison", sort=False):
            name = comparison["comparison"].iloc[0]
            p = comparison.set_index(keys)
            table[f"p Wilcoxon ({name})"] = p["p_wilcoxon"].reindex(table.index).map(_format_p)
            table[f"p t-test ({name})"] = p["p_ttest"].reindex(table.index).map(_format_p)
    table = table.reset_index()
    table["metric"] = [_LABELS.get(metric, metric) for metric in table["metric"]]
    return table


def to_markdown(table: pd.DataFrame, *, title: str = "", notes: Iterable[str] = ()) -> str:
    """A Markdown table (:func:`stnet_lib.reporting.markdown_table`) with a bold title and notes."""
    head = f"**{title}**\n\n" if title else ""
    return head + markdown_table(table) + "".join(f"\n- {note}" for note in notes) + "\n"


def write_tables(results: pd.DataFrame, out_dir: Path, *, config: EvaluationConfig = EvaluationConfig(),
                 comparisons: Iterable[tuple[str, str]] = ()) -> list[Path]:
    """Write ``per_subject.csv``, ``summary.csv``, ``paired_tests.csv`` and ``tables.md`` into ``out_dir``."""
    out_dir = Path(out_dir)
    summary = summarize(results)
    tests = [paired_tests(results, a, b) for a, b in comparisons]
    tests = pd.concat(tests, ignore_index=True) if tests else None
    files = {"per_subject.csv": results, "summary.csv": summary}
    if tests is not None:
        files["paired_tests.csv"] = tests
    written = []
    for name, frame in files.items():
        with atomic_write(out_dir / name) as tmp:
            frame.to_csv(tmp, index=False)
        written.append(out_dir / name)
    report = _markdown_report(summary, tests, config, results["subject_id"].nunique())
    return written + [save_markdown(report, out_dir / "tables.md")]


def _format_p(p: float) -> str:
    return "n/a" if np.isnan(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def _markdown_report(summary, tests, config: EvaluationConfig, n_subjects: int) -> str:
    agreement = summary[summary["metric"].isin(AGREEMENT_METRICS)]
    segmentation = summary[summary["metric"].isin(SEGMENTATION_METRICS)]
    notes = [f"convention: {config.convention} ({_CONVENTION_NOTES[config.convention]}); "
             f"{n_subjects} subjects; mean (std) over subjects, std with ddof = 1",
             f"WB = brain mask; HP = reference Tmax > {config.threshold_s:g} s inside the brain",
             "data range (standard PSNR/SSIM): "
             + (", ".join(f"{k} {v:g} {UNITS.get(k, '')}" for k, v in config.data_range.items())
                or "each subject's reference range in the brain"),
             "[status=k]: k subjects whose row is not ok (empty_region, undefined and both_empty "
             "rows have no value and are left out of the mean; reference_empty/estimate_empty rows "
             "count Dice = IoU = 0 and HD95 = the field-of-view diagonal [mm]; single_class: no ROC)",
             f"versions: scipy {scipy.__version__}, scikit-image {skimage.__version__}, "
             f"scikit-learn {sklearn.__version__}"]
    tests_a = tests[tests["metric"].isin(AGREEMENT_METRICS)] if tests is not None else None
    tests_s = tests[tests["metric"].isin(SEGMENTATION_METRICS)] if tests is not None else None
    return (to_markdown(format_table(agreement, tests=tests_a), title="Map agreement (Table 2)", notes=notes)
            + "\n" + to_markdown(format_table(segmentation, tests=tests_s),
                                 title=f"Tmax segmentation (Table 1), threshold {config.threshold_s:g} s",
                                 notes=notes[:1] + notes[3:]))
