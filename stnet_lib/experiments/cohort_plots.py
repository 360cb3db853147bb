"""Figures and tables of the synthetic cohort (the cohort notebook); figures are returned, never saved.

``load_subject`` reads one written subject back; ``region_curves`` gives the mean curves of its
regions (AIF, VOF, GM, WM, penumbra, core); ``cohort_statistics_table`` sets the cohort's numbers
beside the ranges of simulation_recipe.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd

from ..constants import UNITS
from ..manifest import physiological_subjects
from ..signal import count_non_steady_frames, delta_r2_to_concentration, signal_to_delta_r2
from ..simulation.statistics import RECIPE_RANGES

__all__ = ["load_subject", "region_curves", "cohort_statistics_table", "plot_subject", "plot_region_curves",
           "plot_cohort_distributions"]

_VOLUMES = ("dsc", "brain_mask", "aif_mask", "vof_mask", "lesion_mask", "core_mask", "cbv", "cbf", "mtt", "tmax",
            "delay", "dispersion", "pgm", "pwm", "pcsf")


def load_subject(folder) -> dict:
    """Arrays of a written subject (masks as bool) and its ``subject.json`` under ``"record"``."""
    folder = Path(folder)
    arrays = {name: np.asarray(nib.load(folder / f"{name}.nii.gz").dataobj) for name in _VOLUMES}
    for name in _VOLUMES:
        if name.endswith("_mask"):
            arrays[name] = arrays[name] > 0
    arrays["record"] = json.loads((folder / "subject.json").read_text())
    return arrays


def region_curves(subject: dict) -> pd.DataFrame:
    """Mean signal (S/S0) and concentration [mM] of the subject's regions, one row per frame and region.

    Regions: AIF and VOF voxels (blood, quadratic relaxivity), healthy GM (p_GM > 0.5) and WM
    (p_WM > 0.5), penumbra (Tmax > 6 s outside the core) and core; true C_a and C_v too.
    """
    record = subject["record"]
    acq = record["acquisition"]
    brain, lesion, core = subject["brain_mask"], subject["lesion_mask"], subject["core_mask"]
    healthy = brain & ~lesion & (np.nan_to_num(subject["delay"]) < 3)
    regions = {"AIF": (subject["aif_mask"], "arterial"), "VOF": (subject["vof_mask"], "arterial"),
               "GM": (healthy & (subject["pgm"] > 0.5), "tissue"), "WM": (healthy & (subject["pwm"] > 0.5), "tissue"),
               "penumbra": (lesion & ~core, "tissue"), "core": (core, "tissue")}
    time_s = np.arange(subject["dsc"].shape[-1]) * acq["tr_s"]
    # S0 from the steady pre-bolus frames: the first frames of a realistic series are not yet at steady
    # state (T1 saturation) and would read as a negative concentration
    start = count_non_steady_frames(subject["dsc"][brain].mean(axis=0, dtype=np.float64))
    baseline = slice(start, max(record["n_baseline_frames"] - 1, start + 2))
    rows = []
    for name, (mask, kind) in regions.items():
        if not mask.any():
            continue
        curve = subject["dsc"][mask].astype(np.float64).mean(axis=0)
        result = signal_to_delta_r2(curve, acq["te_ms"], baseline=baseline)
        conc = delta_r2_to_concentration(result.delta_r2_per_s, kind=kind, field_t=acq["field_t"])
        conc[:start] = np.nan  # not at steady state: left out, as every method leaves it out
        rows.append(pd.DataFrame({"region": name, "time_s": time_s, "relative_signal": curve / result.s0,
                                  "concentration_mM": conc, "n_voxels": int(mask.sum())}))
    for name, key in (("true C_a", "c_aif_mM"), ("true C_v", "c_vof_mM")):
        rows.append(pd.DataFrame({"region": name, "time_s": time_s, "relative_signal": np.nan,
                                  "concentration_mM": record[key], "n_voxels": 0}))
    return pd.concat(rows, ignore_index=True)


def cohort_statistics_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """The cohort's numbers (median, min, max over subjects) beside the recipe's ranges (the training
    variants of decision 0077 left out: :func:`stnet_lib.manifest.physiological_subjects`)."""
    manifest = physiological_subjects(manifest)
    lesion = manifest[manifest["has_lesion"].astype(str).str.lower() == "true"]
    hir = lesion["tmax10_ml"].astype(float) / lesion["hypoperfusion_ml"].astype(float)
    quantities = {
        "gm_cbf": manifest["gm_cbf"], "wm_cbf": manifest["wm_cbf"], "gm_cbv": manifest["gm_cbv"],
        "wm_cbv": manifest["wm_cbv"], "gm_mtt_s": manifest["gm_mtt_s"], "wm_mtt_s": manifest["wm_mtt_s"],
        "gm_drop": manifest["gm_drop"], "snr": manifest["snr"],
        "snr_measured / snr": manifest["snr_measured"].astype(float) / manifest["snr"].astype(float),
        "hypoperfusion_ml": lesion["hypoperfusion_ml"], "core_ml": lesion["core_ml"], "hir": hir,
        "tmax_healthy_p99_s": manifest["tmax_healthy_p99_s"],
    }
    ranges = {**RECIPE_RANGES, "hir": (0.0, 1.0), "snr_measured / snr": (0.9, 1.1), "tmax_healthy_p99_s": (0.0, 6.0)}
    medians = {"hypoperfusion_ml": "hypoperfusion_ml_median", "core_ml": "core_ml_median", "hir": "hir_median",
               "gm_drop": "gm_drop_median"}
    rows = []
    for name, values in quantities.items():
        values = pd.to_numeric(values, errors="coerce").dropna()
        low, high = ranges[name]
        row = {"quantity": name, "median": values.median(), "min": values.min(), "max": values.max(),
               "recipe_range": f"{low:g}–{high:g}", "all_in_range": bool(values.between(low, high).all())}
        if name in medians:
            m_low, m_high = RECIPE_RANGES[medians[name]]
            row["recipe_median"] = f"{m_low:g}–{m_high:g}"
        rows.append(row)
    return pd.DataFrame(rows)


def plot_subject(subject: dict, *, slice_index: int | None = None, title: str = ""):
    """Anatomy (GM, WM, CSF, baseline and bolus-peak frames, masks) and truth maps of one slice."""
    lesion = subject["lesion_mask"]
    z = int(np.argmax(lesion.sum(axis=(0, 1)))) if slice_index is None and lesion.any() else (
        subject["dsc"].shape[2] // 2 if slice_index is None else slice_index)
    gm_peak = int(np.argmin(subject["dsc"][subject["brain_mask"]].mean(axis=0)))
    panels = [("GM fraction", subject["pgm"], "gray", (0, 1)), ("WM fraction", subject["pwm"], "gray", (0, 1)),
              ("CSF fraction", subject["pcsf"], "gray", (0, 1)), ("S(t = 0) [a.u.]", subject["dsc"][..., 0], "gray", None),
              (f"S(frame {gm_peak}) [a.u.]", subject["dsc"][..., gm_peak], "gray", None),
              ("CBV [ml/100g]", subject["cbv"], "magma", (0, 8)), ("CBF [ml/100g/min]", subject["cbf"], "magma", (0, 80)),
              ("MTT [s]", subject["mtt"], "magma", (0, 12)), (f"Tmax [{UNITS['tmax']}]", subject["tmax"], "viridis", (0, 15)),
              ("delay [s]", subject["delay"], "viridis", (0, 10))]
    figure, axes = plt.subplots(2, 5, figsize=(14, 6))
    for ax, (label, volume, cmap, limits) in zip(axes.ravel(), panels):
        image = ax.imshow(np.rot90(volume[:, :, z]), cmap=cmap, **({} if limits is None else dict(vmin=limits[0], vmax=limits[1])))
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02).set_label(label, fontsize=8)
    for ax in axes.ravel()[5:]:
        for mask, color in ((lesion, "w"), (subject["core_mask"], "r")):
            if mask[:, :, z].any():
                ax.contour(np.rot90(mask[:, :, z]).astype(float), levels=[0.5], colors=color, linewidths=0.8)
    for mask, color in ((subject["aif_mask"], "r"), (subject["vof_mask"], "c")):
        points = np.argwhere(mask[:, :, z])
        if points.size:
            axes[0, 3].plot(points[:, 0], mask.shape[1] - 1 - points[:, 1], "o", mfc="none", color=color, ms=5)
    figure.suptitle(title or f"slice {z}: anatomy (top), truth with Tmax > 6 s (white) and core (red) outlines (bottom)")
    figure.tight_layout()
    return figure


def plot_region_curves(curves: pd.DataFrame, *, title: str = "Mean curves of the regions of one subject"):
    """Relative signal and concentration of each region against time."""
    figure, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for region, group in curves.groupby("region", sort=False):
        style = "--" if region.startswith("true") else "-"
        target = axes[1] if region in ("AIF", "VOF") or region.startswith("true") else axes[2]
        if group["relative_signal"].notna().any():
            axes[0].plot(group["time_s"], group["relative_signal"], style, label=region)
        target.plot(group["time_s"], group["concentration_mM"], style, label=region)
    for ax, label in zip(axes, ("S(t)/S0", "blood concentration [mM]", "tissue concentration [mM]")):
        ax.set_xlabel("time [s]")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_cohort_distributions(manifest: pd.DataFrame, *, title: str = "The synthetic cohort, one value per subject"):
    """Lesion volumes, requested vs measured SNR, GM signal drop, and tissue-class CBF over the cohort
    (its physiological subjects: :func:`stnet_lib.manifest.physiological_subjects`)."""
    manifest = physiological_subjects(manifest)
    lesion = manifest[manifest["has_lesion"].astype(str).str.lower() == "true"]
    figure, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    axes[0].hist([lesion["hypoperfusion_ml"].astype(float), lesion["core_ml"].astype(float)], bins=12,
                 label=["Tmax > 6 s", "core (rCBF < 0.3)"])
    axes[0].set_xlabel("lesion volume [ml]")
    axes[0].set_ylabel("subjects")
    axes[0].legend(fontsize=8)
    snr, measured = manifest["snr"].astype(float), manifest["snr_measured"].astype(float)
    axes[1].loglog(snr, measured, "o")
    axes[1].plot([10, 120], [10, 120], "k--", lw=1)
    axes[1].set_xlabel("requested SNR")
    axes[1].set_ylabel("SNR from baseline frames")
    axes[2].hist(manifest["gm_drop"].astype(float), bins=12)
    axes[2].axvspan(*RECIPE_RANGES["gm_drop_median"], color="g", alpha=0.15, label="recipe ≈ 30–50 %")
    axes[2].set_xlabel("GM signal drop at the bolus peak (fraction of S0)")
    axes[2].set_ylabel("subjects")
    axes[2].legend(fontsize=8)
    axes[3].plot(manifest["gm_cbf"].astype(float), manifest["gm_cbv"].astype(float), "o", label="GM")
    axes[3].plot(manifest["wm_cbf"].astype(float), manifest["wm_cbv"].astype(float), "s", label="WM")
    axes[3].set_xlabel("CBF [ml/100g/min]")
    axes[3].set_ylabel("CBV [ml/100g]")
    axes[3].legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure
