"""Figures; every function returns a matplotlib Figure and never saves it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .constants import MAP_NAMES, UNITS

__all__ = ["plot_map_grid", "plot_curves", "DISPLAY_RANGES", "METHOD_COLOURS", "plot_residual_grid",
           "plot_hypoperfusion", "plot_metric_boxes", "plot_segmentation_boxes", "plot_learning_curve",
           "plot_ablation", "plot_output_ablation", "plot_timing", "plot_method_comparison", "plot_voxel_explorer",
           "plot_noise_study"]

#: Display ranges per map (those of clinical viewers: CBV 0–8, CBF 0–80, MTT 0–12, Tmax 0–12).
DISPLAY_RANGES = {"cbv": (0, 8), "cbf": (0, 80), "mtt": (0, 12), "tmax": (0, 12)}


def plot_map_grid(maps_by_row: dict, *, slice_index: int | None = None, names=MAP_NAMES, title: str = ""):
    """A grid of axial slices: one row per entry of ``maps_by_row`` (label → PerfusionMaps), one column per map."""
    rows = list(maps_by_row.items())
    figure, axes = plt.subplots(len(rows), len(names), figsize=(2.6 * len(names), 2.4 * len(rows)), squeeze=False)
    for r, (label, maps) in enumerate(rows):
        for c, name in enumerate(names):
            volume = getattr(maps, name)
            z = volume.shape[2] // 2 if slice_index is None else slice_index
            image = axes[r, c].imshow(np.rot90(volume[:, :, z]), cmap="magma" if name != "tmax" else "viridis",
                                      vmin=DISPLAY_RANGES[name][0], vmax=DISPLAY_RANGES[name][1])
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(f"{name.upper()} [{UNITS[name]}]", fontsize=9)
            if c == 0:
                axes[r, c].set_ylabel(label)
            figure.colorbar(image, ax=axes[r, c], fraction=0.046, pad=0.02)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_curves(time_s, curves: dict, *, ylabel: str = "concentration [mM]", title: str = "", ax=None):
    """Line plot of named curves against time [s]."""
    figure, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 3.2))
    for label, curve in curves.items():
        ax.plot(time_s, curve, label=label)
    ax.set_xlabel("time [s]")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    figure.tight_layout()
    return figure


# --- report figures (Fig. 2, Fig. 3, training, timing, exploration) ---------------------------

#: Colours of the methods, the same in every figure.
METHOD_COLOURS = {"stnet": "tab:red", "ttv": "tab:blue", "osvd": "tab:green", "csvd": "tab:olive",
                  "ssvd": "tab:gray", "reference": "black"}


def _middle(volume, slice_index):
    return volume.shape[2] // 2 if slice_index is None else slice_index


def _show(ax, image, **style):
    shown = ax.imshow(np.rot90(image), **style)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    return shown


def _map_style(name: str) -> dict:
    low, high = DISPLAY_RANGES.get(name, (None, None))
    return {"cmap": "viridis" if name == "tmax" else "magma", "vmin": low, "vmax": high}


def plot_residual_grid(reference: dict, estimates: dict, *, names=("cbv", "cbf", "tmax"),
                       slice_index: int | None = None, title: str = ""):
    """Fig. 2 a–c: one row per map; columns the reference, each estimate and its residual (estimate − reference).

    ``reference`` and each value of ``estimates`` (label → maps) map names to (x, y, z) arrays.
    Residuals share a symmetric diverging scale of half the map's display range.
    """
    labels = list(estimates)
    columns = 1 + 2 * len(labels)
    figure, axes = plt.subplots(len(names), columns, figsize=(2.6 * columns, 2.4 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        z = _middle(reference[name], slice_index)
        _show(axes[r, 0], reference[name][:, :, z], **_map_style(name))
        axes[r, 0].set_ylabel(f"{name.upper()} [{UNITS[name]}]")
        half = (DISPLAY_RANGES[name][1] - DISPLAY_RANGES[name][0]) / 2
        for k, label in enumerate(labels):
            estimate = estimates[label][name][:, :, z]
            _show(axes[r, 1 + k], estimate, **_map_style(name))
            _show(axes[r, 1 + len(labels) + k], estimate - reference[name][:, :, z], cmap="RdBu_r", vmin=-half, vmax=half)
            if r == 0:
                axes[r, 1 + k].set_title(label, fontsize=9)
                axes[r, 1 + len(labels) + k].set_title(f"{label} − reference", fontsize=9)
        if r == 0:
            axes[r, 0].set_title("reference", fontsize=9)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_hypoperfusion(tmax_by_label: dict, brain_mask, *, threshold_s: float = 6.0, slice_index: int | None = None,
                       title: str = ""):
    """Fig. 2 d: top row Tmax maps, bottom row the masks Tmax > ``threshold_s`` in the brain, one column per label.

    The first label is the reference; its mask's outline is drawn over every other mask.
    """
    labels = list(tmax_by_label)
    figure, axes = plt.subplots(2, len(labels), figsize=(2.8 * len(labels), 5.0), squeeze=False)
    z = _middle(brain_mask, slice_index)
    masks = {label: (np.nan_to_num(tmax, nan=0.0) > threshold_s) & brain_mask for label, tmax in tmax_by_label.items()}
    for c, label in enumerate(labels):
        _show(axes[0, c], tmax_by_label[label][:, :, z], **_map_style("tmax"))
        axes[0, c].set_title(f"{label}: Tmax [s]", fontsize=9)
        axes[1, c].imshow(np.rot90(masks[label][:, :, z] + 0.3 * brain_mask[:, :, z]), cmap="gray", vmin=0, vmax=1.3)
        axes[1, c].contour(np.rot90(masks[labels[0]][:, :, z]).astype(float), levels=[0.5], colors="tab:red", linewidths=0.8)
        axes[1, c].set_title(f"Tmax > {threshold_s:g} s", fontsize=9)
        axes[1, c].set_xticks([])
        axes[1, c].set_yticks([])
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_metric_boxes(results, *, metrics, methods, regions=("WB", "HP"), maps=("cbv", "cbf", "tmax"),
                      labels: dict | None = None, title: str = ""):
    """Fig. 2 e: box plots of per-subject values, one panel per region × metric, maps on x, one box per method.

    ``results`` has the columns of :data:`stnet_lib.evaluation.RESULT_COLUMNS`.
    """
    import seaborn as sns

    labels = labels or {}
    rows = results[results["method"].isin(methods) & results["map"].isin(maps) & results["region"].isin(regions)
                   & results["metric"].isin(metrics)].dropna(subset=["value"])
    rows = rows.assign(method=rows["method"].map(lambda m: labels.get(m, m)))
    order = [labels.get(m, m) for m in methods]
    palette = {labels.get(m, m): METHOD_COLOURS.get(m, "tab:purple") for m in methods}
    figure, axes = plt.subplots(len(regions), len(metrics), figsize=(3.2 * len(metrics), 2.8 * len(regions)),
                                squeeze=False)
    for r, region in enumerate(regions):
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            data = rows[(rows["region"] == region) & (rows["metric"] == metric)]
            if len(data):
                sns.boxplot(data=data, x="map", y="value", hue="method", order=list(maps), hue_order=order,
                            palette=palette, ax=ax, fliersize=2, linewidth=0.8)
            ax.set_title(f"{region}: {metric.upper()}", fontsize=9)
            ax.set_xlabel("")
            ax.set_ylabel("")
            if ax.get_legend() is not None and (r, c) != (0, len(metrics) - 1):
                ax.get_legend().remove()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_segmentation_boxes(results, *, methods, metrics=("auc", "dice", "iou", "hd95_mm"),
                            labels: dict | None = None, title: str = ""):
    """Fig. 2 f: box plots of the per-subject segmentation metrics, one panel per metric, one box per method."""
    labels = labels or {}
    rows = results[(results["map"] == "tmax") & results["metric"].isin(metrics)].dropna(subset=["value"])
    figure, axes = plt.subplots(1, len(metrics), figsize=(2.8 * len(metrics), 3.0), squeeze=False)
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
        ax.set_title(metric.replace("_mm", " [mm]").upper(), fontsize=9)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_learning_curve(curve, *, title: str = ""):
    """Training and validation loss (eq. 9) per epoch, and the physics term, from ``learning_curve.csv``."""
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for column, style in (("train_loss", "-"), ("val_loss", "--")):
        axes[0].plot(curve["epoch"], curve[column], style, label=column.replace("_", " "))
    for column, style in (("train_physics", "-"), ("val_physics", "--")):
        axes[1].plot(curve["epoch"], curve[column], style, label=column.replace("_", " "))
    axes[0].set_ylabel("loss (eq. 9)")
    axes[1].set_ylabel("physics term [mM·s]")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_ablation(summary, *, metrics=("ssim", "psnr", "pcc"), maps=("cbv", "cbf", "tmax"), title: str = ""):
    """Fig. 3: HP metric (mean ± std over subjects) against each ablation axis, one line per map.

    ``summary`` has the columns ``axis, value, map, metric, mean, std``
    (:func:`stnet_lib.experiments.ablations.ablation_summary`).
    """
    axes_names = list(dict.fromkeys(summary["axis"]))
    figure, axes = plt.subplots(len(metrics), len(axes_names), figsize=(3.0 * len(axes_names), 2.5 * len(metrics)),
                                squeeze=False)
    for c, axis in enumerate(axes_names):
        for r, metric in enumerate(metrics):
            ax = axes[r, c]
            for name in maps:
                rows = summary[(summary["axis"] == axis) & (summary["metric"] == metric) & (summary["map"] == name)]
                rows = rows.sort_values("value")
                positions = np.arange(len(rows))
                ax.errorbar(positions, rows["mean"], yerr=rows["std"].fillna(0), marker="o", capsize=3, label=name.upper())
                ax.set_xticks(positions, [f"{v:g}" for v in rows["value"]])
            ax.set_xlabel(axis.replace("_", " ") if r == len(metrics) - 1 else "")
            ax.set_ylabel(f"HP {metric.upper()}" if c == 0 else "")
    axes[0, -1].legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_output_ablation(summary, *, metrics=("ssim", "psnr", "pcc"), maps=("cbv", "cbf", "tmax"),
                         labels=("three outputs", "one output"), title: str = ""):
    """Fig. 3, one output against three: per map, the HP metric (mean ± std over subjects) of each.

    ``summary`` has the columns ``axis, value, map, metric, mean, std``
    (:func:`stnet_lib.experiments.ablations.ablation_summary`); its rows of axis ``outputs``
    are drawn as grouped bars, one group per map, one bar per label of ``labels``.
    """
    rows = summary[summary["axis"] == "outputs"]
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 2.8), squeeze=False)
    width = 0.8 / len(labels)
    positions = np.arange(len(maps))
    for ax, metric in zip(axes[0], metrics):
        for k, label in enumerate(labels):
            picked = rows[(rows["metric"] == metric) & (rows["value"] == label)].set_index("map")
            picked = picked.reindex(list(maps))
            ax.bar(positions + (k - (len(labels) - 1) / 2) * width, picked["mean"], width,
                   yerr=picked["std"].fillna(0), capsize=3, label=label)
        ax.set_xticks(positions, [m.upper() for m in maps])
        ax.set_ylabel(f"HP {metric.upper()}")
    axes[0, -1].legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_timing(table, *, labels: dict | None = None, title: str = ""):
    """Seconds per 10,000 voxels per method (log scale): ours as bars, the paper's as black marks."""
    labels = labels or {}
    figure, ax = plt.subplots(figsize=(1.2 * len(table) + 2.5, 3.2))
    positions = np.arange(len(table))
    ax.bar(positions, table["seconds_per_10k_voxels"], color=[METHOD_COLOURS.get(m, "tab:purple") for m in table["method"]],
           alpha=0.7, label="ours")
    paper_values = table["paper_seconds_per_10k_voxels"].to_numpy(dtype=float)
    if np.isfinite(paper_values).any():
        ax.plot(positions, paper_values, "k_", markersize=25, mew=2, label="paper (A100)")
    ax.set_xticks(positions, [labels.get(m, m) for m in table["method"]])
    ax.set_yscale("log")
    ax.set_ylabel("s per 10,000 voxels")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


def plot_noise_study(summary, *, labels: dict | None = None, title: str = ""):
    """Errors against SNR per method: CBF RMSE against the truth, the noise-induced CBF RMSE, Tmax MAE.

    ``summary``: :func:`stnet_lib.deconvolution.tuning.noise_study_summary` (columns ``snr``,
    ``method``, ``cbf_rmse``, ``noise_cbf_rmse``, ``tmax_mae_s``).
    """
    labels = labels or {}
    panels = (("cbf_rmse", "CBF RMSE against the truth\n[ml/100g/min]"),
              ("noise_cbf_rmse", "CBF change caused by the noise\n(RMSE against noise-free) [ml/100g/min]"),
              ("tmax_mae_s", "Tmax mean absolute error\nagainst the truth [s]"))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.4))
    for ax, (column, ylabel) in zip(axes, panels):
        for method, rows in summary.groupby("method", sort=False):
            rows = rows.sort_values("snr")
            ax.plot(rows["snr"], rows[column], "o-", color=METHOD_COLOURS.get(method, "tab:purple"),
                    label=labels.get(method, method))
        ax.set_xscale("log")
        snrs = np.sort(summary["snr"].unique())
        ax.set_xticks(snrs, [f"{value:g}" for value in snrs])
        ax.minorticks_off()
        ax.set_xlabel("SNR (median brain S0 / σ)")
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


def plot_method_comparison(reference: dict, estimates: dict, name: str, *, slice_index: int | None = None,
                           title: str = ""):
    """One map of every method: a row per method (its map and its difference from the reference).

    The first row shows the reference map. ``estimates`` is label → maps (name → (x, y, z) array).
    """
    labels = list(estimates)
    figure, axes = plt.subplots(1 + len(labels), 2, figsize=(5.6, 2.4 * (1 + len(labels))), squeeze=False)
    z = _middle(reference[name], slice_index)
    half = (DISPLAY_RANGES[name][1] - DISPLAY_RANGES[name][0]) / 2
    _show(axes[0, 0], reference[name][:, :, z], **_map_style(name))
    axes[0, 0].set_ylabel("reference")
    axes[0, 1].axis("off")
    for r, label in enumerate(labels, start=1):
        _show(axes[r, 0], estimates[label][name][:, :, z], **_map_style(name))
        _show(axes[r, 1], estimates[label][name][:, :, z] - reference[name][:, :, z], cmap="RdBu_r", vmin=-half, vmax=half)
        axes[r, 0].set_ylabel(label)
    axes[0, 0].set_title(f"{name.upper()} [{UNITS[name]}]", fontsize=9)
    axes[1, 1].set_title("− reference", fontsize=9)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_voxel_explorer(image, curves_of, voxel, *, time_s, slice_index: int | None = None, name: str = "tmax",
                        title: str = ""):
    """A slice of ``image`` (left) and the curves of one voxel (right); clicking a voxel shows its curves.

    Parameters
    ----------
    image : ndarray, shape (x, y, z)
        The map to click on (shown like every map here: ``np.rot90`` of an axial slice).
    curves_of : callable
        ``curves_of((x, y, z))`` → label → curve (t,); may raise ``ValueError`` for a voxel
        outside the brain (the click is then ignored).
    voxel : tuple of int
        The voxel shown first (marked with a cross).
    time_s : ndarray, shape (t,)
    slice_index : int, optional
        Axial slice (default: the voxel's).
    name : str
        The map's name, for its display range and title.

    Notes
    -----
    Clicking needs an interactive backend: in JupyterLab ``%matplotlib widget`` (the ``ipympl``
    package); with the inline backend the figure shows ``voxel`` only.
    """
    z = voxel[2] if slice_index is None else slice_index
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    _show(left, image[:, :, z], **_map_style(name))
    left.set_title(f"{name.upper()} [{UNITS.get(name, '')}], slice {z}: click a voxel", fontsize=9)
    marker, = left.plot([], [], "w+", markersize=12, mew=2)

    def draw(point):
        curves = curves_of(point)
        right.clear()
        plot_curves(time_s, curves, ax=right, title=f"voxel {tuple(int(v) for v in point)}")
        marker.set_data([point[0]], [image.shape[1] - 1 - point[1]])
        figure.canvas.draw_idle()

    def clicked(event):
        if event.inaxes is not left or event.xdata is None:
            return
        point = (int(round(event.xdata)), image.shape[1] - 1 - int(round(event.ydata)), z)
        if 0 <= point[0] < image.shape[0] and 0 <= point[1] < image.shape[1]:
            try:
                draw(point)
            except ValueError:
                pass  # outside the brain

    draw(tuple(voxel))
    figure.canvas.mpl_connect("button_press_event", clicked)
    if title:
        figure.suptitle(title)
    return figure
