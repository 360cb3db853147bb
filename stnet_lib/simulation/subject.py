"""Stage 1 (synthetic data): one synthetic stroke subject — DSC series plus exact ground truth.

``make_subject(config, rng)`` draws the acquisition (field, TE, TR, SNR), the AIF, the anatomy
(``anatomy.py``), healthy haemodynamics and a lesion (``haemodynamics.py``, ``lesion.py``),
simulates concentration on a fine time grid, converts it to signal (eq. 1–2 forward), adds
Rician noise, and returns a :class:`Subject` with the series and its truth (CBV, CBF, MTT,
Tmax, hypoperfusion and core masks). Parameter values follow simulation_recipe.md; §-numbers
below refer to it.

The generator ``rng`` is split into independent streams (acquisition, anatomy, haemodynamics,
lesion, noise), so that a noise-free subject (``config.noise = False``) is the noisy one
without its noise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ..constants import TMAX_THRESHOLD_S
from .anatomy import MNI_NOTICE, draw_pose, make_anatomy, smooth_field
from .haemodynamics import apply_lesion, draw_tissue_values, healthy_haemodynamics
from .lesion import draw_lesion, severity_field
from .synthesis import add_rician_noise, blood_signal, tissue_concentration, tissue_signal
from .vascular import RESIDUE_SHAPES, arterial_input, venous_output
from .vessels import MCA_PATH_MM, SSS_PATH_MM, n_vessel_voxels, path_voxels

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

    @property
    def lesion_volume_scale(self) -> float:
        """Lesion volume targets scale with the slab thickness (the paper's slab is 100 mm)."""
        return min(1.0, self.shape[2] * self.voxel_mm[2] / 100.0)


@dataclass
class Subject:
    """A simulated DSC series with its ground truth.

    Arrays are (x, y, z[, t]); maps are float32 with NaN outside ``brain_mask``; masks are bool.
    ``c_aif``/``c_vof`` (t,) are the true arterial and venous concentrations [mM] at the frame
    times; ``c_tissue`` (n_brain, t) the noise-free tissue concentration [mM] of the brain
    voxels in ``brain_mask`` order. ``params`` holds every drawn value (JSON-safe).
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
    c_tissue: NDArray
    params: dict = field(default_factory=dict)

    @property
    def time_s(self) -> NDArray:
        """Frame times [s], shape (t,)."""
        return np.arange(self.signal.shape[-1]) * self.tr_s


def draw_acquisition(rng: np.random.Generator) -> dict:
    """Acquisition, bolus and noise of one subject (§1.3, §2, §5, §9)."""
    field_t = float(rng.choice([1.5, 3.0]))
    te_ms = rng.uniform(40, 50) if field_t == 1.5 else rng.uniform(20, 35)
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


def _fine_grid(tr_s: float, n_frames: int, max_step_s: float) -> tuple[int, float, int]:
    n_sub = int(np.ceil(tr_s / max_step_s - 1e-9))
    return n_sub, tr_s / n_sub, (n_frames - 1) * n_sub + 1


def _blood_curves(acq: dict, dt_s: float, n_fine: int, n_sub: int) -> tuple[NDArray, NDArray, NDArray]:
    """C_a at (i − ½)·dt for the kernels, and C_a, C_v at the frame times [mM]."""
    half_steps = (np.arange(2 * n_fine) / 2.0 - 0.5) * dt_s
    c_all = arterial_input(half_steps, t0_s=acq["aif_t0_s"], alpha=acq["aif_alpha"], beta_s=acq["aif_beta_s"],
                           peak_mM=acq["aif_peak_mM"], recirc_delay_s=acq["recirc_delay_s"],
                           recirc_fraction=acq["recirc_fraction"], recirc_tau_s=acq["recirc_tau_s"])
    c_half, c_grid = c_all[0::2], c_all[1::2]
    c_vof = venous_output(c_half, dt_s, transit_s=acq["vof_transit_s"])
    return c_half, c_grid[::n_sub], c_vof[::n_sub]


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
        Grid, frames, lesion and noise switches.
    rng : numpy.random.Generator
        Source of every random draw (split into independent streams here).

    Returns
    -------
    Subject
    """
    acq_rng, anat_rng, haemo_rng, lesion_rng, noise_rng = rng.spawn(5)
    acq = draw_acquisition(acq_rng)
    if config.tr_s is not None:
        acq["tr_s"] = float(config.tr_s)
    anatomy = make_anatomy(config.shape, config.voxel_mm, draw_pose(anat_rng, config.slab_centre_mm))
    sim = anatomy.pgm + anatomy.pwm > PERFUSED_TISSUE_FRACTION
    fields = _fields(config.shape, config.voxel_mm, sim, haemo_rng)
    lesion = draw_lesion(lesion_rng, config.lesion_volume_scale) if config.has_lesion else None
    masks = _structure_masks(config, anatomy, -lesion.side if lesion else int(lesion_rng.choice([-1, 1])))
    values = draw_tissue_values(haemo_rng)
    h = healthy_haemodynamics(anatomy.pgm[sim], anatomy.pwm[sim], fields, values)
    lesion_info = {}
    if lesion:
        severity = severity_field(anatomy.mni_mm[sim], lesion, fields["patch"])
        voxel_ml = float(np.prod(config.voxel_mm)) / 1000.0
        lesion_info = apply_lesion(h, severity, lesion, voxel_ml, calibration=masks["brain"][sim])
    signal, c_sim, c_aif, c_vof, extras = _render(config, acq, anatomy, sim, fields["coil"], h, masks, anat_rng)
    if config.noise:
        add_rician_noise(signal, extras["noise_sigma"], noise_rng)
    truth, aux = _truth_maps(h, sim, masks["brain"], config.shape)
    masks["lesion"] = masks["brain"] & (np.nan_to_num(truth["tmax"]) > TMAX_THRESHOLD_S)
    masks["core"] = masks["brain"] & (np.nan_to_num(aux["rcbf"], nan=1.0) < CORE_RCBF)
    params = {
        "config": dataclasses.asdict(config), "acquisition": acq, "tissue_values": values, "pose": anatomy.pose,
        **extras, "n_baseline_frames": int(np.ceil(acq["aif_t0_s"] / acq["tr_s"])),
        "lesion": dataclasses.asdict(lesion) if lesion else None, "lesion_levels": lesion_info,
        "residue_shapes": list(RESIDUE_SHAPES), "mni_notice": MNI_NOTICE,
    }
    return Subject(signal=signal, affine=anatomy.affine, te_ms=acq["te_ms"], tr_s=acq["tr_s"],
                   field_t=acq["field_t"], snr=acq["snr"], masks=masks, truth={**truth, **aux},
                   tissue={"gm": anatomy.pgm, "wm": anatomy.pwm, "csf": anatomy.pcsf},
                   c_aif=c_aif, c_vof=c_vof, c_tissue=c_sim[masks["brain"][sim]], params=params)


def _structure_masks(config: SubjectConfig, anatomy, aif_side: int) -> dict:
    """AIF voxels (MCA of hemisphere ``aif_side``), VOF voxels (sagittal sinus) and the brain mask."""
    count = n_vessel_voxels(config.voxel_mm)
    aif = path_voxels(anatomy.mni_mm, MCA_PATH_MM * [aif_side, 1, 1], count, np.ones(config.shape, bool))
    vof = path_voxels(anatomy.mni_mm, SSS_PATH_MM, count, ~aif)
    brain = (anatomy.pgm + anatomy.pwm >= config.brain_tissue_fraction) & ~aif & ~vof
    return {"brain": brain, "aif": aif, "vof": vof}


def _render(config: SubjectConfig, acq: dict, anatomy, sim: NDArray, coil: NDArray, h, masks: dict, rng):
    """Noise-free signal (x, y, z, t), perfused-voxel concentrations, C_a and C_v at the frames, extras.

    The delays are rounded to the fine step here (``h.delay_s`` is updated: the truth uses them).
    """
    n_sub, dt_s, n_fine = _fine_grid(acq["tr_s"], config.n_frames, config.max_fine_step_s)
    delay_steps = np.round(h.delay_s / dt_s).astype(np.int64)
    h.delay_s = delay_steps * dt_s
    c_half, c_aif, c_vof = _blood_curves(acq, dt_s, n_fine, n_sub)
    c_sim = tissue_concentration(c_half, dt_s, n_sub, config.n_frames, cbf=h.cbf, mtt_s=h.mtt_s,
                                 dispersion_s=h.dispersion_s, shape=h.shape, delay_steps=delay_steps)
    s0 = _baseline_map(anatomy, coil, acq)
    signal = np.empty(config.shape + (config.n_frames,), np.float32)
    signal[...] = s0[..., None]
    signal[sim] = tissue_signal(c_sim, s0[sim], acq["te_ms"], acq["field_t"])
    fractions = _add_vessels(signal, masks["aif"], masks["vof"], c_aif, c_vof, acq, rng)
    extras = {"fine_step_s": dt_s, "noise_sigma": float(np.median(s0[masks["brain"]])) / acq["snr"],
              "vessel_partial_volume": fractions}
    return signal, c_sim, c_aif, c_vof, extras


def _baseline_map(anatomy, coil: NDArray, acq: dict) -> NDArray:
    """S0 = scale·(GM + 0.8·WM + r_CSF·CSF)·coil field (§1.4: WM:GM:CSF ≈ 0.8:1:1.3–1.6, ±10–20 %)."""
    relative = anatomy.pgm + 0.8 * anatomy.pwm + acq["s0_csf_ratio"] * anatomy.pcsf
    return (acq["s0_gm"] * relative * np.exp(acq["coil_amplitude"] * coil)).astype(np.float32)


def _add_vessels(signal, aif_mask, vof_mask, c_aif, c_vof, acq, rng) -> dict:
    """Two-compartment vessel voxels: f·S0_blood·e^(−TE·ΔR2*_blood) + (1 − f)·(voxel's own signal).

    Arterial partial volume f ~ U[0.5, 1] (§4.4, §9), venous f ~ U[0.7, 1]; blood S0 is GM's
    (arterial) or 0.7 of it (venous, deoxygenated) [H].
    """
    fractions = {}
    for name, mask, curve, low, s0_blood in (("aif", aif_mask, c_aif, 0.5, 1.0), ("vof", vof_mask, c_vof, 0.7, 0.7)):
        f = rng.uniform(low, 1.0, int(mask.sum()))
        blood = acq["s0_gm"] * s0_blood * blood_signal(curve, acq["te_ms"], acq["field_t"])
        signal[mask] = (f[:, None] * blood[None, :] + (1.0 - f[:, None]) * signal[mask]).astype(np.float32)
        fractions[name] = np.round(f, 4).tolist()
    return fractions


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
