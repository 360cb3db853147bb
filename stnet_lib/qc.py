"""A one-page quality-control figure per scan (issue #15): is this scan's result to be trusted?

:func:`plot_qc_page` draws, on one page readable in a paper (A4 landscape):

* row 1: the mean image of the slice that holds the most AIF voxels, the brain outlined (white)
  and every AIF (red) and VOF (blue) voxel of the scan projected onto it as a dot; the AIF and
  VOF curves; the brain-mean curve (time in s, the curves' unit on the axis); the summary numbers
  (volumes, HIR, rCBF core, references, negative delays);
* row 2: CBV, CBF, MTT and Tmax on the slice with the most Tmax > 6 s tissue (the middle slice
  without), colour bars with units;
* row 3: the Tmax > 6 s region (red) on the mean image of up to four slices spread over its extent.

It never saves; :func:`save_qc_page` writes the PNG atomically.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from numpy.typing import NDArray

from ._validation import StnetInputError
from .constants import MAP_NAMES, TMAX_THRESHOLD_S
from .io import atomic_write
from .maps import PerfusionMaps
from .plotting._style import _map_style, _show, map_label

__all__ = ["plot_qc_page", "save_qc_page", "summary_lines", "QC_PAGE_INCHES"]

#: Page size [inches]: A4 landscape.
QC_PAGE_INCHES = (11.7, 8.3)
#: Overlay colours of the masks.
MASK_COLOURS = {"brain": "white", "AIF": "tab:red", "VOF": "tab:blue"}


def _fmt(value, digits: int = 1) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def summary_lines(summary: dict, params: dict | None = None) -> list[str]:
    """The summary's headline numbers as text lines (units spelled out, no brackets)."""
    volumes = [f"Tmax > {key[8:-4].replace('p', '.')} s: {_fmt(value)} ml" for key, value in summary.items()
               if key.startswith("tmax_gt_") and key.endswith("s_ml") and key.count("_") == 3]
    core = [f"rCBF < {key[8:-6].replace('p', '.')} %: {_fmt(value)} ml" for key, value in summary.items()
            if key.startswith("rcbf_lt_") and key.endswith("pct_ml")]
    lines = [*volumes, f"HIR (Tmax > 10 s / > 6 s): {_fmt(summary.get('hypoperfusion_intensity_ratio'), 2)}", *core,
             f"mismatch: {_fmt(summary.get('mismatch_ml'))} ml, ratio {_fmt(summary.get('mismatch_ratio'), 2)}",
             f"affected side: {summary.get('affected_hemisphere') or 'none'}",
             f"reference CBF: {_fmt(summary.get('reference_cbf_ml_100g_min'))} ml/100g/min",
             f"reference CBV: {_fmt(summary.get('reference_cbv_ml_100g'), 2)} ml/100g",
             f"brain: {_fmt(summary.get('brain_volume_ml'))} ml"]
    if params and "n_negative_delay_voxels" in params:
        lines.append(f"voxels peaking before the AIF: {params['n_negative_delay_voxels']}")
    return lines


def _lesion_slices(lesion: NDArray, n: int) -> list[int]:
    """Up to ``n`` distinct slices spread over the lesion's z extent (the whole volume's without one)."""
    z = np.flatnonzero(lesion.any(axis=(0, 1)))
    low, high = (z.min(), z.max()) if z.size else (0, lesion.shape[2] - 1)
    return sorted({int(round(v)) for v in np.linspace(low, high, n)})


def _grey_range(mean_image: NDArray, brain: NDArray) -> dict:
    """One grey scale for every slice of the mean image: the brain's 1st to 99th percentile."""
    values = np.asarray(mean_image, dtype=np.float64)[brain]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {}
    low, high = np.percentile(values, [1, 99])
    return {"vmin": low, "vmax": high} if high > low else {}


def _mask_panel(ax, mean_image: NDArray, masks: dict, z: int) -> None:
    """The mean image of slice ``z`` with the brain outlined and every AIF and VOF voxel (all slices) as a dot."""
    _show(ax, mean_image[:, :, z], "mean signal [a.u.]", cmap="gray", **_grey_range(mean_image, masks["brain"]))
    ax.contour(np.rot90(masks["brain"][:, :, z]).astype(float), levels=[0.5], colors=MASK_COLOURS["brain"],
               linewidths=0.5)
    counts = []
    for name in ("AIF", "VOF"):
        mask = masks.get(name)
        if mask is None:
            continue
        rows, cols = np.nonzero(np.rot90(mask.any(axis=2)))
        ax.scatter(cols, rows, s=8, c=MASK_COLOURS[name], marker="s", linewidths=0)
        counts.append(f"{name} {int(mask.sum())}")
    ax.set_title(f"slice {z}; " + (", ".join(counts) + " voxels" if counts else "no AIF/VOF mask"), fontsize=8)


def _orientation(ax, affine: NDArray | None) -> None:
    """R and L at the image's sides (array axis 0 runs left to right on screen after ``np.rot90``)."""
    if affine is None:
        return
    right_on_screen = nib.aff2axcodes(np.asarray(affine, dtype=np.float64))[0] == "R"
    for x, letter in ((0.02, "L" if right_on_screen else "R"), (0.98, "R" if right_on_screen else "L")):
        ax.text(x, 0.5, letter, color="yellow", fontsize=9, weight="bold", ha="center", va="center",
                transform=ax.transAxes)


def _curve_panel(ax, time_s: NDArray, curves: dict, ylabel: str, title: str) -> None:
    for name, curve in curves.items():
        if curve is not None:
            ax.plot(time_s, curve, label=name, color=MASK_COLOURS.get(name, "black"), lw=1.2)
    ax.set_xlabel("time [s]")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if len(ax.lines) > 1:
        ax.legend(fontsize=7, frameon=False)


def _lesion_panel(ax, mean_image: NDArray, lesion: NDArray, brain: NDArray, z: int, threshold_s: float) -> None:
    ax.imshow(np.rot90(mean_image[:, :, z]), cmap="gray", **_grey_range(mean_image, brain))
    region = np.rot90(lesion[:, :, z])
    overlay = np.ma.masked_where(~region, np.ones(region.shape))
    ax.imshow(overlay, cmap=ListedColormap(["tab:red"]), alpha=0.6, vmin=0, vmax=1)
    ax.contour(np.rot90(brain[:, :, z]).astype(float), levels=[0.5], colors="white", linewidths=0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"Tmax > {threshold_s:g} s, slice {z}: {int(lesion[:, :, z].sum())} voxels", fontsize=8)


def _check(mean_image: NDArray, maps: PerfusionMaps, brain_mask, time_s, curves) -> None:
    shape = np.shape(mean_image)
    if len(shape) != 3 or np.shape(maps.tmax) != shape or np.shape(brain_mask) != shape:
        raise StnetInputError(f"the mean image {shape}, maps {np.shape(maps.tmax)} and brain mask "
                              f"{np.shape(brain_mask)} must share one (x, y, z) shape")
    for name, curve in curves.items():
        if curve is not None and np.shape(curve) != np.shape(time_s):
            raise StnetInputError(f"the {name} curve has shape {np.shape(curve)}; "
                                  f"expected {np.shape(time_s)} like time_s")


def plot_qc_page(mean_image: NDArray, maps: PerfusionMaps, summary: dict, *, brain_mask: NDArray, time_s: NDArray,
                 aif_curve: NDArray | None = None, vof_curve: NDArray | None = None,
                 brain_curve: NDArray | None = None, aif_mask: NDArray | None = None,
                 vof_mask: NDArray | None = None, affine: NDArray | None = None,
                 curve_label: str = "concentration [mM]", brain_curve_label: str | None = None,
                 threshold_s: float = TMAX_THRESHOLD_S, title: str = "Quality control") -> Figure:
    """One page with everything needed to judge a scan's maps (see the module docstring).

    Parameters
    ----------
    mean_image : ndarray, shape (x, y, z)
        The series averaged over time [a.u.].
    maps : PerfusionMaps
        The maps, shape (x, y, z); ``maps.params`` may hold ``n_negative_delay_voxels``.
    summary : dict
        :attr:`stnet_lib.summary.HypoperfusionSummary.values`.
    brain_mask, aif_mask, vof_mask : ndarray of bool, shape (x, y, z)
        Masks drawn on the mean image (AIF and VOF optional).
    time_s : ndarray, shape (t,)
        Frame times [s].
    affine : ndarray, shape (4, 4), optional
        The scan's affine: marks the patient's left (L) and right (R) on the images.
    aif_curve, vof_curve, brain_curve : ndarray, shape (t,), optional
        Arterial, venous and brain-mean curves in the unit of ``curve_label``.
    curve_label : str
        The arterial and venous curves' y-axis label with its unit.
    brain_curve_label : str, optional
        The brain-mean curve's (default ``curve_label``; e.g. ``"mean signal [a.u.]"``).
    threshold_s : float
        Tmax threshold of the hypoperfusion region [s].
    title : str
        Page title (e.g. the subject and method).

    Returns
    -------
    matplotlib.figure.Figure
        12 panels (one of them text) and 5 colour bars; with ST-Net's SD maps in ``maps.extra_volumes``
        (``cbv_sd`` …, ``--uncertainty``) a row more, of the SD of each map on the maps' slice.
    """
    curves = {"AIF": aif_curve, "VOF": vof_curve, "brain mean": brain_curve}
    _check(mean_image, maps, brain_mask, time_s, curves)
    brain = np.asarray(brain_mask, bool)
    lesion = brain & (np.nan_to_num(np.asarray(maps.tmax, float), nan=-np.inf) > threshold_s)
    has_aif = aif_mask is not None and np.any(aif_mask)
    mask_z = int(np.argmax(aif_mask.sum(axis=(0, 1)))) if has_aif else brain.shape[2] // 2
    map_z = int(np.argmax(lesion.sum(axis=(0, 1)))) if lesion.any() else brain.shape[2] // 2
    sds = {name: maps.extra_volumes[f"{name}_sd"] for name in MAP_NAMES if f"{name}_sd" in maps.extra_volumes}
    rows = 4 if sds else 3  # ST-Net with --uncertainty: a row of its SD maps
    figure, axes = plt.subplots(rows, 4, figsize=(QC_PAGE_INCHES[0], QC_PAGE_INCHES[1] * rows / 3))
    _mask_panel(axes[0, 0], mean_image, {"brain": brain, "AIF": aif_mask, "VOF": vof_mask}, mask_z)
    _curve_panel(axes[0, 1], time_s, {"AIF": aif_curve, "VOF": vof_curve}, curve_label, "arterial and venous curves")
    _curve_panel(axes[0, 2], time_s, {"brain mean": brain_curve}, brain_curve_label or curve_label, "brain-mean curve")
    axes[0, 3].axis("off")
    axes[0, 3].text(0.0, 1.0, "\n".join(summary_lines(summary, maps.params)), va="top", ha="left", fontsize=8,
                    family="monospace", transform=axes[0, 3].transAxes)
    axes[0, 3].set_title(f"summary ({maps.method})", fontsize=9)
    for ax, name in zip(axes[1], MAP_NAMES):
        volume = np.asarray(getattr(maps, name))
        _show(ax, volume[:, :, map_z], map_label(name), **_map_style(name, volume[brain]))
        ax.set_title(f"{map_label(name)}, slice {map_z}", fontsize=8)
    if sds:
        for ax, name in zip(axes[2], MAP_NAMES):
            if name not in sds:
                ax.axis("off")
                continue
            sd = np.asarray(sds[name])[:, :, map_z]
            _show(ax, sd, f"SD of {map_label(name)}", cmap="cividis", vmin=0.0,
                  vmax=float(np.nanpercentile(sd, 99)) if np.isfinite(sd).any() else None)
            ax.set_title(f"ST-Net uncertainty (MC-dropout SD), slice {map_z}", fontsize=8)
    slices = _lesion_slices(lesion, 4)
    for ax, z in zip(axes[-1], slices):
        _lesion_panel(ax, mean_image, lesion, brain, z, threshold_s)
    for ax in axes[-1, len(slices):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        _orientation(ax, affine)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def save_qc_page(figure: Figure, path, *, dpi: int = 150) -> Path:
    """Write ``figure`` as a PNG at ``path`` atomically (a temporary file renamed over it)."""
    path = Path(path)
    with atomic_write(path) as tmp:
        figure.savefig(tmp, dpi=dpi, format="png")
    return path
