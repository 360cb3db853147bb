"""Stage 2b: contrast-agent leakage correction of ΔR2* curves (Boxerman–Schmainda–Weisskoff), issue #15.

Where the blood–brain barrier is broken (tumours) the agent leaks into the tissue: its T1
shortening raises the signal and lowers the apparent ΔR2* (CBV too low), its extravascular T2*
effect does the opposite. The BSW model writes a voxel's ΔR2* as the whole-brain non-leaky
reference curve scaled, minus a leakage term proportional to its running integral,

    ΔR2*(t) = K1·ΔR2*_ref(t) − K2·∫₀ᵗ ΔR2*_ref(t′) dt′,

fitted per voxel by linear least squares (one 2-column design matrix for every voxel, so the whole
brain is one ``lstsq`` call). K2 [1/s] > 0 is T1-dominant leakage, K2 < 0 T2*-dominant. The
corrected curve adds the leakage term back, ΔR2*_corr = ΔR2* + K2·∫ΔR2*_ref, residuals kept.

The bidirectional variant (Leu et al. 2016) lets the agent flow back with rate k_ep [1/s]:
the leakage term is K2·∫₀ᵗ ΔR2*_ref(t′)·e^(−k_ep(t − t′)) dt′. With L(t) that term and ΔR2* = K1·ref − L,
L = (K2 − k_ep·K1)·∫ref + k_ep·∫ΔR2*, so that

    ΔR2*(t) = K1·ref(t) − (K2 − k_ep·K1)·∫₀ᵗ ref − k_ep·∫₀ᵗ ΔR2*,

linear in (K1, K2 − k_ep·K1, k_ep) with a third regressor of the voxel's own; the 3×3 normal
equations are solved for every voxel at once. The corrected curve is ΔR2* + L.

The reference is the mean ΔR2* of the brain's non-leaky voxels: every voxel is fitted against
the whole-brain mean, voxels whose leakage fraction (the fitted leakage term's area over the
intravascular part's) lies more than ``outlier_mad`` robust standard deviations (1.4826·MAD) from
the median are left out, and the fit is repeated against the mean of the rest until the set stops
changing (at most three rounds; the voxels kept are returned). The fraction, not K2, is judged,
so that voxels of any blood volume compare. This automatic choice separates leaky voxels only
where their leakage exceeds what transit-time differences alone make the BSW fit call leakage
(up to 17 % of the area, 95th percentile, for MTT 3–6 s around a 4.5 s mean; measured, with
the bias that such differences leave, in docs/decisions/0043-leakage-correction.md); give
``reference_mask`` (the non-enhancing brain of a post-contrast T1 image) where one is known.
Integrals are cumulative trapezoids from the first frame.

References
----------
Boxerman JL, Schmainda KM, Weisskoff RM. Relative cerebral blood volume maps corrected for
contrast agent extravasation significantly correlate with glioma tumor grade, whereas uncorrected
maps do not. AJNR Am J Neuroradiol 2006;27(4):859–67 (PMID 16611779).
Leu K, Boxerman JL, Cloughesy TF, et al. Improved leakage correction for single-echo dynamic
susceptibility contrast perfusion MRI estimates of relative cerebral blood volume in high-grade
gliomas by accounting for bidirectional contrast agent exchange. AJNR Am J Neuroradiol
2016;37(8):1440–6. doi:10.3174/ajnr.A4759
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.integrate import cumulative_trapezoid

from ._validation import StnetInputError, check_finite, check_in_allowed, check_mask, check_positive, check_time_axis

__all__ = ["LEAKAGE_METHODS", "LeakageCorrection", "correct_leakage", "correct_brain_curves", "fit_leakage",
           "leakage_fraction", "leakage_outputs", "reference_curve"]

#: Choices of ``compute_maps(leakage_correction=...)`` and ``stnet maps --leakage-correction``.
LEAKAGE_METHODS = ("none", "bsw", "bidirectional")

log = logging.getLogger(__name__)


@dataclass
class LeakageCorrection:
    """Result of :func:`correct_leakage` (volumes NaN outside the mask, except ``delta_r2``).

    Attributes
    ----------
    delta_r2 : ndarray, shape (..., t)
        Corrected ΔR2* [1/s]; voxels outside the mask unchanged.
    k1 : ndarray, shape (...)
        Scale of the reference curve (dimensionless).
    k2_per_s : ndarray, shape (...)
        Leakage constant K2 [1/s] (> 0: T1-dominant, < 0: T2*-dominant).
    kep_per_s : ndarray, shape (...), or None
        Back-flux rate k_ep [1/s] of the bidirectional model; None for BSW.
    reference : ndarray, shape (t,)
        The non-leaky reference ΔR2*_ref [1/s].
    reference_mask : ndarray of bool, shape (...)
        The voxels averaged into it.
    """

    delta_r2: NDArray
    k1: NDArray
    k2_per_s: NDArray
    kep_per_s: NDArray | None
    reference: NDArray
    reference_mask: NDArray


def _running_integral(curves: NDArray, dt_s: float) -> NDArray:
    """∫₀ᵗ along the last axis, cumulative trapezoid starting at 0 [unit·s]."""
    return cumulative_trapezoid(curves, dx=dt_s, axis=-1, initial=0.0)


def fit_leakage(curves: NDArray, reference: NDArray, dt_s: float, *, bidirectional: bool = False) -> dict:
    """Per-voxel least-squares fit of the (bidirectional) BSW model.

    Parameters
    ----------
    curves : ndarray, shape (n_vox, t)
        ΔR2* [1/s].
    reference : ndarray, shape (t,)
        Non-leaky reference ΔR2*_ref [1/s].
    dt_s : float
        Frame interval [s].
    bidirectional : bool
        Fit k_ep too (Leu et al. 2016).

    Returns
    -------
    dict
        ``k1``, ``k2_per_s`` (n_vox,), ``kep_per_s`` (n_vox,) or None, and ``leakage`` (n_vox, t):
        the fitted leakage term that the correction adds back [1/s].
    """
    ref_integral = _running_integral(reference, dt_s)
    if not bidirectional:
        design = np.stack([reference, -ref_integral], axis=1)  # (t, 2), the same for every voxel
        (k1, k2), *_ = np.linalg.lstsq(design, curves.T, rcond=None)
        return {"k1": k1, "k2_per_s": k2, "kep_per_s": None, "leakage": k2[:, None] * ref_integral[None, :]}
    own_integral = _running_integral(curves, dt_s)
    design = np.stack(np.broadcast_arrays(reference[None, :], -ref_integral[None, :], -own_integral), axis=-1)
    normal = np.einsum("vti,vtj->vij", design, design)  # (n_vox, 3, 3)
    rhs = np.einsum("vti,vt->vi", design, curves)
    k1, k2_net, kep = np.linalg.solve(normal, rhs[..., None])[..., 0].T
    leakage = k2_net[:, None] * ref_integral[None, :] + kep[:, None] * own_integral
    return {"k1": k1, "k2_per_s": k2_net + kep * k1, "kep_per_s": kep, "leakage": leakage}


def leakage_fraction(fit: dict, reference: NDArray, dt_s: float) -> NDArray:
    """The fitted leakage term's area over the intravascular part's, ∫L/∫(K1·ref) (dimensionless, per voxel)."""
    intravascular = fit["k1"] * np.trapezoid(reference, dx=dt_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.trapezoid(fit["leakage"], dx=dt_s, axis=-1) / intravascular


def reference_curve(curves: NDArray, dt_s: float, *, outlier_mad: float = 2.0,
                    max_rounds: int = 3) -> tuple[NDArray, NDArray]:
    """The non-leaky reference: the mean of the curves whose BSW leakage fraction is not an outlier.

    Parameters
    ----------
    curves : ndarray, shape (n_vox, t)
        ΔR2* of the brain's voxels [1/s].
    dt_s : float
        Frame interval [s].
    outlier_mad : float
        Voxels whose :func:`leakage_fraction` lies more than this many robust SDs (1.4826·MAD) from
        the median are left out.
    max_rounds : int
        Refits against the mean of the voxels kept, until the set stops changing.

    Returns
    -------
    reference : ndarray, shape (t,)
    kept : ndarray of bool, shape (n_vox,)
    """
    kept = np.ones(curves.shape[0], bool)
    for _ in range(max_rounds):
        reference = curves[kept].mean(axis=0)
        fraction = leakage_fraction(fit_leakage(curves, reference, dt_s), reference, dt_s)
        deviation = np.abs(fraction - np.median(fraction[kept]))
        spread = 1.4826 * np.median(deviation[kept])
        new = deviation <= outlier_mad * spread if spread > 0 else np.isfinite(fraction)
        if np.array_equal(new, kept) or not new.any():
            break
        kept = new
    log.info("leakage reference: %d of %d voxels kept as non-leaky", int(kept.sum()), kept.size)
    return curves[kept].mean(axis=0), kept


def correct_leakage(delta_r2: NDArray, dt_s: float, *, mask: NDArray | None = None,
                    reference_mask: NDArray | None = None, bidirectional: bool = False,
                    outlier_mad: float = 2.0) -> LeakageCorrection:
    """Leakage-corrected ΔR2* and the K2 map of a series (BSW, or its bidirectional variant).

    Parameters
    ----------
    delta_r2 : ndarray, shape (..., t)
        ΔR2* [1/s] (:func:`stnet_lib.signal.signal_to_delta_r2`).
    dt_s : float
        Frame interval [s].
    mask : ndarray of bool, shape delta_r2.shape[:-1], optional
        Voxels to correct (the brain); default all.
    reference_mask : ndarray of bool, optional
        Voxels whose mean is the reference; default: the mask's voxels that are not leaky
        (:func:`reference_curve`).
    bidirectional : bool
        Leu et al.'s model with back-flux k_ep.
    outlier_mad : float
        Outlier rule of the automatic reference.

    Returns
    -------
    LeakageCorrection
    """
    delta_r2 = np.asarray(delta_r2, dtype=np.float64)
    check_time_axis(delta_r2, "the ΔR2* series", min_frames=4)
    dt_s = check_positive(dt_s, "dt_s", "s")
    mask = np.ones(delta_r2.shape[:-1], bool) if mask is None else check_mask(mask, delta_r2.shape[:-1], "mask")
    curves = check_finite(delta_r2[mask], "ΔR2* inside the mask")
    if reference_mask is None:
        reference, kept = reference_curve(curves, dt_s, outlier_mad=outlier_mad)
        reference_mask = np.zeros(mask.shape, bool)
        reference_mask[mask] = kept
    else:
        reference_mask = check_mask(reference_mask, mask.shape, "reference_mask")
        reference = check_finite(delta_r2[reference_mask], "ΔR2* inside the reference mask").mean(axis=0)
    if not np.trapezoid(reference, dx=dt_s) > 0:
        raise StnetInputError("the reference ΔR2* curve shows no bolus (its integral is not positive): "
                              "check the mask and that the series holds the bolus")
    fit = fit_leakage(curves, reference, dt_s, bidirectional=bidirectional)
    corrected = delta_r2.copy()
    corrected[mask] = curves + fit["leakage"]

    def volume(values):
        out = np.full(mask.shape, np.nan)
        out[mask] = values
        return out

    kep = None if fit["kep_per_s"] is None else volume(fit["kep_per_s"])
    return LeakageCorrection(corrected, volume(fit["k1"]), volume(fit["k2_per_s"]), kep, reference, reference_mask)


def correct_brain_curves(delta_r2: NDArray, dt_s: float, method: str) -> LeakageCorrection | None:
    """The pipeline's step between ΔR2* and concentration: ``method`` of :data:`LEAKAGE_METHODS` on the
    brain's curves (n_vox, t) [1/s], the reference found automatically; None for ``"none"``."""
    check_in_allowed(method, LEAKAGE_METHODS, "leakage_correction")
    if method == "none":
        return None
    return correct_leakage(delta_r2, dt_s, bidirectional=method == "bidirectional")


def leakage_outputs(correction: LeakageCorrection, brain_mask: NDArray, method: str) -> tuple[dict, dict]:
    """Volumes and record of a brain's correction (:func:`correct_brain_curves` of ``brain_mask``'s voxels).

    Returns
    -------
    volumes : dict
        ``{"k2": K2 [1/s]}`` (and ``"kep"``: k_ep [1/s], bidirectional) on the brain mask's grid,
        NaN outside the brain: written as ``k2.nii.gz`` (``kep.nii.gz``) beside the maps.
    record : dict
        For ``maps.json``: the method, the reference's voxel count and curve [1/s], K2's median
        and 5th/95th percentiles over the brain [1/s].
    """
    brain = np.asarray(brain_mask, bool)
    volumes = {}
    for name, values in (("k2", correction.k2_per_s), ("kep", correction.kep_per_s)):
        if values is not None:
            volumes[name] = np.full(brain.shape, np.nan)
            volumes[name][brain] = values
    k2 = correction.k2_per_s[np.isfinite(correction.k2_per_s)]
    record = {"method": method, "reference_voxels": int(np.count_nonzero(correction.reference_mask)),
              "reference_delta_r2_per_s": np.round(correction.reference, 6).tolist(),
              "k2_per_s_median": float(np.median(k2)) if k2.size else None,
              "k2_per_s_p5_p95": np.percentile(k2, [5, 95]).tolist() if k2.size else None}
    return volumes, record
