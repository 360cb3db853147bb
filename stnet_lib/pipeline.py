"""From a loaded scan to perfusion maps: the whole classical pipeline in one call.

``compute_maps(scan, method)`` = curve preparation (:func:`stnet_lib.curves.prepare_curves`:
motion, non-steady frames, slice timing, baseline, the automatic AIF/VOF where no mask is given)
→ eq. 1 (S0 from the pre-bolus frames of the brain's mean curve, ΔR2*) → eq. 2 (tissue linear,
arterial quadratic or linear, on the arterial voxels' mean signal: :func:`stnet_lib.curves.blood_curves`)
→ k_AV from the VOF (eq. 8) → deconvolution (eq. 3) → eq. 4–7; with ``leakage_correction`` the
tissue ΔR2* is corrected for contrast leakage between eq. 1 and eq. 2 (:mod:`stnet_lib.leakage`).
ST-Net (``method="stnet"``) reads the same prepared scan and is dispatched to :mod:`stnet_lib.network`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .constants import K_H, RHO_G_PER_ML
from .curves import BloodCurves, PreparedScan, attach_preparation, blood_curves, prepare_curves, tissue_concentration
from .deconvolution import METHODS, deconvolve
from .io import Scan
from .leakage import LEAKAGE_METHODS, LeakageCorrection, correct_brain_curves, leakage_outputs
from .signal import arterial_baseline, delta_r2_to_concentration
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
    blood: BloodCurves | None = None
    prepared: PreparedScan | None = None
    leakage: LeakageCorrection | None = None


def scan_concentrations(scan: Scan | PreparedScan, *, baseline: slice | None = None,
                        arterial_quadratic: bool = True, leakage_correction: str = "none") -> Concentrations:
    """Eq. 1–2 and 8 on a scan: tissue curves of the brain voxels, the AIF and VOF, k_AV.

    A :class:`~stnet_lib.io.Scan` is prepared first (:func:`~stnet_lib.curves.prepare_curves`,
    ``baseline`` in its own frame numbers); the baseline frames are found once, on the brain's
    mean curve, and used for every voxel. ``leakage_correction`` (:data:`stnet_lib.leakage.LEAKAGE_METHODS`)
    corrects the tissue ΔR2* before eq. 2.
    """
    prepared = scan if isinstance(scan, PreparedScan) else prepare_curves(scan, baseline=baseline)
    scan, baseline = prepared.scan, prepared.baseline
    c_tissue, eq1 = tissue_concentration(scan.signal[scan.brain_mask], baseline, te_ms=scan.te_ms, field_t=scan.field_t)
    leakage = correct_brain_curves(np.asarray(eq1.delta_r2_per_s), scan.tr_s, leakage_correction)
    if leakage is not None:
        c_tissue = delta_r2_to_concentration(leakage.delta_r2, kind="tissue", field_t=scan.field_t)
    blood = blood_curves(scan.signal, scan.aif_mask, scan.vof_mask, baseline, te_ms=scan.te_ms, field_t=scan.field_t,
                         dt_s=scan.tr_s, quadratic=arterial_quadratic)
    return Concentrations(c_tissue, blood.c_aif, blood.c_vof, baseline, blood.k_av, blood, prepared, leakage)


def compute_maps(
    scan: Scan | PreparedScan,
    method: str = "osvd",
    *,
    kh: float = K_H,
    rho: float = RHO_G_PER_ML,
    baseline: slice | None = None,
    arterial_quadratic: bool = True,
    motion_correct: bool = False,
    leakage_correction: str = "none",
    device: str = "cpu",
    keep_residue: bool = False,
    **options,
):
    """Perfusion maps (x, y, z) of a scan's brain voxels; NaN outside the brain mask.

    Parameters
    ----------
    scan : Scan or PreparedScan
        From :func:`stnet_lib.load_scan`; without an AIF mask the AIF (and VOF) are found
        automatically (:mod:`stnet_lib.aif`). A :class:`~stnet_lib.curves.PreparedScan`
        (:func:`stnet_lib.curves.prepare_curves`) is used as it is, so that several methods share
        one preparation and one automatic AIF (``motion_correct`` and ``baseline`` then belong to
        that preparation and are refused here).
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
    leakage_correction : {"none", "bsw", "bidirectional"}
        Contrast-leakage correction of the tissue ΔR2* (Boxerman–Schmainda–Weisskoff, or Leu et
        al.'s bidirectional variant; :mod:`stnet_lib.leakage`): the K2 map [1/s] (and k_ep) goes
        into ``extra_volumes``, the reference into ``params["leakage_correction"]``. Deconvolution
        methods only.
    **options
        Method options (thresholds; ``checkpoint`` for ST-Net).

    Returns
    -------
    PerfusionMaps
        ``params`` records the preparation (frames dropped, motion, masks computed, the AIF/VOF
        voxel counts and mean curves); ``extra_volumes`` holds the masks found automatically.
    """
    check_in_allowed(method, ALL_METHODS, "method")
    check_in_allowed(leakage_correction, LEAKAGE_METHODS, "leakage_correction")
    if method == "stnet" and leakage_correction != "none":
        raise StnetInputError("leakage correction applies to the deconvolution methods; ST-Net reads the "
                              "uncorrected series: drop the leakage correction or use e.g. osvd")
    if isinstance(scan, PreparedScan):
        if motion_correct or baseline is not None:
            raise StnetInputError("the scan is already prepared: pass motion_correct and baseline to prepare_curves, "
                                  "not to compute_maps")
        prepared = scan
    else:
        prepared = prepare_curves(scan, motion_correct=motion_correct, baseline=baseline)
    if method == "stnet":
        from .network.inference import predict_maps

        return predict_maps(prepared, device=device, **options)
    conc = scan_concentrations(prepared, arterial_quadratic=arterial_quadratic, leakage_correction=leakage_correction)
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
    if conc.leakage is not None:
        volumes, record = leakage_outputs(conc.leakage, scan.brain_mask, leakage_correction)
        maps.extra_volumes.update(volumes)
        maps.params["leakage_correction"] = record
    return attach_preparation(maps, prepared, conc.blood)
