"""Quality-control figures and files of the curve preparation: where the AIF and VOF are, and the motion.

:func:`arterial_qc_figure` shows the arterial and venous voxels on the mean image and their mean
curves beside the brain's; :func:`motion_figure` the six rigid-motion parameters per frame;
:func:`preparation_files` turns both (and ``motion.csv``) into the bytes that ``stnet maps``
writes beside the maps (``aif_qc.png``, ``motion.png``, ``motion.csv``). Figures are built on
:class:`matplotlib.figure.Figure` (no pyplot state) and never saved here.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from .motion import motion_csv

__all__ = ["arterial_qc_figure", "motion_figure", "preparation_files"]

_COLOURS = {"aif": "tab:red", "vof": "tab:blue", "brain": "0.3"}


def _relative(curve, baseline: slice) -> np.ndarray:
    curve = np.asarray(curve, dtype=float)
    level = curve[baseline].mean()
    return curve / level if level > 0 else curve


def _image_panel(ax, mean_image: np.ndarray, masks: dict, z: int) -> None:
    ax.imshow(mean_image[:, :, z].T, origin="lower", cmap="gray", interpolation="nearest")
    for name, mask in masks.items():
        x, y = np.nonzero(mask[:, :, z])
        elsewhere = int(mask.sum() - len(x))
        label = f"{name.upper()} ({len(x)} voxels" + (f"; {elsewhere} on other slices)" if elsewhere else ")")
        ax.scatter(x, y, s=28, facecolors="none", edgecolors=_COLOURS[name], linewidths=1.5, label=label)
    ax.set(title=f"mean signal, slice z = {z}", xlabel="x [voxel]", ylabel="y [voxel]")
    ax.legend(loc="lower left", fontsize="small", framealpha=0.8)


def arterial_qc_figure(mean_image: np.ndarray, aif_mask: np.ndarray, vof_mask: np.ndarray | None, params: dict,
                       *, title: str = "") -> Figure:
    """Where the AIF (and VOF) voxels are and their mean curves beside the brain's.

    Parameters
    ----------
    mean_image : ndarray, shape (x, y, z)
        Temporal mean of the (prepared) series.
    aif_mask, vof_mask : ndarray of bool, shape (x, y, z)
    params : dict
        ``maps.params`` of :func:`stnet_lib.pipeline.compute_maps` (``time_s``, ``brain_signal``,
        ``brain_baseline_frames``, ``aif``/``vof`` mean signals and voxel counts, ``k_av``).
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        One image panel (the slice with most AIF voxels) and the curves S(t)/S0 against time [s].
    """
    masks = {"aif": aif_mask} | ({"vof": vof_mask} if vof_mask is not None and vof_mask.any() else {})
    z = int(np.argmax(aif_mask.sum(axis=(0, 1))))
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    image_ax, curve_ax = fig.subplots(1, 2, width_ratios=[1, 1.3])
    _image_panel(image_ax, mean_image, masks, z)
    time_s, baseline = np.asarray(params["time_s"]), slice(*params["brain_baseline_frames"])
    curve_ax.plot(time_s, _relative(params["brain_signal"], baseline), color=_COLOURS["brain"], label="brain (mean)")
    for name in masks:
        entry = params[name]
        curve_ax.plot(time_s, _relative(entry["signal"], baseline), color=_COLOURS[name], marker=".",
                      label=f"{name.upper()} ({entry['voxels']} voxels)")
    curve_ax.axhline(1.0, color="0.7", linewidth=0.8)
    vof = params.get("vof") or {}
    k_av = f"k_AV = {params.get('k_av', 1.0):.2f}, eq. 8"
    if vof.get("used") is False and vof.get("k_av_if_used") is not None:
        k_av += f"; the VOF found would give {vof['k_av_if_used']:.2f}, not applied"
    curve_ax.set(xlabel="time [s]", ylabel="signal / pre-bolus signal S0", ylim=(0, None), title=f"mean curves ({k_av})")
    curve_ax.legend(fontsize="small")
    source = params.get("aif_source", "given")
    fig.suptitle(title or f"Arterial input ({source}) and venous output")
    return fig


def motion_figure(parameters: np.ndarray, tr_s: float, *, title: str = "") -> Figure:
    """The six rigid-motion parameters (``MOTION_COLUMNS``) per frame against time [s]."""
    parameters = np.asarray(parameters, dtype=float)
    time_s = np.arange(len(parameters)) * tr_s
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    rot_ax, shift_ax = fig.subplots(1, 2, sharex=True)
    for index, axis in enumerate("xyz"):
        rot_ax.plot(time_s, parameters[:, index], marker=".", label=f"about {axis}")
        shift_ax.plot(time_s, parameters[:, 3 + index], marker=".", label=f"along {axis}")
    rot_ax.set(xlabel="time [s]", ylabel="rotation [deg]", title="rotations")
    shift_ax.set(xlabel="time [s]", ylabel="translation [mm]", title="translations")
    for ax in (rot_ax, shift_ax):
        ax.axhline(0.0, color="0.7", linewidth=0.8)
        ax.legend(fontsize="small")
    fig.suptitle(title or "Rigid motion of each frame against the pre-bolus reference")
    return fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def preparation_files(scan, maps, *, title: str = "") -> dict[str, bytes]:
    """``aif_qc.png`` and, after motion correction, ``motion.csv`` and ``motion.png``, as bytes.

    Parameters
    ----------
    scan : Scan
        The scan the maps come from: its temporal mean image, and its AIF/VOF masks where they
        were drawn (the ones found automatically are in ``maps.extra_volumes``).
    maps : PerfusionMaps
        From :func:`stnet_lib.pipeline.compute_maps` (its ``params`` hold the curves).
    title : str
        Title of the AIF figure.
    """
    files = {}
    aif = maps.extra_volumes.get("aif_mask", scan.aif_mask)
    vof = maps.extra_volumes.get("vof_mask", scan.vof_mask)
    if aif is not None and "aif" in maps.params:
        mean_image = scan.signal.mean(axis=-1, dtype=np.float64)
        files["aif_qc.png"] = _png(arterial_qc_figure(mean_image, np.asarray(aif) > 0,
                                                      None if vof is None else np.asarray(vof) > 0, maps.params,
                                                      title=title))
    motion = maps.params.get("motion")
    if motion:
        parameters = np.array(motion["parameters"], dtype=float)
        files["motion.csv"] = motion_csv(parameters, scan.tr_s)
        files["motion.png"] = _png(motion_figure(parameters, scan.tr_s))
    return files
