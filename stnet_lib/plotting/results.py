"""Figures of results: Fig. 2 e–f box plots, Fig. 3 ablations, training, timing, noise study, OSIPI's DRO."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from ..paper import TIMING_DEVICE
from ._style import AXIS_LABELS, MAP_LABELS, METHOD_COLOURS, METRIC_LABELS, REGION_LABELS, _finish

__all__ = ["plot_metric_boxes", "plot_segmentation_boxes", "plot_learning_curve", "plot_ablation",
           "plot_output_ablation", "plot_timing", "plot_noise_study", "plot_osipi", "plot_bland_altman",
           "plot_tmax_by_delay"]

def plot_metric_boxes(results, *, metrics, methods, regions=("WB", "HP"), maps=("cbv", "cbf", "tmax"),
                      labels: dict | None = None, title: str = "Agreement of each map with the reference, per subject"):
    """Fig. 2 e: box plots of per-subject values, one panel per region × metric, maps on x, one box per method.

    ``results`` has the columns of :data:`stnet_lib.evaluation.RESULT_COLUMNS`.
    """
    labels = labels or {}
    rows = results[results["method"].isin(methods) & results["map"].isin(maps) & results["region"].isin(regions)
                   & results["metric"].isin(metrics)].dropna(subset=["value"])
    figure, axes = plt.subplots(len(regions), len(metrics), figsize=(3.2 * len(metrics), 2.9 * len(regions) + 0.4),
                                squeeze=False)
    for r, region in enumerate(regions):
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            _grouped_boxes(ax, rows[(rows["region"] == region) & (rows["metric"] == metric)], methods, maps)
            ax.set_xticks(range(len(maps)), [MAP_LABELS.get(m, m) for m in maps])
            ax.set_title(REGION_LABELS.get(region, region), fontsize=9)
            ax.set_xlabel("map")
            ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    handles = [Patch(facecolor=METHOD_COLOURS.get(m, "tab:purple"), alpha=0.7, label=labels.get(m, m)) for m in methods]
    axes[0, -1].legend(handles=handles, fontsize=8)
    return _finish(figure, title)


def _grouped_boxes(ax, rows, methods, maps) -> None:
    """One box per method beside each other at each map's position (0, 1, ...)."""
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        values = [rows[(rows["method"] == method) & (rows["map"] == m)]["value"].to_numpy() for m in maps]
        present = [i for i, v in enumerate(values) if len(v)]
        if not present:
            continue
        boxes = ax.boxplot([values[i] for i in present], positions=np.array(present) + (k - (len(methods) - 1) / 2) * width,
                           widths=0.9 * width, patch_artist=True, manage_ticks=False, flierprops={"markersize": 2},
                           medianprops={"color": "black"})
        for patch in boxes["boxes"]:
            patch.set_facecolor(METHOD_COLOURS.get(method, "tab:purple"))
            patch.set_alpha(0.7)


def plot_segmentation_boxes(results, *, methods, metrics=("auc", "dice", "iou", "hd95_mm"),
                            labels: dict | None = None, title: str = "Hypoperfused area (Tmax > 6 s) against the "
                                                                      "reference lesion, per subject"):
    """Fig. 2 f: box plots of the per-subject segmentation metrics, one panel per metric, one box per method."""
    labels = labels or {}
    rows = results[(results["map"] == "tmax") & results["metric"].isin(metrics)].dropna(subset=["value"])
    figure, axes = plt.subplots(1, len(metrics), figsize=(2.9 * len(metrics), 3.4), squeeze=False)
    for c, metric in enumerate(metrics):
        ax = axes[0, c]
        present = [m for m in methods if ((rows["method"] == m) & (rows["metric"] == metric)).any()]
        values = [rows[(rows["method"] == m) & (rows["metric"] == metric)]["value"].to_numpy() for m in present]
        if values:
            boxes = ax.boxplot(values, patch_artist=True, widths=0.6)
            for patch, method in zip(boxes["boxes"], present, strict=True):
                patch.set_facecolor(METHOD_COLOURS.get(method, "tab:purple"))
                patch.set_alpha(0.6)
            ax.set_xticks(range(1, len(present) + 1), [labels.get(m, m) for m in present], rotation=30, fontsize=8)
        ax.set_xlabel("method")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    return _finish(figure, title)


def plot_learning_curve(curve, *, title: str = "ST-Net training"):
    """Training and validation loss (eq. 9) per epoch, and the physics term, from ``learning_curve.csv``."""
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, (kind, ylabel) in zip(axes, (("loss", "loss (eq. 9)"), ("physics", "physics term [mM·s]"))):
        for split, style in (("train", "-"), ("val", "--")):
            ax.plot(curve["epoch"], curve[f"{split}_{kind}"], style, label=f"{split} {kind}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    return _finish(figure, title)


def plot_ablation(summary, *, metrics=("ssim", "psnr", "pcc"), maps=("cbv", "cbf", "tmax"),
                  title: str = "ST-Net ablations: accuracy in the hypoperfused area (HP)"):
    """Fig. 3: HP metric (mean ± std over subjects) against each ablation axis, one line per map.

    ``summary`` has the columns ``axis, value, map, metric, mean, std``
    (:func:`stnet_lib.experiments.ablations.ablation_summary`).
    """
    axes_names = list(dict.fromkeys(summary["axis"]))
    figure, axes = plt.subplots(len(metrics), len(axes_names), figsize=(3.2 * len(axes_names), 2.6 * len(metrics) + 0.4),
                                squeeze=False)
    for c, axis in enumerate(axes_names):
        for r, metric in enumerate(metrics):
            ax = axes[r, c]
            for name in maps:
                rows = summary[(summary["axis"] == axis) & (summary["metric"] == metric) & (summary["map"] == name)]
                rows = rows.sort_values("value")
                positions = np.arange(len(rows))
                ax.errorbar(positions, rows["mean"], yerr=rows["std"].fillna(0), marker="o", capsize=3,
                            label=MAP_LABELS.get(name, name))
                ax.set_xticks(positions, [f"{v:g}" for v in rows["value"]])
            ax.set_xlabel(AXIS_LABELS.get(axis, axis.replace("_", " ")), fontsize=9)
            ax.set_ylabel(f"HP {METRIC_LABELS.get(metric, metric)}", fontsize=9)
    axes[0, -1].legend(fontsize=8)
    return _finish(figure, title)


def plot_output_ablation(summary, *, metrics=("ssim", "psnr", "pcc"), maps=("cbv", "cbf", "tmax"),
                         labels=("three outputs", "one output"),
                         title: str = "ST-Net with one output against three: accuracy in the hypoperfused area (HP)"):
    """Fig. 3, one output against three: per map, the HP metric (mean ± std over subjects) of each.

    ``summary`` has the columns ``axis, value, map, metric, mean, std``
    (:func:`stnet_lib.experiments.ablations.ablation_summary`); its rows of axis ``outputs``
    are drawn as grouped bars, one group per map, one bar per label of ``labels``.
    """
    rows = summary[summary["axis"] == "outputs"]
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), squeeze=False)
    width = 0.8 / len(labels)
    positions = np.arange(len(maps))
    for ax, metric in zip(axes[0], metrics):
        for k, label in enumerate(labels):
            picked = rows[(rows["metric"] == metric) & (rows["value"] == label)].set_index("map")
            picked = picked.reindex(list(maps))
            ax.bar(positions + (k - (len(labels) - 1) / 2) * width, picked["mean"], width,
                   yerr=picked["std"].fillna(0), capsize=3, label=label)
        ax.set_xticks(positions, [MAP_LABELS.get(m, m) for m in maps])
        ax.set_xlabel("map")
        ax.set_ylabel(f"HP {METRIC_LABELS.get(metric, metric)}")
    axes[0, -1].legend(fontsize=8)
    return _finish(figure, title)


def plot_timing(table, *, labels: dict | None = None, title: str = "Time per 10,000 brain voxels"):
    """Seconds per 10,000 voxels per method (log scale), ours and the paper's in separate panels.

    Left: ours, measured on the device(s) of ``table["device"]``; right: the paper's, as it reports
    them for its GPU (:data:`stnet_lib.paper.TIMING_DEVICE`). Two machines never share one panel.
    """
    labels = labels or {}
    paper = table[np.isfinite(table["paper_seconds_per_10k_voxels"].to_numpy(dtype=float))]
    figure, axes = plt.subplots(1, 2, figsize=(1.1 * (len(table) + len(paper)) + 3.5, 3.6), sharey=True,
                                gridspec_kw={"width_ratios": [len(table), max(len(paper), 1)]})
    panels = ((axes[0], table, "seconds_per_10k_voxels", f"ours, measured: {', '.join(dict.fromkeys(table['device']))}"),
              (axes[1], paper, "paper_seconds_per_10k_voxels", f"paper, reported: {TIMING_DEVICE} GPU"))
    for ax, rows, column, panel_title in panels:
        positions = np.arange(len(rows))
        ax.bar(positions, rows[column], color=[METHOD_COLOURS.get(m, "tab:purple") for m in rows["method"]], alpha=0.7)
        ax.set_xticks(positions, [labels.get(m, m) for m in rows["method"]], rotation=20, fontsize=8)
        ax.set_title(panel_title, fontsize=8)
        ax.set_xlabel("method")
        ax.set_ylabel("time per 10,000 voxels [s]")
    axes[0].set_yscale("log")
    return _finish(figure, title)


def plot_noise_study(summary, *, labels: dict | None = None, title: str = "Errors of each deconvolution method against the SNR"):
    """Errors against SNR per method: CBF RMSE against the truth, the noise-induced CBF RMSE, Tmax MAE.

    ``summary``: :func:`stnet_lib.experiments.noise_study.noise_study_summary` (columns ``snr``,
    ``method``, ``cbf_rmse``, ``noise_cbf_rmse``, ``tmax_mae_s``).
    """
    labels = labels or {}
    panels = (("cbf_rmse", "CBF RMSE against the truth\n[ml/100g/min]"),
              ("noise_cbf_rmse", "CBF change caused by the noise\n(RMSE against noise-free) [ml/100g/min]"),
              ("tmax_mae_s", "Tmax mean absolute error\nagainst the truth [s]"))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.6))
    snrs = np.sort(summary["snr"].unique())
    for ax, (column, ylabel) in zip(axes, panels):
        for method, rows in summary.groupby("method", sort=False):
            rows = rows.sort_values("snr")
            ax.plot(rows["snr"], rows[column], "o-", color=METHOD_COLOURS.get(method, "tab:purple"),
                    label=labels.get(method, method))
        ax.set_xscale("log")
        ax.set_xticks(snrs, [f"{value:g}" for value in snrs])
        ax.minorticks_off()
        ax.set_xlabel("SNR (median brain S0 / σ)")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    return _finish(figure, title)


def plot_osipi(results, *, labels: dict | None = None,
               title: str = "OSIPI DSC digital reference object: estimates against the reference"):
    """Estimated against reference CBF and CBV of each case of OSIPI's DRO, one colour per method.

    ``results``: :func:`stnet_lib.experiments.validation.osipi_results` (columns ``method``,
    ``cbf_ref``, ``cbf``, ``cbv_ref``, ``cbv``), in OSIPI's convention (k_H = ρ = 1: ml/100ml).
    CBV points are spread a little along x per method so that they do not hide each other.
    """
    labels = labels or {}
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    methods = list(dict.fromkeys(results["method"]))
    for k, (method, group) in enumerate(results.groupby("method", sort=False)):
        style = {"color": METHOD_COLOURS.get(method, "tab:purple"), "label": labels.get(method, method), "alpha": 0.7}
        axes[0].plot(group["cbf_ref"], group["cbf"], "o", **style)
        axes[1].plot(group["cbv_ref"] + 0.05 * (k - (len(methods) - 1) / 2), group["cbv"], "o", **style)
    for ax, quantity, unit in ((axes[0], "CBF", "ml/100ml/min"), (axes[1], "CBV", "ml/100ml")):
        top = float(np.nanmax(results[[f"{quantity.lower()}_ref", quantity.lower()]].to_numpy())) * 1.05
        ax.plot([0, top], [0, top], "k--", lw=1, label="identity")
        ax.set_xlabel(f"reference {quantity} [{unit}]")
        ax.set_ylabel(f"estimated {quantity} [{unit}]")
        ax.legend(fontsize=8)
    return _finish(figure, title)


def plot_tmax_by_delay(summary, *, labels: dict | None = None,
                       title: str = "OSIPI's cases with the AIF moved later: Tmax against its truth"):
    """Median estimated Tmax against the true Tmax (−AIF delay), one line per method, with the identity.

    ``summary``: :func:`stnet_lib.experiments.validation.osipi_tmax_by_delay_summary`.
    """
    labels = labels or {}
    figure, ax = plt.subplots(figsize=(5.2, 4.0))
    for method, group in summary.groupby("method", sort=False):
        group = group.sort_values("truth_s")
        ax.plot(group["truth_s"], group["median_tmax_s"], "o-", color=METHOD_COLOURS.get(method, "tab:purple"),
                label=labels.get(method, method))
    low, high = float(summary["truth_s"].min()) - 0.5, float(summary["truth_s"].max()) + 0.5
    ax.plot([low, high], [low, high], "k--", lw=1, label="identity")
    ax.set_xlabel("true Tmax [s] (AIF moved later by as much)")
    ax.set_ylabel(f"estimated Tmax, median of {int(summary['cases'].max())} cases [s]")
    ax.legend(fontsize=8)
    return _finish(figure, title)


#: Bland–Altman panels: quantity key → (panel name, unit; "" for a ratio).
BLAND_ALTMAN_QUANTITIES = {"tmax_gt_6s_ml": ("Tmax > 6 s", "ml"), "tmax_gt_10s_ml": ("Tmax > 10 s", "ml"),
                           "hir": ("HIR", "")}


def _bland_altman_panel(ax, pairs, stats, colour) -> None:
    """Differences against means, the bias (solid) and the limits of agreement (dashed) with their values."""
    ax.axhline(0.0, color="grey", lw=0.8, ls=":")
    ax.plot(pairs["mean"], pairs["difference"], "o", color=colour, alpha=0.7, markersize=4)
    if stats is None or not np.isfinite(stats["bias"]):
        ax.text(0.5, 0.5, "no pairs", transform=ax.transAxes, ha="center")
        return
    lines = [("bias", stats["bias"], "-")]
    if np.isfinite(stats["sd"]):
        lines += [("+1.96 SD", stats["loa_high"], "--"), ("−1.96 SD", stats["loa_low"], "--")]
    for name, value, style in lines:
        ax.axhline(value, color="black", lw=1, ls=style)
        ax.annotate(f"{name} {value:.3g}", (1.0, value), xycoords=("axes fraction", "data"), ha="right",
                    va="bottom", fontsize=7)
    shown = np.concatenate([pairs["difference"].to_numpy(dtype=float), [0.0], [v for _, v, _ in lines]])
    low, high = float(np.min(shown)), float(np.max(shown))
    pad = 0.15 * (high - low) if high > low else 1.0
    ax.set_ylim(low - pad, high + pad)


def plot_bland_altman(volumes, agreement, *, methods, quantities=tuple(BLAND_ALTMAN_QUANTITIES),
                      labels: dict | None = None,
                      title: str = "Hypoperfusion volumes against the truth (Bland–Altman)"):
    """One row per method, one panel per quantity: estimate − truth against their mean, per subject.

    ``volumes``: :func:`stnet_lib.experiments.volumes.subject_volumes` (columns ``method``,
    ``quantity``, ``mean``, ``difference``); ``agreement``: :func:`~stnet_lib.experiments.volumes.
    volume_agreement` (``bias``, ``sd``, ``loa_low``, ``loa_high`` per method and quantity), drawn
    as the bias line and the bias ± 1.96 SD lines.
    """
    labels = labels or {}
    figure, axes = plt.subplots(len(methods), len(quantities), figsize=(3.6 * len(quantities),
                                                                         2.7 * len(methods) + 0.5), squeeze=False)
    for r, method in enumerate(methods):
        for c, quantity in enumerate(quantities):
            ax, (name, unit) = axes[r, c], BLAND_ALTMAN_QUANTITIES.get(quantity, (quantity, ""))
            picked = (agreement["method"] == method) & (agreement["quantity"] == quantity)
            stats = agreement[picked].iloc[0] if picked.any() else None
            pairs = volumes[(volumes["method"] == method) & (volumes["quantity"] == quantity)].dropna(
                subset=["mean", "difference"])
            _bland_altman_panel(ax, pairs, stats, METHOD_COLOURS.get(method, "tab:purple"))
            bracket = f" [{unit}]" if unit else ""
            ax.set_title(f"{labels.get(method, method)}: {name}", fontsize=9)
            ax.set_xlabel(f"mean of estimate and truth{bracket}", fontsize=8)
            ax.set_ylabel(f"estimate − truth{bracket}", fontsize=8)
    return _finish(figure, title)
