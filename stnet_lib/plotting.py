"""Figures; every function returns a matplotlib Figure and never saves it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .constants import MAP_NAMES, UNITS

__all__ = ["plot_map_grid", "plot_curves", "DISPLAY_RANGES"]

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
