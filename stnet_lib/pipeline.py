"""From a loaded scan to perfusion maps: the whole classical pipeline in one call.

``compute_maps(scan, method)`` = eq. 1 (S0 from the pre-bolus frames of the brain's mean curve,
ΔR2*) → eq. 2 (tissue linear, arterial quadratic or linear) → AIF = mean arterial concentration
(k_AV from the VOF, eq. 8, when a VOF mask is given) → deconvolution (eq. 3) → eq. 4–7.
ST-Net (``method="stnet"``) maps the signal directly and is dispatched to :mod:`stnet_lib.network`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .constants import K_H, RHO_G_PER_ML
from .deconvolution import METHODS, deconvolve
from .io import Scan
from .maps import k_av_eq8
from .signal import delta_r2_to_concentration, detect_baseline, signal_to_delta_r2
from ._validation import StnetInputError, check_in_allowed

__all__ = ["Concentrations", "scan_concentrations", "arterial_baseline", "compute_maps", "ALL_METHODS"]

log = logging.getLogger(__name__)

#: Every method ``compute_maps`` accepts: the deconvolution methods and ST-Net.
ALL_METHODS = (*METHODS, "stnet")


@dataclass
class Concentrations:
    """Concentration curves [mM] of a scan's brain voxels (n_vox, t) and arterial/venous means (t,)."""

    c_tissue: np.ndarray
    c_aif: np.ndarray
    c_vof: np.ndarray | None
    baseline: slice
    k_av: float


#: An arterial curve has arrived once it is this fraction below its baseline level.
ARTERIAL_ARRIVAL_DROP = 0.10


def arterial_baseline(curve: np.ndarray, baseline: slice) -> slice:
    """The brain's baseline frames cut before the arterial bolus arrives, which precedes the tissue's.

    The arrival is the first frame after ``baseline.start`` more than ``ARTERIAL_ARRIVAL_DROP``
    below the median of ``curve`` over ``baseline`` (arterial drops are 40–95 %, far beyond
    noise); the result keeps at least 2 frames, else the brain's baseline is returned.
    """
    level = np.median(curve[baseline])
    below = np.nonzero(curve[baseline.start :] < (1.0 - ARTERIAL_ARRIVAL_DROP) * level)[0]
    stop = baseline.stop if below.size == 0 else min(baseline.stop, baseline.start + int(below[0]) - 1)
    return slice(baseline.start, stop) if stop - baseline.start >= 2 else baseline


def _mean_concentration(scan: Scan, mask, baseline, *, kind, quadratic) -> np.ndarray:
    baseline = arterial_baseline(scan.signal[mask].mean(axis=0, dtype=np.float64), baseline)
    delta_r2 = signal_to_delta_r2(scan.signal[mask], scan.te_ms, baseline=baseline).delta_r2_per_s
    return delta_r2_to_concentration(delta_r2, kind=kind, field_t=scan.field_t, quadratic=quadratic).mean(axis=0)


def scan_concentrations(scan: Scan, *, baseline: slice | None = None, arterial_quadratic: bool = True) -> Concentrations:
    """Eq. 1–2 and 8 on a scan: tissue curves of the brain voxels, the AIF and VOF, k_AV.

    The baseline frames are found once, on the brain's mean curve, and used for every voxel.
    """
    brain = scan.brain_mask
    if baseline is None:
        baseline = detect_baseline(scan.signal[brain])
    tissue = signal_to_delta_r2(scan.signal[brain], scan.te_ms, baseline=baseline)
    c_tissue = delta_r2_to_concentration(tissue.delta_r2_per_s, kind="tissue", field_t=scan.field_t)
    c_aif = _mean_concentration(scan, scan.aif_mask, baseline, kind="arterial", quadratic=arterial_quadratic)
    c_vof, k_av = None, 1.0
    if scan.vof_mask is not None:
        c_vof = _mean_concentration(scan, scan.vof_mask, baseline, kind="arterial", quadratic=arterial_quadratic)
        k_av = k_av_eq8(c_aif, c_vof, scan.tr_s)
    return Concentrations(c_tissue, c_aif, c_vof, baseline, k_av)


def compute_maps(
    scan: Scan,
    method: str = "osvd",
    *,
    kh: float = K_H,
    rho: float = RHO_G_PER_ML,
    baseline: slice | None = None,
    arterial_quadratic: bool = True,
    device: str = "cpu",
    keep_residue: bool = False,
    **options,
):
    """Perfusion maps (x, y, z) of a scan's brain voxels; NaN outside the brain mask.

    Parameters
    ----------
    scan : Scan
        From :func:`stnet_lib.load_scan`.
    method : str
        One of ``ALL_METHODS``: ``"ssvd"``, ``"csvd"``, ``"osvd"``, ``"ttv"``, ``"stnet"``.
    kh, rho : float
        Haematocrit factor and tissue density [g/ml] (eq. 4–5).
    baseline : slice, optional
        Pre-bolus frames; detected on the brain's mean curve when omitted.
    arterial_quadratic : bool
        Convert the arterial ΔR2* with the quadratic blood relaxivity (default) or linearly.
    **options
        Method options (thresholds; ``checkpoint`` for ST-Net).
    """
    check_in_allowed(method, ALL_METHODS, "method")
    if method == "stnet":
        from .network.inference import predict_maps

        return predict_maps(scan, device=device, **options)
    conc = scan_concentrations(scan, baseline=baseline, arterial_quadratic=arterial_quadratic)
    if not np.trapezoid(conc.c_aif) > 0:
        raise StnetInputError("the AIF mask's mean curve shows no bolus (no signal drop): check the AIF mask")
    common = dict(kh=kh, rho=rho, k_av=conc.k_av, device=device, keep_residue=keep_residue, **options)
    if METHODS[method].spatial:
        volume = np.zeros(scan.brain_mask.shape + conc.c_tissue.shape[-1:])
        volume[scan.brain_mask] = conc.c_tissue
        maps = deconvolve(volume, conc.c_aif, scan.tr_s, method, mask=scan.brain_mask, **common)
    else:
        maps = deconvolve(conc.c_tissue, conc.c_aif, scan.tr_s, method, **common).scatter(scan.brain_mask)
    maps.params.update(te_ms=scan.te_ms, field_t=scan.field_t, baseline_frames=[conc.baseline.start, conc.baseline.stop],
                       arterial_quadratic=arterial_quadratic)
    return maps
