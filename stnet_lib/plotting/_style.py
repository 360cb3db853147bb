"""Labels, colours and panel helpers that every figure of :mod:`stnet_lib.plotting` shares."""

from __future__ import annotations

import numpy as np

from ..constants import UNITS

__all__ = ["DISPLAY_RANGES", "MAP_LABELS", "METRIC_LABELS", "REGION_LABELS", "AXIS_LABELS", "METHOD_COLOURS",
           "map_label"]

#: Display ranges per map (those of clinical viewers: CBV 0–8, CBF 0–80, MTT 0–12, Tmax 0–12).
DISPLAY_RANGES = {"cbv": (0, 8), "cbf": (0, 80), "mtt": (0, 12), "tmax": (0, 12)}
#: How each map is named in a figure (its unit: :data:`stnet_lib.constants.UNITS`).
MAP_LABELS = {"cbv": "CBV", "cbf": "CBF", "mtt": "MTT", "tmax": "Tmax"}
#: How each metric is named in a figure, with its unit where it has one.
METRIC_LABELS = {"psnr": "PSNR [dB]", "ssim": "SSIM", "pcc": "PCC", "scc": "SCC", "nrmse": "NRMSE", "auc": "AUC",
                 "dice": "Dice", "iou": "IoU", "hd95_mm": "HD95 [mm]"}
#: The evaluation's regions: the whole brain and the hypoperfused area (Tmax > 6 s).
REGION_LABELS = {"WB": "whole brain", "HP": "hypoperfused area"}
#: The ablation axes of Fig. 3 as figure labels.
AXIS_LABELS = {"stride": "patch stride [voxels]", "ratio": "normal:lesion sample ratio", "lr": "learning rate",
               "physics_weight": "physics-loss weight (eq. 9)"}
#: Colours of the methods, the same in every figure.
METHOD_COLOURS = {"stnet": "tab:red", "ttv": "tab:blue", "osvd": "tab:green", "csvd": "tab:olive",
                  "ssvd": "tab:gray", "reference": "black"}


def map_label(name: str) -> str:
    """A map's name and unit for an axis or a colour bar, e.g. ``"CBF [ml/100g/min]"``."""
    return f"{MAP_LABELS.get(name, name)} [{UNITS[name]}]"


def _finish(figure, title: str):
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def _middle(volume, slice_index):
    return volume.shape[2] // 2 if slice_index is None else slice_index


def _show(ax, image, label: str, **style):
    """An axial slice (``np.rot90``, no ticks) with a colour bar labelled ``label``."""
    shown = ax.imshow(np.rot90(image), **style)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.02).set_label(label, fontsize=8)
    return shown


def _map_style(name: str, values=None) -> dict:
    """The map's clinical colour scale; given the shown ``values``, its lower end reaches down to their
    2nd percentile where that is below it (a Tmax below 0 s, decision 0079, shows as such, not as 0 s)."""
    low, high = DISPLAY_RANGES.get(name, (None, None))
    if values is not None and low is not None:
        values = np.asarray(values, dtype=float)
        floor = np.nanpercentile(values, 2) if np.isfinite(values).any() else low
        low = min(low, float(np.floor(floor)))
    return {"cmap": "viridis" if name == "tmax" else "magma", "vmin": low, "vmax": high}


def _difference_style(name: str) -> dict:
    """A symmetric diverging scale of half the map's display range."""
    half = (DISPLAY_RANGES[name][1] - DISPLAY_RANGES[name][0]) / 2
    return {"cmap": "RdBu_r", "vmin": -half, "vmax": half}
