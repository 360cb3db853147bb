"""From a loaded scan to perfusion maps: the whole classical pipeline in one call.

``compute_maps(scan, method)`` = curve preparation (:func:`stnet_lib.curves.prepare_curves`:
motion, non-steady frames, slice timing, baseline, the automatic AIF/VOF where no mask is given)
→ eq. 1 (S0 from the pre-bolus frames of the brain's mean curve, ΔR2*) → eq. 2 (tissue linear,
arterial quadratic or linear, on the arterial voxels' mean signal: :func:`stnet_lib.curves.blood_curves`)
→ k_AV from the VOF (eq. 8) → deconvolution (eq. 3) → eq. 4–7. ST-Net (``method="stnet"``) reads
the same prepared scan and is dispatched to :mod:`stnet_lib.network`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .constants import K_H, RHO_G_PER_ML
from .curves import BloodCurves, PreparedScan, attach_preparation, blood_curves, prepare_curves, tissue_concentration
from .deconvolution import METHODS, deconvolve
from .io import Scan
from .signal import arterial_baseline
from ._validation import check_in_allowed

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
    blood: BloodCurves | None = None
    prepared: PreparedScan | None = None


def scan_concentrations(scan: Scan | PreparedScan, *, baseline: slice | None = None,
                        arterial_quadratic: bool = True) -> Concentrations:
    """Eq. 1–2 and 8 on a scan: tissue curves of the brain voxels, the AIF and VOF, k_AV.

    A :class:`~stnet_lib.io.Scan` is prepared first (:func:`~stnet_lib.curves.prepare_curves`,
    ``baseline`` in its own frame numbers); the baseline frames are found once, on the brain's
    mean curve, and used for every voxel.
    """
    prepared = scan if isinstance(scan, PreparedScan) else prepare_curves(scan, baseline=baseline)
    scan, baseline = prepared.scan, prepared.baseline
    c_tissue, _ = tissue_concentration(scan.signal[scan.brain_mask], baseline, te_ms=scan.te_ms, field_t=scan.field_t)
    blood = blood_curves(scan.signal, scan.aif_mask, scan.vof_mask, baseline, te_ms=scan.te_ms, field_t=scan.field_t,
                         dt_s=scan.tr_s, quadratic=arterial_quadratic)
    return Concentrations(c_tissue, blood.c_aif, blood.c_vof, baseline, blood.k_av, blood, prepared)


def compute_maps(
    scan: Scan,
    method: str = "osvd",
    *,
    kh: float = K_H,
    rho: float = RHO_G_PER_ML,
    baseline: slice | None = None,
    arterial_quadratic: bool = True,
    motion_correct: bool = False,
    device: str = "cpu",
    keep_residue: bool = False,
    **options,
):
    """Perfusion maps (x, y, z) of a scan's brain voxels; NaN outside the brain mask.

    Parameters
    ----------
    scan : Scan
        From :func:`stnet_lib.load_scan`; without an AIF mask the AIF (and VOF) are found
        automatically (:mod:`stnet_lib.aif`).
    method : str
        One of ``ALL_METHODS``: ``"ssvd"``, ``"csvd"``, ``"osvd"``, ``"ttv"``, ``"stnet"``.
    kh, rho : float
        Haematocrit factor and tissue density [g/ml] (eq. 4–5).
    baseline : slice, optional
        Pre-bolus frames (the scan's frame numbers); detected on the brain's mean curve when omitted.
    arterial_quadratic : bool
        Convert the arterial ΔR2* with the quadratic blood relaxivity (default) or linearly.
    motion_correct : bool
        Register the frames rigidly before anything else (:mod:`stnet_lib.motion`).
    **options
        Method options (thresholds; ``checkpoint`` for ST-Net).

    Returns
    -------
    PerfusionMaps
        ``params`` records the preparation (frames dropped, motion, masks computed, the AIF/VOF
        voxel counts and mean curves); ``extra_volumes`` holds the masks found automatically.
    """
    check_in_allowed(method, ALL_METHODS, "method")
    prepared = prepare_curves(scan, motion_correct=motion_correct, baseline=baseline)
    if method == "stnet":
        from .network.inference import predict_maps

        return predict_maps(prepared, device=device, **options)
    conc = scan_concentrations(prepared, arterial_quadratic=arterial_quadratic)
    scan = prepared.scan
    common = dict(kh=kh, rho=rho, k_av=conc.k_av, device=device, keep_residue=keep_residue, **options)
    if METHODS[method].spatial:
        volume = np.zeros(scan.brain_mask.shape + conc.c_tissue.shape[-1:])
        volume[scan.brain_mask] = conc.c_tissue
        maps = deconvolve(volume, conc.c_aif, scan.tr_s, method, mask=scan.brain_mask, **common)
    else:
        maps = deconvolve(conc.c_tissue, conc.c_aif, scan.tr_s, method, **common).scatter(scan.brain_mask)
    maps.params.update(te_ms=scan.te_ms, field_t=scan.field_t, baseline_frames=[conc.baseline.start, conc.baseline.stop],
                       arterial_quadratic=arterial_quadratic)
    return attach_preparation(maps, prepared, conc.blood)
