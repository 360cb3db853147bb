"""Figures of maps and curves: map grids, residuals, hypoperfusion masks, the voxel explorer."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..constants import MAP_NAMES, UNITS
from ._style import MAP_LABELS, _difference_style, _finish, _map_style, _middle, _show, map_label

__all__ = ["plot_map_grid", "plot_residual_grid", "plot_hypoperfusion", "plot_method_comparison", "plot_curves",
           "plot_voxel_explorer"]


def plot_map_grid(maps_by_row: dict, *, slice_index: int | None = None, names=MAP_NAMES, title: str = "Perfusion maps",
                  ranges: dict | None = None):
    """A grid of axial slices: one row per entry of ``maps_by_row`` (label → PerfusionMaps), one column per map.

    ``ranges`` (name → (low, high), in the map's unit) replaces a map's clinical display range, e.g. a
    Tmax scale that reaches below 0 s for an AIF the tissue leads (decision 0079).
    """
    rows = list(maps_by_row.items())
    figure, axes = plt.subplots(len(rows), len(names), figsize=(2.6 * len(names), 2.4 * len(rows) + 0.4), squeeze=False)
    for r, (label, maps) in enumerate(rows):
        for c, name in enumerate(names):
            volume = getattr(maps, name)
            style = _map_style(name)
            if ranges and name in ranges:
                style["vmin"], style["vmax"] = ranges[name]
            _show(axes[r, c], volume[:, :, _middle(volume, slice_index)], map_label(name), **style)
            if r == 0:
                axes[r, c].set_title(MAP_LABELS.get(name, name), fontsize=9)
            if c == 0:
                axes[r, c].set_ylabel(label)
    return _finish(figure, title)


def plot_residual_grid(reference: dict, estimates: dict, *, names=("cbv", "cbf", "tmax"),
                       slice_index: int | None = None, title: str = "Reference and estimated maps, and their differences"):
    """Fig. 2 a–c: one row per map; columns the reference, each estimate and its residual (estimate − reference).

    ``reference`` and each value of ``estimates`` (label → maps) map names to (x, y, z) arrays.
    Residuals share a symmetric diverging scale of half the map's display range.
    """
    labels = list(estimates)
    columns = 1 + 2 * len(labels)
    figure, axes = plt.subplots(len(names), columns, figsize=(2.8 * columns, 2.4 * len(names) + 0.4), squeeze=False)
    for r, name in enumerate(names):
        z = _middle(reference[name], slice_index)
        _show(axes[r, 0], reference[name][:, :, z], map_label(name), **_map_style(name))
        axes[r, 0].set_ylabel(map_label(name))
        for k, label in enumerate(labels):
            estimate = estimates[label][name][:, :, z]
            _show(axes[r, 1 + k], estimate, map_label(name), **_map_style(name))
            _show(axes[r, 1 + len(labels) + k], estimate - reference[name][:, :, z], f"difference [{UNITS[name]}]",
                  **_difference_style(name))
            if r == 0:
                axes[r, 1 + k].set_title(label, fontsize=9)
                axes[r, 1 + len(labels) + k].set_title(f"{label} − reference", fontsize=9)
        if r == 0:
            axes[r, 0].set_title("reference", fontsize=9)
    return _finish(figure, title)


def plot_hypoperfusion(tmax_by_label: dict, brain_mask, *, threshold_s: float = 6.0, slice_index: int | None = None,
                       title: str = ""):
    """Fig. 2 d: top row Tmax maps, bottom row the masks Tmax > ``threshold_s`` in the brain, one column per label.

    The first label is the reference; its mask's outline is drawn over every other mask.
    """
    labels = list(tmax_by_label)
    figure, axes = plt.subplots(2, len(labels), figsize=(2.8 * len(labels), 5.4), squeeze=False)
    z = _middle(brain_mask, slice_index)
    masks = {label: (np.nan_to_num(tmax, nan=0.0) > threshold_s) & brain_mask for label, tmax in tmax_by_label.items()}
    for c, label in enumerate(labels):
        _show(axes[0, c], tmax_by_label[label][:, :, z], map_label("tmax"), **_map_style("tmax"))
        axes[0, c].set_title(label, fontsize=9)
        axes[1, c].imshow(np.rot90(masks[label][:, :, z] + 0.3 * brain_mask[:, :, z]), cmap="gray", vmin=0, vmax=1.3)
        axes[1, c].contour(np.rot90(masks[labels[0]][:, :, z]).astype(float), levels=[0.5], colors="tab:red", linewidths=0.8)
        axes[1, c].set_title(f"{label}: Tmax > {threshold_s:g} s", fontsize=9)
        axes[1, c].set_xticks([])
        axes[1, c].set_yticks([])
    default = f"Tmax (top) and Tmax > {threshold_s:g} s in the brain (bottom; red outline: {labels[0]})"
    return _finish(figure, title or default)


def plot_method_comparison(reference: dict, estimates: dict, name: str, *, slice_index: int | None = None,
                           title: str = ""):
    """One map of every method: a row per method (its map and its difference from the reference).

    The first row shows the reference map. ``estimates`` is label → maps (name → (x, y, z) array).
    """
    labels = list(estimates)
    figure, axes = plt.subplots(1 + len(labels), 2, figsize=(6.0, 2.4 * (1 + len(labels)) + 0.4), squeeze=False)
    z = _middle(reference[name], slice_index)
    _show(axes[0, 0], reference[name][:, :, z], map_label(name), **_map_style(name))
    axes[0, 0].set_ylabel("reference")
    axes[0, 1].axis("off")
    for r, label in enumerate(labels, start=1):
        _show(axes[r, 0], estimates[label][name][:, :, z], map_label(name), **_map_style(name))
        _show(axes[r, 1], estimates[label][name][:, :, z] - reference[name][:, :, z], f"difference [{UNITS[name]}]",
              **_difference_style(name))
        axes[r, 0].set_ylabel(label)
    axes[0, 0].set_title(MAP_LABELS.get(name, name), fontsize=9)
    axes[1, 1].set_title("method − reference", fontsize=9)
    return _finish(figure, title or f"{MAP_LABELS.get(name, name)} of every method and its difference from the reference")


# --- curves -----------------------------------------------------------------------------------


def plot_curves(time_s, curves: dict, *, ylabel: str = "concentration [mM]", title: str = "Concentration curves",
                ax=None):
    """Line plot of named curves against time [s]; ``title`` titles the axes (one panel)."""
    figure, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 3.2))
    for label, curve in curves.items():
        ax.plot(time_s, curve, label=label)
    ax.set_xlabel("time [s]")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


def plot_voxel_explorer(image, curves_of, voxel, *, time_s, slice_index: int | None = None, name: str = "tmax",
                        title: str = "Click a voxel of the map to see its curves"):
    """A slice of ``image`` (left) and the curves of one voxel (right); clicking a voxel shows its curves.

    Parameters
    ----------
    image : ndarray, shape (x, y, z)
        The map to click on (shown like every map here: ``np.rot90`` of an axial slice).
    curves_of : callable
        ``curves_of((x, y, z))`` → label → concentration curve [mM] (t,); may raise ``ValueError``
        for a voxel outside the brain (the click is then ignored).
    voxel : tuple of int
        The voxel shown first (marked with a cross).
    time_s : ndarray, shape (t,)
    slice_index : int, optional
        Axial slice (default: the voxel's).
    name : str
        The map's name, for its display range, colour bar and title.
    title : str
        The figure's title.

    Notes
    -----
    Clicking needs an interactive backend: in JupyterLab ``%matplotlib widget`` (the ``ipympl``
    package); with the inline backend the figure shows ``voxel`` only.
    """
    z = voxel[2] if slice_index is None else slice_index
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    _show(left, image[:, :, z], map_label(name), **_map_style(name))
    left.set_title(f"{MAP_LABELS.get(name, name)}, slice {z}", fontsize=9)
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
    return _finish(figure, title)
