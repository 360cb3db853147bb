"""Statistics over subjects of a per-subject results table (:data:`stnet_lib.evaluation.RESULT_COLUMNS`).

* :func:`summarize` — mean (std) over subjects of each method × map × region × metric, with the
  count of rows whose status is not ``ok``;
* :func:`paired_tests` — two methods on the same subjects: Wilcoxon signed-rank and paired
  t-test, Benjamini–Hochberg adjusted p-values alongside.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ._validation import StnetInputError

__all__ = ["summarize", "paired_tests", "benjamini_hochberg"]


def summarize(results: pd.DataFrame, *, decimals: int = 3) -> pd.DataFrame:
    """Mean (std) over subjects of each method × map × region × metric.

    Returns
    -------
    pandas.DataFrame
        Columns ``method, map, region, metric, convention, n, n_valid, mean, std, statuses,
        formatted``: ``n_valid`` counts the values (NaN excluded), ``std`` is the sample standard
        deviation (ddof = 1), ``statuses`` counts the rows whose status is not ``ok`` (e.g.
        ``"both_empty=2"``), ``formatted`` is the paper's "mean (std)" followed by those counts in
        brackets when there are any, so that every table shows what was excluded or substituted.
    """
    keys = ["method", "map", "region", "metric", "convention"]
    summary = results.groupby(keys, sort=False).agg(
        n=("value", "size"), n_valid=("value", "count"), mean=("value", "mean"), std=("value", "std"),
        statuses=("status", _status_counts)).reset_index()
    summary["formatted"] = [_mean_std(m, s, decimals) + (f" [{flags}]" if flags else "")
                            for m, s, flags in zip(summary["mean"], summary["std"], summary["statuses"], strict=True)]
    return summary


def paired_tests(results: pd.DataFrame, method_a: str, method_b: str) -> pd.DataFrame:
    """Paired tests of ``method_a`` against ``method_b`` over the subjects both have a value for.

    Returns
    -------
    pandas.DataFrame
        One row per map × region × metric: ``n_pairs`` (subjects with finite values for both),
        ``n_excluded``, ``mean_a``, ``mean_b`` (over the pairs), ``mean_difference`` (a − b),
        ``wilcoxon_statistic``, ``p_wilcoxon`` (:func:`scipy.stats.wilcoxon` on the differences
        rounded to 12 decimals, zero differences dropped), ``t_statistic``, ``p_ttest``
        (:func:`scipy.stats.ttest_rel`), and ``p_wilcoxon_bh``/``p_ttest_bh`` (Benjamini–Hochberg
        over the rows). p is NaN where a test
        is undefined (< 2 pairs, all differences 0, or constant differences for the t-test).

    Notes
    -----
    Wilcoxon (1945), doi:10.2307/3001968; Benjamini & Hochberg (1995),
    doi:10.1111/j.2517-6161.1995.tb02031.x. p-values of the exact/permutation Wilcoxon depend on
    the SciPy version (changed around 1.15); the version is written beside the tables.
    """
    keys = ["map", "region", "metric"]
    if results["convention"].nunique() > 1:
        raise StnetInputError("the results mix conventions: test the methods of one convention at a time")
    wide = (results[results["method"].isin([method_a, method_b])]
            .set_index(keys + ["subject_id", "method"])["value"].unstack("method"))
    for method in (method_a, method_b):
        if method not in wide:
            known = sorted(results["method"].unique())
            raise StnetInputError(f"method {method!r} is not in the results; methods: {known}")
    rows = [{**dict(zip(keys, key, strict=True)), **_paired(group[method_a].to_numpy(), group[method_b].to_numpy())}
            for key, group in wide.groupby(level=keys, sort=False)]
    table = pd.DataFrame(rows)
    table.insert(0, "comparison", f"{method_a} vs {method_b}")
    for column in ("p_wilcoxon", "p_ttest"):
        table[f"{column}_bh"] = benjamini_hochberg(table[column].to_numpy())
    return table


def _paired(a: np.ndarray, b: np.ndarray) -> dict:
    keep = np.isfinite(a) & np.isfinite(b)
    d = np.round(a[keep] - b[keep], 12)
    result = {"n_pairs": int(keep.sum()), "n_excluded": int((~keep).sum()),
              "mean_a": float(np.mean(a[keep])) if keep.any() else np.nan,
              "mean_b": float(np.mean(b[keep])) if keep.any() else np.nan,
              "mean_difference": float(np.mean(d)) if d.size else np.nan,
              "wilcoxon_statistic": np.nan, "p_wilcoxon": np.nan, "t_statistic": np.nan, "p_ttest": np.nan}
    if d.size >= 2 and np.any(d != 0):
        test = stats.wilcoxon(d)
        result.update(wilcoxon_statistic=float(test.statistic), p_wilcoxon=float(test.pvalue))
    if d.size >= 2 and np.ptp(d) > 0:
        test = stats.ttest_1samp(d, 0.0)  # = ttest_rel(a, b) on the kept pairs
        result.update(t_statistic=float(test.statistic), p_ttest=float(test.pvalue))
    return result


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values of ``p``; NaN entries stay NaN and are not counted."""
    adjusted = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        adjusted[finite] = stats.false_discovery_control(p[finite])
    return adjusted


def _status_counts(statuses: pd.Series) -> str:
    counts = statuses[statuses != "ok"].value_counts()
    return "; ".join(f"{status}={count}" for status, count in counts.items())


def _mean_std(mean: float, std: float, decimals: int) -> str:
    if np.isnan(mean):
        return "n/a"
    return f"{mean:.{decimals}f}" + ("" if np.isnan(std) else f" ({std:.{decimals}f})")
