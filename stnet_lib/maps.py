"""Stage 4: perfusion maps from concentrations and residues (eq. 4–8 of Cao et al.).

Conventions: the flow-scaled residue r(t) = k(t) [1/s] solves C_t = (C_a·dt) ⊛ r, so that
r = (ρ/k_H)·F·R(t) with F [ml/g/s] and R(0) = 1. Then

* eq. 4  CBV  = 100 · (k_AV·k_H/ρ) · ∫C_t dt / ∫C_a dt            [ml/100g]
* eq. 5  CBF  = 100 · 60 · (k_AV·k_H/ρ) · max_t r(t)              [ml/100g/min]
* eq. 6  MTT  = 60 · CBV / CBF                                     [s]
* eq. 7  Tmax = argmax_t r(t)                                      [s]
* eq. 8  k_AV = ∫C_a dt / ∫C_v dt  (partial-volume correction of the AIF from a venous output)

with k_H = (1 − H_LV)/(1 − H_SV). ``kh = rho = 1`` gives OSIPI's convention (CBV = 100·∫C_t/∫C_a).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .constants import K_H, MAP_NAMES, RHO_G_PER_ML, UNITS
from ._validation import StnetInputError

__all__ = ["PerfusionMaps", "cbv_eq4", "cbf_eq5", "mtt_eq6", "tmax_eq7", "k_av_eq8"]


def _integral(curves: np.ndarray, dt_s: float) -> np.ndarray:
    """Trapezoidal integral over the last axis [unit·s]."""
    return np.trapezoid(np.asarray(curves, dtype=np.float64), dx=dt_s, axis=-1)


def cbv_eq4(c_tissue, c_aif, dt_s: float, *, k_av: float = 1.0, kh: float = K_H, rho: float = RHO_G_PER_ML):
    """Eq. 4: CBV [ml/100g] = 100·(k_AV·k_H/ρ)·∫C_t/∫C_a.

    Parameters
    ----------
    c_tissue : ndarray, shape (..., t)
        Tissue concentration [mM].
    c_aif : ndarray, shape (t,)
        Arterial concentration [mM].
    dt_s : float
        Frame interval [s] (cancels in the ratio; kept for the integrals' units).
    k_av, kh, rho : float
        AIF partial-volume factor (eq. 8), haematocrit factor k_H, tissue density ρ [g/ml].
    """
    aif_area = _integral(c_aif, dt_s)
    if not aif_area > 0:
        raise StnetInputError(f"the arterial curve's integral is {aif_area:.3g}: the AIF shows no bolus")
    return 100.0 * (k_av * kh / rho) * _integral(c_tissue, dt_s) / aif_area


def cbf_eq5(residue_max_per_s, *, k_av: float = 1.0, kh: float = K_H, rho: float = RHO_G_PER_ML):
    """Eq. 5: CBF [ml/100g/min] = 100·60·(k_AV·k_H/ρ)·max r, with max r [1/s] the flow-scaled residue's peak."""
    return 6000.0 * (k_av * kh / rho) * np.asarray(residue_max_per_s, dtype=np.float64)


def mtt_eq6(cbv, cbf):
    """Eq. 6: MTT [s] = 60·CBV/CBF (central volume theorem); NaN where CBF ≤ 0 (MTT undefined)."""
    cbv = np.asarray(cbv, dtype=np.float64)
    cbf = np.asarray(cbf, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cbf > 0, 60.0 * cbv / np.where(cbf > 0, cbf, 1.0), np.nan)


def tmax_eq7(residue, dt_s: float, *, wrap: bool = False):
    """Eq. 7: Tmax [s] = time of the maximum of the residue r(t).

    Parameters
    ----------
    residue : ndarray, shape (..., L)
        Flow-scaled residues on the frame grid (sample i at i·dt_s).
    dt_s : float
        Frame interval [s].
    wrap : bool
        The residue comes from a circulant (zero-padded, period L) deconvolution: a maximum in
        the second half of the period is a negative delay (the tissue bolus precedes the AIF's),
        mapped to (i − L)·dt_s and then reported as 0 s, since the hypoperfusion measure is a
        delay behind the AIF. Negative residue values never win the argmax of a curve with a
        positive peak, and CBV and MTT do not use the residue's shape at all.
    """
    residue = np.asarray(residue)
    index = np.argmax(residue, axis=-1).astype(np.float64)
    length = residue.shape[-1]
    if wrap:
        index = np.where(index >= length // 2, index - length, index)
    return np.maximum(index, 0.0) * dt_s


def k_av_eq8(c_aif, c_vof, dt_s: float) -> float:
    """Eq. 8: k_AV = ∫C_a/∫C_v (dimensionless), from the arterial and venous output curves [mM]."""
    vof_area = float(_integral(c_vof, dt_s))
    if not vof_area > 0:
        raise StnetInputError(f"the venous curve's integral is {vof_area:.3g}: the VOF mask shows no bolus")
    return float(_integral(c_aif, dt_s)) / vof_area


@dataclass
class PerfusionMaps:
    """Perfusion maps of one method on one scan or curve set.

    Attributes
    ----------
    cbv, cbf, mtt, tmax : ndarray, shape (...)
        Maps in ``UNITS`` (ml/100g, ml/100g/min, s, s); NaN outside ``mask``.
    method : str
        The method that made them (``"osvd"``, ``"ttv"``, ``"stnet"``, ...).
    params : dict
        Every parameter that made them (thresholds, kh, rho, k_av, TE, TR, ...), for the sidecar.
    mask : ndarray of bool, optional
        The voxels computed.
    residue : ndarray, shape (..., L), optional
        The flow-scaled residues [1/s] when the method has them.
    """

    cbv: np.ndarray
    cbf: np.ndarray
    mtt: np.ndarray
    tmax: np.ndarray
    method: str
    params: dict = field(default_factory=dict)
    mask: np.ndarray | None = None
    residue: np.ndarray | None = None

    units = UNITS

    def as_dict(self) -> dict[str, np.ndarray]:
        """The four maps by name, in ``MAP_NAMES`` order."""
        return {name: getattr(self, name) for name in MAP_NAMES}

    def scatter(self, mask: np.ndarray) -> "PerfusionMaps":
        """Put maps computed on ``mask``'s voxels (1-D, in ``mask`` order) into a volume, NaN outside."""
        def fill(values, trailing=()):
            out = np.full(mask.shape + trailing, np.nan, dtype=np.float64)
            out[mask] = values
            return out

        residue = None if self.residue is None else fill(self.residue, self.residue.shape[-1:])
        maps = {name: fill(values) for name, values in self.as_dict().items()}
        return dataclasses.replace(self, **maps, mask=mask, residue=residue)
