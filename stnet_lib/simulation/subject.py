"""Stage 1 (synthetic data): one synthetic stroke subject — DSC series plus exact ground truth.

``make_subject(config, rng)`` draws the acquisition (field, TE, TR, SNR), the AIF, the anatomy
(``anatomy.py``), healthy haemodynamics and a lesion (``haemodynamics.py``, ``lesion.py``),
simulates concentration on a fine time grid, converts it to signal (eq. 1–2 forward), adds
Rician noise, and returns a :class:`Subject` with the series and its truth (CBV, CBF, MTT,
Tmax, hypoperfusion and core masks). Parameter values follow simulation_recipe.md; §-numbers
below refer to it.

The realism features of issue #16 (``config.realism``, :mod:`.realism`) add an arterial plateau and
a late recirculation, non-steady first frames, in-plane correlated noise, large vessels, CSF as its
own compartment, interleaved slice timing and older brains (decision 0040).

The generator ``rng`` is split into independent streams (acquisition, anatomy, haemodynamics,
lesion, noise, realism), so that a noise-free subject (``config.noise = False``) is the noisy one
without its noise, and turning a realism feature off changes nothing else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ..constants import TMAX_THRESHOLD_S
from .anatomy import MNI_NOTICE, apply_atrophy, draw_pose, make_anatomy, smooth_field
from .haemodynamics import (apply_lesion, apply_white_matter_disease, draw_tissue_values, healthy_haemodynamics,
                            white_matter_disease)
from .lesion import draw_lesion, severity_field
from .realism import Realism, draw_realism, kernel_coefficient
from .render import render
from .synthesis import add_correlated_rician_noise, add_rician_noise
from .vascular import RESIDUE_SHAPES
from .vessels import MCA_PATH_MM, SSS_PATH_MM, n_vessel_voxels, path_voxels, vessel_fractions

__all__ = ["SubjectConfig", "Subject", "draw_acquisition", "make_subject", "CORE_RCBF"]

#: Core = voxels whose CBF is below 30 % of their healthy value (recipe §4.2, CT convention).
CORE_RCBF = 0.3
#: Voxels with more GM + WM than this are perfused (simulated); the rest is CSF or background.
PERFUSED_TISSUE_FRACTION = 0.02


@dataclass(frozen=True)
class SubjectConfig:
    """What one subject looks like (the random values are drawn inside ``make_subject``)."""

    shape: tuple[int, int, int] = (256, 256, 20)  # grid (x, y, z), the paper's
    voxel_mm: tuple[float, float, float] = (0.9, 0.9, 5.0)  # voxel size [mm]
    n_frames: int = 50  # frames (the paper's 50)
    has_lesion: bool = True  # draw a stroke lesion
    noise: bool = True  # add Rician noise (False: the same subject without noise)
    slab_centre_mm: tuple[float, float] = (5.0, 35.0)  # range of the slab centre, MNI z [mm] (§6)
    max_fine_step_s: float = 0.1  # largest fine simulation step [s] (§9: 0.01–0.1)
    brain_tissue_fraction: float = 0.25  # GM + WM fraction from which a voxel is in the brain mask
    tr_s: float | None = None  # fixed frame interval [s] instead of the drawn one (checks only)
    realism: Realism = Realism()  # realism features of issue #16 (all on; Realism.none(): the simulator before)
    #: training-only haemodynamics: healthy MTT log-uniform over this range [s], independent of CBV
    #: (decision 0077); None: the physiological rule (MTT = 60·CBV/CBF from the tissue values)
    mtt_range_s: tuple[float, float] | None = None

    @property
    def lesion_volume_scale(self) -> float:
        """Lesion volume targets scale with the slab thickness (the paper's slab is 100 mm)."""
        return min(1.0, self.shape[2] * self.voxel_mm[2] / 100.0)


@dataclass
class Subject:
    """A simulated DSC series with its ground truth.

    Arrays are (x, y, z[, t]); maps are float32 with NaN outside ``brain_mask``; masks are bool,
    except ``masks["vessel"]`` (uint8: 1 artery, 2 vein, AIF and VOF voxels included), whose
    voxels are outside ``brain_mask``; ``tissue["vessel"]`` is their large-vessel blood fraction.
    ``c_aif``/``c_vof`` (t,) are the true arterial and venous concentrations [mM] at the frame
    times k·TR; ``c_tissue`` (n_brain, t) the noise-free tissue concentration [mM] of the brain
    voxels in ``brain_mask`` order at the same times (slice timing corrected).
    ``slice_timing_s`` (z,) is each slice's acquisition time within TR [s]: slice z's frame k is
    sampled at k·TR + t_z. The truth's Tmax is relative to the arterial input C_a (continuous
    time, the AIF as reference), whatever the slice. ``params`` holds every drawn value (JSON-safe).
    """

    signal: NDArray
    affine: NDArray
    te_ms: float
    tr_s: float
    field_t: float
    snr: float
    masks: dict
    truth: dict
    tissue: dict
    c_aif: NDArray
    c_vof: NDArray
    c_tissue_fn: Callable[[], NDArray] = field(repr=False)
    params: dict = field(default_factory=dict)
    slice_timing_s: NDArray | None = None
    _c_tissue: NDArray | None = field(default=None, init=False, repr=False)

    @property
    def c_tissue(self) -> NDArray:
        """Noise-free tissue concentration [mM] of the brain voxels at k·TR, (n_brain, t): computed on
        first use (with slice timing it is a second pass over the kernel tables)."""
        if self._c_tissue is None:
            self._c_tissue = self.c_tissue_fn()
        return self._c_tissue

    @property
    def time_s(self) -> NDArray:
        """Frame times [s], shape (t,)."""
        return np.arange(self.signal.shape[-1]) * self.tr_s


def draw_acquisition(rng: np.random.Generator) -> dict:
    """Acquisition, bolus and noise of one subject (§1.3, §2, §5, §9); relaxivities follow the field
    (:func:`stnet_lib.constants.relaxivities`)."""
    field_t = float(rng.choice([1.5, 3.0]))
    te_ms = rng.uniform(40, 50) if field_t == 1.5 else rng.uniform(25, 35)  # Boxerman 2020; 3 T from 25 ms (issue #16)
    tr_s = rng.uniform(1.2, 1.9)
    values = {
        "field_t": field_t, "te_ms": te_ms, "tr_s": tr_s,
        "snr": float(np.exp(rng.uniform(np.log(15.0), np.log(100.0)))),
        "aif_t0_s": rng.uniform(max(8.0, 6.0 * tr_s), 20.0), "aif_alpha": rng.uniform(2.5, 4.5),
        "aif_beta_s": rng.uniform(1.0, 2.2), "aif_peak_mM": rng.uniform(5.0, 10.0),
        "recirc_delay_s": rng.uniform(6.0, 12.0), "recirc_fraction": rng.uniform(0.05, 0.25),
        "recirc_tau_s": rng.uniform(5.0, 20.0), "vof_transit_s": rng.uniform(4.0, 7.0),
        "s0_gm": 600.0 * rng.uniform(0.5, 2.0), "s0_csf_ratio": rng.uniform(1.3, 1.6),
        "coil_amplitude": rng.uniform(0.05, 0.1),
    }
    return {key: round(float(value), 4) for key, value in values.items()}


def _fields(shape, voxel_mm, sim: NDArray, rng) -> dict:
    """Smooth unit-variance fields at the perfused voxels ``sim`` (1-D), and the coil field (3-D).

    σ [mm]: 12 for CBF/CBV, 20 delay, 15 dispersion and residue shape, 10 lesion patchiness, 60 coil.
    """
    sigmas = {"cbf": 12.0, "cbv": 12.0, "delay": 20.0, "dispersion": 15.0, "shape": 15.0, "patch": 10.0}
    fields = {key: smooth_field(shape, voxel_mm, sigma, rng, sim) for key, sigma in sigmas.items()}
    fields["coil"] = smooth_field(shape, voxel_mm, 60.0, rng)
    return fields


def make_subject(config: SubjectConfig, rng: np.random.Generator) -> Subject:
    """Simulate one subject.

    Parameters
    ----------
    config : SubjectConfig
        Grid, frames, lesion, noise and realism switches.
    rng : numpy.random.Generator
        Source of every random draw (split into independent streams here).

    Returns
    -------
    Subject
    """
    acq_rng, anat_rng, haemo_rng, lesion_rng, noise_rng, realism_rng = rng.spawn(6)
    acq = draw_acquisition(acq_rng)
    if config.tr_s is not None:
        acq["tr_s"] = float(config.tr_s)
    real = draw_realism(realism_rng, config.realism)
    older = config.realism.older_brains and real["older"]
    if older:
        acq["aif_beta_s"] = round(acq["aif_beta_s"] * real["bolus_width_factor"], 4)
    atrophy_rng, wmh_rng, vessel_rng = realism_rng.spawn(3)
    anatomy = make_anatomy(config.shape, config.voxel_mm, draw_pose(anat_rng, config.slab_centre_mm))
    if older:
        apply_atrophy(anatomy, real["atrophy"], smooth_field(config.shape, config.voxel_mm, 15.0, atrophy_rng))
    sim = anatomy.pgm + anatomy.pwm > PERFUSED_TISSUE_FRACTION
    fields = _fields(config.shape, config.voxel_mm, sim, haemo_rng)
    lesion = draw_lesion(lesion_rng, config.lesion_volume_scale) if config.has_lesion else None
    masks = _structure_masks(config, anatomy, -lesion.side if lesion else int(lesion_rng.choice([-1, 1])))
    vessels = _large_vessels(config, anatomy, masks, real, vessel_rng)
    values = draw_tissue_values(haemo_rng)
    h, wmh, lesion_info = _haemodynamics(config, anatomy, sim, fields, values, lesion, masks["brain"],
                                         real if older else None, wmh_rng)
    signal, c_tissue, c_aif, c_vof, extras = render(config, acq, real, anatomy, sim, fields["coil"], h, masks, vessels, anat_rng)
    if config.noise:
        _add_noise(signal, extras["noise_sigma"], noise_rng, config.realism, real)
    truth, aux = _truth_maps(h, sim, masks["brain"], config.shape)
    _truth_masks(masks, truth, aux, sim, wmh)
    slice_timing_s = np.asarray(extras["slice_timing_s"])
    first_sampled_s = acq["aif_t0_s"] - float(slice_timing_s.max())
    params = {
        "config": dataclasses.asdict(config), "acquisition": acq, "tissue_values": values, "pose": anatomy.pose,
        "realism": {**real, "older": older}, **extras, "n_baseline_frames": int(np.ceil(first_sampled_s / acq["tr_s"])),
        "n_non_steady_frames": len(extras["frame_factors"]),
        "lesion": dataclasses.asdict(lesion) if lesion else None, "lesion_levels": lesion_info,
        "residue_shapes": list(RESIDUE_SHAPES), "mni_notice": MNI_NOTICE,
    }
    return Subject(signal=signal, affine=anatomy.affine, te_ms=acq["te_ms"], tr_s=acq["tr_s"],
                   field_t=acq["field_t"], snr=acq["snr"], masks=masks, truth={**truth, **aux},
                   tissue={"gm": anatomy.pgm, "wm": anatomy.pwm, "csf": anatomy.pcsf, "vessel": sum(vessels)},
                   c_aif=c_aif, c_vof=c_vof, c_tissue_fn=c_tissue, params=params, slice_timing_s=slice_timing_s)


def _haemodynamics(config: SubjectConfig, anatomy, sim: NDArray, fields: dict, values: dict, lesion, brain: NDArray,
                   older: dict | None, wmh_rng) -> tuple:
    """Healthy haemodynamics, white-matter disease (``older``: the realism values of an older subject)
    and the lesion, of the perfused voxels ``sim``: (Haemodynamics, WMH voxels (bool, 1-D), lesion levels)."""
    pgm, pwm = anatomy.pgm[sim], anatomy.pwm[sim]
    h = healthy_haemodynamics(pgm, pwm, fields, values, config.mtt_range_s)
    wmh = np.zeros(pgm.size, bool)
    if older is not None:
        wmh = white_matter_disease(pgm, pwm, smooth_field(config.shape, config.voxel_mm, 8.0, wmh_rng, sim), older["wmh_fraction"])
        apply_white_matter_disease(h, pgm, pwm, wmh, values, older)
    lesion_info = {}
    if lesion:
        severity = severity_field(anatomy.mni_mm[sim], lesion, fields["patch"])
        voxel_ml = float(np.prod(config.voxel_mm)) / 1000.0
        lesion_info = apply_lesion(h, severity, lesion, voxel_ml, calibration=brain[sim])
    return h, wmh, lesion_info


def _truth_masks(masks: dict, truth: dict, aux: dict, sim: NDArray, wmh: NDArray) -> None:
    """Lesion (Tmax > 6 s), core (rCBF < 0.3) and white-matter disease, in the brain, read off the truth."""
    masks["lesion"] = masks["brain"] & (np.nan_to_num(truth["tmax"]) > TMAX_THRESHOLD_S)
    masks["core"] = masks["brain"] & (np.nan_to_num(aux["rcbf"], nan=1.0) < CORE_RCBF)
    masks["wmh"] = np.zeros(sim.shape, bool)
    masks["wmh"][sim] = wmh
    masks["wmh"] &= masks["brain"]


def _structure_masks(config: SubjectConfig, anatomy, aif_side: int) -> dict:
    """AIF voxels (MCA of hemisphere ``aif_side``), VOF voxels (sagittal sinus) and the brain mask."""
    count = n_vessel_voxels(config.voxel_mm)
    aif = path_voxels(anatomy.mni_mm, MCA_PATH_MM * [aif_side, 1, 1], count, np.ones(config.shape, bool))
    vof = path_voxels(anatomy.mni_mm, SSS_PATH_MM, count, ~aif)
    brain = (anatomy.pgm + anatomy.pwm >= config.brain_tissue_fraction) & ~aif & ~vof
    return {"brain": brain, "aif": aif, "vof": vof}


def _large_vessels(config: SubjectConfig, anatomy, masks: dict, real: dict, rng) -> tuple[NDArray, NDArray]:
    """Arterial and venous blood fractions of the large vessels (zero without ``large_vessels``).

    Sets ``masks["vessel"]`` (1 artery, 2 vein; AIF and VOF voxels included) and removes those
    voxels from ``masks["brain"]``: their CBF, MTT and Tmax are not a tissue's (decision 0040).
    """
    arterial, venous = np.zeros((2,) + config.shape, np.float32)
    if config.realism.large_vessels:
        arterial, venous = vessel_fractions(anatomy, config.voxel_mm, real, rng, exclude=masks["aif"] | masks["vof"])
    label = np.where(arterial + venous > 0, np.where(arterial >= venous, 1, 2), 0).astype(np.uint8)
    label[masks["aif"]], label[masks["vof"]] = 1, 2
    masks["vessel"] = label
    masks["brain"] &= label == 0
    return arterial, venous


def _add_noise(signal: NDArray, sigma: float, rng, realism: Realism, real: dict) -> None:
    """Rician noise: white (recipe §5), or in-plane correlated (``realism.correlated_noise``)."""
    if realism.correlated_noise:
        coefficients = (kernel_coefficient(real["noise_correlation_x"]), kernel_coefficient(real["noise_correlation_y"]))
        add_correlated_rician_noise(signal, sigma, rng, coefficients)
    else:
        add_rician_noise(signal, sigma, rng)


def _truth_maps(h, sim: NDArray, brain: NDArray, shape) -> tuple[dict, dict]:
    """CBV, CBF, MTT, Tmax (float32, NaN outside the brain) and auxiliary maps."""
    values = {"cbv": h.cbv, "cbf": h.cbf, "mtt": h.mtt_s, "tmax": h.delay_s + h.peak_time_s(),
              "delay": h.delay_s, "dispersion": h.dispersion_s, "rcbf": h.rcbf, "rcbv": h.rcbv,
              "residue_shape": h.shape}
    maps = {}
    for key, value in values.items():
        volume = np.full(shape, np.nan, np.float32)
        volume[sim] = value
        volume[~brain] = np.nan
        maps[key] = volume
    main = {key: maps.pop(key) for key in ("cbv", "cbf", "mtt", "tmax")}
    return main, maps
