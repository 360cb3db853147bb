"""Stage 4: perfusion maps from concentrations and residues (eq. 4–8 of Cao et al.).

Conventions: the flow-scaled residue r(t) = k(t) [1/s] solves C_t = (C_a·dt) ⊛ r, so that
r = (ρ/k_H)·F·R(t) with F [ml/g/s] and R(0) = 1. Then

* eq. 4  CBV  = 100 · (k_AV·k_H/ρ) · ∫C_t dt / ∫C_a dt            [ml/100g]
* eq. 5  CBF  = 100 · 60 · (k_AV·k_H/ρ) · max_t r(t)              [ml/100g/min]
* eq. 6  MTT  = 60 · CBV / CBF                                     [s]
* eq. 7  Tmax = argmax_t r(t), between samples, < 0 before the AIF  [s]
* eq. 8  k_AV = ∫C_a dt / ∫C_v dt  (partial-volume correction of the AIF from a venous output)

with k_H = (1 − H_LV)/(1 − H_SV). ``kh = rho = 1`` gives OSIPI's convention (CBV = 100·∫C_t/∫C_a).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .constants import K_H, MAP_NAMES, RHO_G_PER_ML, UNITS
from ._validation import StnetInputError, check_in_allowed

__all__ = ["PerfusionMaps", "cbv_eq4", "cbf_eq5", "mtt_eq6", "tmax_eq7", "peak_index", "bandlimited_peak_index",
           "negative_delay_record", "TMAX_PEAK_METHODS", "k_av_eq8"]


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


#: How eq. 7 locates the residue's peak (docs/decisions/0041-subframe-tmax.md, 0074): "parabola"
#: between samples (the default), "bandlimited" at the maximum of the residue's trigonometric
#: interpolation (cSVD and oSVD, whose residues are trigonometric polynomials), "sample" on the
#: frame grid (before issue #15).
TMAX_PEAK_METHODS = ("parabola", "bandlimited", "sample")


def tmax_eq7(residue, dt_s: float, *, wrap: bool = False, peak: str = "parabola"):
    """Eq. 7: Tmax [s] = time of the maximum of the residue r(t), located between samples.

    Parameters
    ----------
    residue : ndarray, shape (..., L)
        Flow-scaled residues on the frame grid (sample i at i·dt_s).
    dt_s : float
        Frame interval [s].
    wrap : bool
        The residue comes from a circulant (zero-padded, period L) deconvolution: a maximum in
        the second half of the period is a negative delay (the tissue bolus precedes the AIF's)
        and gives a negative Tmax, (i − L)·dt_s, never a silent 0 (:func:`negative_delay_record`
        counts them). Without ``wrap`` (sSVD's linear model) Tmax lies in [0, (L − 1)·dt_s].
    peak : {"parabola", "bandlimited", "sample"}
        ``"parabola"``: the vertex of the parabola through the largest sample and its two
        neighbours (cyclic ones with ``wrap``), an offset within ±½ sample; a largest sample at
        either end of a linear residue stays there. ``"bandlimited"`` (needs ``wrap``): the
        maximum of the residue's trigonometric interpolation, the exact continuous residue of a
        frequency-domain (circulant) deconvolution (:func:`bandlimited_peak_index`).
        ``"sample"``: the largest sample (Tmax on multiples of dt_s). Which method uses which
        rule, with the measurements: docs/decisions/0041-subframe-tmax.md and
        docs/decisions/0074-tr-invariant-osvd.md.

    Returns
    -------
    ndarray, shape (...)
        Tmax [s]; 0 for a residue that is zero everywhere.

    Notes
    -----
    With y₋, y₀, y₊ the largest sample and its neighbours, the vertex lies at offset
    ½·(y₋ − y₊)/(y₋ − 2y₀ + y₊) samples.
    """
    residue = np.asarray(residue, dtype=np.float64)
    check_in_allowed(peak, TMAX_PEAK_METHODS, "peak")
    if peak == "bandlimited":
        if not wrap:
            raise StnetInputError("the band-limited Tmax needs a periodic (circulant) residue: pass wrap=True, "
                                  "or peak='parabola' for a linear one")
        return bandlimited_peak_index(residue) * dt_s
    return peak_index(residue, wrap=wrap, refine=peak == "parabola") * dt_s


def peak_index(residue: np.ndarray, *, wrap: bool, refine: bool = True) -> np.ndarray:
    """Fractional index of each curve's maximum along the last axis (see :func:`tmax_eq7`).

    The largest sample i (i − L where ``wrap`` and i ≥ L/2) plus, with ``refine``, the parabola
    vertex's offset in [−½, ½]; shape ``residue.shape[:-1]``.
    """
    length = residue.shape[-1]
    best = np.argmax(residue, axis=-1)
    index = best.astype(np.float64)
    if wrap:
        index = np.where(best >= length // 2, index - length, index)
    if not refine or length < 3:
        return index
    left, centre, right = (np.take_along_axis(residue, ((best + step) % length)[..., None], -1)[..., 0]
                           for step in (-1, 0, 1))
    curvature = left - 2.0 * centre + right
    inside = curvature < 0
    if not wrap:
        inside &= (best > 0) & (best < length - 1)
    offset = np.where(inside, 0.5 * (left - right) / np.where(inside, curvature, -1.0), 0.0)
    return index + np.clip(offset, -0.5, 0.5)


def bandlimited_peak_index(residue: np.ndarray, *, n_newton: int = 4, chunk: int = 8192) -> np.ndarray:
    """Fractional index of the maximum of each periodic curve's trigonometric interpolation, shape (...).

    A circulant deconvolution's residue is a trigonometric polynomial of period L (its spectrum
    is the filtered quotient): r(t) = (1/L)·[X₀ + 2·Σ_{0<k<L/2} Re(X_k·e^{iω_k t}) + X_{L/2}·cos πt],
    ω_k = 2πk/L, t in samples (the Nyquist term split between ±L/2, so r is real). Starting from
    the parabola's vertex (:func:`peak_index`), Newton's method on r'(t) = 0 with r' and r''
    summed exactly; each step is bounded to ±½ sample and the result to ±1 sample of the
    largest sample. Where r'' ≥ 0 (no maximum nearby: a flat or noise-only curve) the vertex is
    kept. Negative for a maximum in the window's second half, as in :func:`peak_index`. Cost:
    ``n_newton`` passes of O(L) per curve (no upsampled copy).
    """
    residue = np.asarray(residue, dtype=np.float64)
    shape, length = residue.shape[:-1], residue.shape[-1]
    flat = residue.reshape(-1, length)
    start = peak_index(flat, wrap=True)
    if length < 3:
        return start.reshape(shape)
    out = np.empty_like(start)
    k = np.arange(length // 2 + 1)
    weight = np.where((k == 0) | ((length % 2 == 0) & (k == length // 2)), 1.0, 2.0) / length
    omega = 2.0 * np.pi * k / length
    for lo in range(0, flat.shape[0], chunk):
        spectrum = np.fft.rfft(flat[lo : lo + chunk], axis=-1) * weight
        anchor = start[lo : lo + chunk]
        t = anchor.copy()
        for _ in range(n_newton):
            turn = spectrum * np.exp(1j * np.outer(t, omega))
            first = -(turn.imag * omega).sum(axis=-1)  # r'(t)
            second = -(turn.real * omega**2).sum(axis=-1)  # r''(t)
            ok = second < 0
            step = np.where(ok, -first / np.where(ok, second, -1.0), 0.0)
            t = np.clip(t + np.clip(step, -0.5, 0.5), np.round(anchor) - 1.0, np.round(anchor) + 1.0)
        out[lo : lo + chunk] = t
    return out.reshape(shape)


def negative_delay_record(tmax_s: np.ndarray, dt_s: float) -> dict:
    """How many voxels peak before the AIF: ``n_negative_delay_voxels`` and their fraction.

    A voxel counts when Tmax < −dt_s/2: its residue's largest sample lies in the circulant
    window's second half, the tissue bolus at least a frame ahead of the AIF's (an AIF from a
    late, downstream artery, or a noisy residue). Tmax in (−dt_s/2, 0) is within the
    interpolation's resolution of zero and does not count. NaN voxels are ignored; the fraction
    is of the finite voxels (None when there are none).
    """
    tmax_s = np.asarray(tmax_s, dtype=np.float64)
    finite = np.isfinite(tmax_s)
    count = int(np.count_nonzero(tmax_s[finite] < -0.5 * dt_s))
    n_finite = int(finite.sum())
    return {"n_negative_delay_voxels": count,
            "negative_delay_fraction": count / n_finite if n_finite else None}


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
    extra_volumes : dict
        Further volumes (x, y, z) written beside the maps as ``NAME.nii.gz`` (e.g. the AIF and VOF
        masks found automatically, :func:`stnet_lib.curves.attach_preparation`).
    extra_files : dict
        Further files written beside the maps, name → bytes (e.g. ``aif_qc.png``, ``motion.csv``).
    """

    cbv: np.ndarray
    cbf: np.ndarray
    mtt: np.ndarray
    tmax: np.ndarray
    method: str
    params: dict = field(default_factory=dict)
    mask: np.ndarray | None = None
    residue: np.ndarray | None = None
    extra_volumes: dict = field(default_factory=dict)
    extra_files: dict = field(default_factory=dict)

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
