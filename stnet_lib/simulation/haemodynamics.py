"""Stage 1 (synthetic data): per-voxel haemodynamics — CBF, CBV, residue shape, delay, dispersion.

Healthy values come from the tissue fractions (single-compartment voxel, CBF = Σ p_i·CBF_i,
CBV = Σ p_i·CBV_i; simulation_recipe.md §4.1 and §6) modulated by smooth random fields;
MTT = 60·CBV/CBF is always derived, never drawn. The lesion (``lesion.py``) then scales CBF
and CBV, raises dispersion, and sets the delay from a target Tmax (recipe §4.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special

from .lesion import LesionParams, lesion_stages
from .vascular import DISPERSION_NODES_S, MTT_NODES_S, residue_peak_time_s

__all__ = ["Haemodynamics", "draw_tissue_values", "healthy_haemodynamics", "apply_lesion", "SHAPE_PROBABILITIES",
           "white_matter_disease", "apply_white_matter_disease", "WMH_TMAX_MAX_S", "wide_mtt"]

#: Mixture of residue shapes (recipe §3.1: exponential 50 %, gamma 30 %, box/linear 20 %).
SHAPE_PROBABILITIES = (0.5, 0.1, 0.1, 0.1, 0.2)
#: Bounds of the normal arrival delay and dispersion [s] (recipe §9).
NORMAL_DELAY_MAX_S = 2.5
NORMAL_DISPERSION_MAX_S = 1.5
#: White-matter disease never takes a voxel's Tmax above this [s] (it is not hypoperfusion: Tmax > 6 s).
WMH_TMAX_MAX_S = 5.0
#: Voxels whose tissue is at least this share white matter can carry white-matter disease.
WMH_MIN_WM_SHARE = 0.6


@dataclass
class Haemodynamics:
    """Per-voxel parameters of the simulated voxels (1-D arrays, one entry per voxel).

    cbf [ml/100g/min], cbv [ml/100g], mtt_s = 60·cbv/cbf [s], delay_s (a multiple of the fine
    step once quantised) [s], dispersion_s (mean of the exponential kernel) [s], shape (index into
    RESIDUE_SHAPES), rcbf and rcbv (relative to the healthy value of the same voxel).
    """

    cbf: NDArray
    cbv: NDArray
    delay_s: NDArray
    dispersion_s: NDArray
    shape: NDArray
    rcbf: NDArray
    rcbv: NDArray

    @property
    def mtt_s(self) -> NDArray:
        """MTT = 60·CBV/CBF [s] (eq. 6, central volume theorem)."""
        return 60.0 * self.cbv / self.cbf

    def peak_time_s(self) -> NDArray:
        """argmax of the dispersed residue h ⊗ R [s] (0 without dispersion)."""
        return residue_peak_time_s(self.shape, self.mtt_s, self.dispersion_s)


def draw_tissue_values(rng: np.random.Generator) -> dict:
    """Per-subject healthy GM/WM values and field amplitudes (recipe §4.1 and §9).

    CBF and CBV of each class are drawn uniformly in the recipe's ranges and redrawn until the
    class MTT = 60·CBV/CBF lies in its range too (GM 3–6 s, WM 4–6 s), so the three stay consistent.
    """
    classes = {"gm": ((50, 70), (3.4, 4.6), (3.0, 5.5)), "wm": ((20, 30), (1.7, 2.3), (4.0, 6.0))}
    values = {}
    for name, (cbf_range, cbv_range, mtt_range) in classes.items():
        for _ in range(1000):
            cbf, cbv = rng.uniform(*cbf_range), rng.uniform(*cbv_range)
            if mtt_range[0] <= 60 * cbv / cbf <= mtt_range[1]:
                break
        values.update({f"{name}_cbf": cbf, f"{name}_cbv": cbv})
    values.update({
        "cbf_variability": rng.uniform(0.08, 0.13), "cbv_variability": rng.uniform(0.06, 0.10),
        "delay_offset_s": rng.uniform(0.0, 0.8), "delay_wm_extra_s": rng.uniform(0.4, 1.0),
        "dispersion_scale_s": rng.uniform(0.3, 0.8), "dispersion_threshold": rng.uniform(-0.3, 0.5),
    })
    return {key: round(float(value), 4) for key, value in values.items()}


def _shape_from_field(field: NDArray) -> NDArray:
    """Residue shape index by quantiles of a smooth field: patches in the recipe's proportions."""
    edges = np.quantile(field, np.cumsum(SHAPE_PROBABILITIES)[:-1])
    return np.searchsorted(edges, field).astype(np.int8)


def healthy_haemodynamics(pgm: NDArray, pwm: NDArray, fields: dict, values: dict,
                          mtt_range_s: tuple[float, float] | None = None) -> Haemodynamics:
    """Healthy parameters of voxels with tissue fractions ``pgm``, ``pwm`` (1-D, > 0 in sum).

    ``fields`` holds unit-variance smooth fields at the same voxels: ``cbf``, ``cbv``, ``delay``,
    ``dispersion``, ``shape``.

    ``mtt_range_s`` (training subjects only, :func:`wide_mtt`): MTT is drawn log-uniformly over this
    range from the ``cbv`` field, independently of CBV, and CBF = 60·CBV/MTT follows
    (decision 0077). None: CBF and CBV from the tissue fractions, MTT derived (the physiological rule).
    """
    tissue_cbv = pgm * values["gm_cbv"] + pwm * values["wm_cbv"]
    if mtt_range_s is None:
        f_cbf = 1.0 + values["cbf_variability"] * np.clip(fields["cbf"], -2.5, 2.5)
        f_cbv = 1.0 + values["cbv_variability"] * np.clip(0.7 * fields["cbf"] + 0.71 * fields["cbv"], -2.5, 2.5)
        cbf = (pgm * values["gm_cbf"] + pwm * values["wm_cbf"]) * f_cbf
        cbv = tissue_cbv * f_cbv
    else:
        cbv = tissue_cbv * (1.0 + values["cbv_variability"] * np.clip(fields["cbf"], -2.5, 2.5))
        cbf = 60.0 * cbv / wide_mtt(fields["cbv"], mtt_range_s)
    wm_share = pwm / np.maximum(pgm + pwm, 1e-6)
    delay = values["delay_offset_s"] + values["delay_wm_extra_s"] * wm_share + 0.3 * fields["delay"]
    dispersion = values["dispersion_scale_s"] * (fields["dispersion"] - values["dispersion_threshold"])
    ones = np.ones_like(cbf)
    return Haemodynamics(cbf, cbv, np.clip(delay, 0.0, NORMAL_DELAY_MAX_S),
                         np.clip(dispersion, 0.0, NORMAL_DISPERSION_MAX_S), _shape_from_field(fields["shape"]),
                         ones, ones.copy())


def wide_mtt(field: NDArray, mtt_range_s: tuple[float, float]) -> NDArray:
    """MTT [s] log-uniform over ``mtt_range_s`` from a unit-variance smooth ``field`` (through its normal
    CDF, so neighbouring voxels keep neighbouring MTTs)."""
    low, high = np.log(mtt_range_s[0]), np.log(mtt_range_s[1])
    return np.exp(low + (high - low) * special.ndtr(field))


def apply_lesion(h: Haemodynamics, severity: NDArray, params: LesionParams, voxel_ml: float,
                 calibration: NDArray | None = None) -> dict:
    """Impose the lesion on ``h`` in place; return the levels and volumes used.

    In the lesion, CBF and CBV are scaled (rCBF, rCBV), dispersion rises, and the delay becomes
    δ = max(δ_healthy, Tmax_target − argmax(h ⊗ R)) so that the true Tmax follows the target
    profile 6 s → 10 s → peak across the stage levels.
    """
    stage_tmax, stage_core, info = lesion_stages(severity, params, voxel_ml, calibration)
    healthy_tmax = h.delay_s + h.peak_time_s()
    lesion = stage_tmax > 0
    u, uc = stage_tmax[lesion], stage_core[lesion]
    rcbf = np.interp(uc, [0, 1, 2, 3], (1.0, *params.rcbf_knots))
    rcbv = np.interp(uc, [0, 1, 2, 3], (1.0, *params.rcbv_knots))
    mtt_healthy = h.mtt_s[lesion]
    rcbf = np.maximum(rcbf, rcbv * mtt_healthy / (0.98 * MTT_NODES_S[-1]))  # keep MTT on the table
    tau0 = h.dispersion_s[lesion]
    tau = np.where(u <= 1, tau0 + (params.dispersion_knots_s[0] - tau0) * np.minimum(u, 1),
                   np.interp(u, [1, 2, 3], params.dispersion_knots_s))
    t0 = healthy_tmax[lesion]
    target = np.where(u <= 1, t0 + (6.0 - t0) * np.minimum(u, 1), np.interp(u, [1, 2, 3], [6.0, 10.0, params.tmax_peak_s]))
    h.rcbf[lesion], h.rcbv[lesion] = rcbf, rcbv
    h.cbf[lesion] *= rcbf
    h.cbv[lesion] *= rcbv
    h.dispersion_s[lesion] = np.clip(tau, 0.0, DISPERSION_NODES_S[-1])
    peak = residue_peak_time_s(h.shape[lesion], h.mtt_s[lesion], h.dispersion_s[lesion])
    h.delay_s[lesion] = np.maximum(h.delay_s[lesion], target - peak)
    return info



def white_matter_disease(pgm: NDArray, pwm: NDArray, field: NDArray, fraction: float) -> NDArray:
    """Voxels (bool, like ``pgm``) with white-matter disease: the ``fraction`` of white-matter voxels
    (≥ 60 % WM) where the smooth field ``field`` is highest: confluent patches (decision 0040)."""
    white = pwm >= WMH_MIN_WM_SHARE * np.maximum(pgm + pwm, 1e-6)
    if not white.any() or fraction <= 0:
        return np.zeros(pgm.shape, bool)
    return white & (field >= np.quantile(field[white], 1.0 - fraction))


def apply_white_matter_disease(h: Haemodynamics, pgm: NDArray, pwm: NDArray, wmh: NDArray, tissue_values: dict,
                               realism_values: dict) -> None:
    """Older brain: in ``wmh`` the white-matter part of CBF becomes ``wmh_cbf``, of CBV ``wmh_rcbv``× its
    value, and the arrival comes ``wmh_extra_delay_s`` later (Tmax kept ≤ :data:`WMH_TMAX_MAX_S`), in place.

    These are the subject's healthy values (rCBF = rCBV = 1 stay: the lesion is relative to them).
    """
    g, w = pgm[wmh], pwm[wmh]
    healthy_cbf = g * tissue_values["gm_cbf"] + w * tissue_values["wm_cbf"]
    healthy_cbv = g * tissue_values["gm_cbv"] + w * tissue_values["wm_cbv"]
    h.cbf[wmh] *= (g * tissue_values["gm_cbf"] + w * realism_values["wmh_cbf"]) / healthy_cbf
    h.cbv[wmh] *= (g * tissue_values["gm_cbv"] + w * realism_values["wmh_rcbv"] * tissue_values["wm_cbv"]) / healthy_cbv
    delay = h.delay_s[wmh] + realism_values["wmh_extra_delay_s"] * w / (g + w)
    peak = residue_peak_time_s(h.shape[wmh], h.mtt_s[wmh], h.dispersion_s[wmh])
    h.delay_s[wmh] = np.clip(delay, 0.0, np.maximum(WMH_TMAX_MAX_S - peak, h.delay_s[wmh]))
