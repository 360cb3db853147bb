"""Stage 1 (synthetic data): the numbers by which a simulated subject is checked against the recipe.

Computed once per subject at simulation time (stored in ``subject.json`` and the manifest) so that
the cohort notebook and the tests read them without reloading the series:
tissue-class CBF/CBV (least squares on the healthy voxels' GM/WM fractions), SNR measured on
the baseline frames, the GM signal drop at the bolus peak, and lesion volumes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["RECIPE_RANGES", "class_values", "measured_snr", "gm_signal_drop", "subject_statistics"]

#: Ranges that cohort statistics should land in (simulation_recipe.md §1.4, §4.1, §4.2, §7, §9).
RECIPE_RANGES = {
    "gm_cbf": (45.0, 75.0), "gm_cbv": (3.0, 5.0), "wm_cbf": (18.0, 32.0), "wm_cbv": (1.5, 2.5),
    "gm_mtt_s": (3.0, 6.0), "wm_mtt_s": (4.0, 6.0),
    "hypoperfusion_ml_median": (60.0, 130.0), "core_ml_median": (15.0, 45.0),
    "hypoperfusion_ml": (0.0, 250.0), "core_ml": (0.0, 150.0), "hir_median": (0.25, 0.6),
    "gm_drop": (0.25, 0.70), "gm_drop_median": (0.30, 0.50), "snr": (15.0, 100.0),
}


def class_values(value: NDArray, pgm: NDArray, pwm: NDArray) -> tuple[float, float]:
    """GM and WM values of a map from voxel values = p_GM·v_GM + p_WM·v_WM (least squares)."""
    design = np.stack([pgm, pwm], axis=1).astype(np.float64)
    solution, *_ = np.linalg.lstsq(design, value.astype(np.float64), rcond=None)
    return float(solution[0]), float(solution[1])


def measured_snr(signal: NDArray, brain: NDArray, n_baseline: int, start: int = 0) -> float:
    """median S0 / σ over the brain, σ pooled from the variance (ddof = 1) of the baseline frames
    from ``start`` (the first steady frame)."""
    base = signal[brain][:, start : max(n_baseline - 1, start + 2)].astype(np.float64)
    sigma = np.sqrt(np.mean(np.var(base, axis=1, ddof=1)))
    return float(np.median(base.mean(axis=1)) / sigma)


def gm_signal_drop(signal: NDArray, gm_voxels: NDArray, n_baseline: int, start: int = 0) -> float:
    """1 − min/baseline of the mean signal of GM voxels (the recipe's ≈ 40 % calibration, §1.4);
    the baseline starts at the first steady frame ``start``."""
    curve = signal[gm_voxels].astype(np.float64).mean(axis=0)
    return float(1.0 - curve.min() / curve[start : max(n_baseline - 1, start + 1)].mean())


def subject_statistics(subject) -> dict:
    """The checks of one :class:`~stnet_lib.simulation.subject.Subject` (JSON-safe dict)."""
    brain, lesion = subject.masks["brain"], subject.masks["lesion"]
    healthy = brain & (np.nan_to_num(subject.truth["rcbf"], nan=0.0) == 1.0) & (np.nan_to_num(subject.truth["rcbv"]) == 1.0)
    healthy &= ~subject.masks.get("wmh", np.zeros_like(brain))  # white-matter disease has its own values
    pgm, pwm = subject.tissue["gm"][healthy], subject.tissue["wm"][healthy]
    gm_cbf, wm_cbf = class_values(subject.truth["cbf"][healthy], pgm, pwm)
    gm_cbv, wm_cbv = class_values(subject.truth["cbv"][healthy], pgm, pwm)
    n_base, start = subject.params["n_baseline_frames"], subject.params.get("n_non_steady_frames", 0)
    gm_voxels = healthy & (subject.tissue["gm"] > 0.5)
    stats = {
        "gm_cbf": gm_cbf, "wm_cbf": wm_cbf, "gm_cbv": gm_cbv, "wm_cbv": wm_cbv,
        "gm_mtt_s": 60 * gm_cbv / gm_cbf, "wm_mtt_s": 60 * wm_cbv / wm_cbf,
        "snr_measured": measured_snr(subject.signal, brain, n_base, start),
        "gm_drop": gm_signal_drop(subject.signal, gm_voxels, n_base, start) if gm_voxels.any() else float("nan"),
        "tmax_healthy_p99_s": float(np.nanpercentile(subject.truth["tmax"][brain & ~lesion], 99)),
    }
    return {key: round(float(value), 4) for key, value in stats.items()}
