"""Stage 1 (synthetic data): a subject's haemodynamics → its noise-free DSC series.

The fine time grid (``dt`` = TR / n_sub, at most ``max_fine_step_s``), the blood curves on it
(``vascular.arterial_input``, ``venous_output``), the tissue curves (``synthesis``) and the signal
of every voxel: tissue (with CSF as its own compartment when ``csf_compartment``), the AIF and VOF
voxels, the large vessels, and the non-steady first frames. With ``slice_timing`` every slice
``z`` is sampled at k·TR + t_z (interleaved, :func:`~stnet_lib.simulation.realism.slice_offset_steps`);
n_sub is then a multiple of the slice count so that each t_z falls on the fine grid and the
sampled curves stay exact. Parameter sources: simulation_recipe.md and decision 0040.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .realism import non_steady_factors, slice_offset_steps
from .synthesis import blood_signal, tissue_concentration, tissue_kernel_table, tissue_signal
from .vascular import arterial_input, recirculation_delay_s, venous_output

__all__ = ["Timing", "fine_timing", "arterial_parameters", "blood_curves", "render"]

#: Blood S0 relative to grey matter's: arterial 1, venous 0.7 (deoxygenated) [H].
ARTERIAL_BLOOD_S0, VENOUS_BLOOD_S0 = 1.0, 0.7


@dataclass(frozen=True)
class Timing:
    """Fine grid of a subject: ``n_sub`` steps of ``dt_s`` per TR, ``n_grid`` points from t = 0,
    and each slice's acquisition offset within TR in fine steps (``offsets``, (z,))."""

    n_sub: int
    dt_s: float
    n_frames: int
    offsets: NDArray

    @property
    def n_grid(self) -> int:
        """Fine points: up to the last frame, one TR more when slices are sampled later within TR."""
        return (self.n_frames - 1) * self.n_sub + 1 + (self.n_sub if self.offsets.any() else 0)

    def sample_index(self, z: NDArray) -> NDArray:
        """Fine-grid index of every frame of voxels in slices ``z`` (n,) → (n, t)."""
        return np.arange(self.n_frames) * self.n_sub + self.offsets[np.asarray(z)][:, None]

    @property
    def slice_timing_s(self) -> NDArray:
        """Acquisition time of each slice within TR [s] (the sidecar's ``SliceTiming``)."""
        return self.offsets * self.dt_s


def fine_timing(tr_s: float, n_frames: int, n_slices: int, max_step_s: float, *, slice_timing: bool,
                order_start: int = 0) -> Timing:
    """The fine grid: n_sub = ⌈TR / max_step⌉, or with ``slice_timing`` a multiple of ``n_slices``."""
    if slice_timing:
        n_sub = n_slices * int(np.ceil(tr_s / (n_slices * max_step_s) - 1e-9))
        offsets = slice_offset_steps(n_slices, n_sub, order_start)
    else:
        n_sub, offsets = int(np.ceil(tr_s / max_step_s - 1e-9)), np.zeros(n_slices, np.int64)
    return Timing(n_sub, tr_s / n_sub, n_frames, offsets)


def arterial_parameters(acq: dict, plateau: dict | None = None) -> dict:
    """Keyword arguments of :func:`~stnet_lib.simulation.vascular.arterial_input` for a subject.

    ``plateau`` (the realism values, or None for the recipe's AIF) adds the steady-state plateau
    and moves the recirculation so that its peak comes ``second_pass_delay_s`` after the first's.
    """
    shape = {"t0_s": acq["aif_t0_s"], "alpha": acq["aif_alpha"], "beta_s": acq["aif_beta_s"], "peak_mM": acq["aif_peak_mM"]}
    if plateau is None:
        return {**shape, "recirc_delay_s": acq["recirc_delay_s"], "recirc_fraction": acq["recirc_fraction"],
                "recirc_tau_s": acq["recirc_tau_s"]}
    first_peak_s = acq["aif_t0_s"] + acq["aif_alpha"] * acq["aif_beta_s"]
    return {**shape, "recirc_delay_s": recirculation_delay_s(plateau["second_pass_delay_s"], acq["aif_alpha"], acq["aif_beta_s"],
                                                             plateau["recirc_tau_s"]),
            "recirc_fraction": plateau["recirc_fraction"], "recirc_tau_s": plateau["recirc_tau_s"],
            "plateau_fraction": plateau["plateau_fraction"], "plateau_width_s": plateau["plateau_width_s"],
            "plateau_centre_s": first_peak_s + plateau["second_pass_delay_s"] + plateau["plateau_lag_s"],
            "plateau_decay_per_s": plateau["plateau_decay_per_min"] / 60.0}


def blood_curves(acq: dict, timing: Timing, plateau: dict | None = None) -> tuple[NDArray, NDArray, NDArray]:
    """C_a at (i − ½)·dt for the kernels, and C_a and C_v on the fine grid points i·dt [mM] (n_grid each)."""
    dt_s, n = timing.dt_s, timing.n_grid
    c_all = arterial_input((np.arange(2 * n) / 2.0 - 0.5) * dt_s, **arterial_parameters(acq, plateau))
    c_half, c_grid = c_all[0::2], c_all[1::2]
    return c_half, c_grid, venous_output(c_half, dt_s, transit_s=acq["vof_transit_s"])


def _baseline_maps(anatomy, coil: NDArray, acq: dict) -> tuple[NDArray, NDArray]:
    """S0 of the tissue (GM + 0.8·WM) and CSF (r_CSF·CSF) parts, times the coil field (§1.4)."""
    scale = acq["s0_gm"] * np.exp(acq["coil_amplitude"] * coil)
    tissue = (scale * (anatomy.pgm + 0.8 * anatomy.pwm)).astype(np.float32)
    return tissue, (scale * acq["s0_csf_ratio"] * anatomy.pcsf).astype(np.float32)


def _sampled(curve: NDArray, mask: NDArray, timing: Timing) -> NDArray:
    """A fine-grid curve at the frame times of the slices of the voxels of ``mask``, (n, t)."""
    return curve[timing.sample_index(np.nonzero(mask)[2])]


def _blood(sampled: NDArray, acq: dict, s0_ratio: float) -> NDArray:
    """S0_blood·e^(−TE·ΔR2*_blood) of blood concentrations ``sampled`` [mM] (quadratic relaxivity)."""
    return acq["s0_gm"] * s0_ratio * blood_signal(sampled, acq["te_ms"], acq["field_t"])


def _extravascular(blood_volume: NDArray, sampled: NDArray, acq: dict) -> NDArray:
    """e^(−TE·r2*·v·C_blood): the dephasing of the tissue around a large vessel (static dephasing:
    linear in blood volume fraction v and concentration [L]; tissue relaxivity, decision 0040)."""
    return tissue_signal(blood_volume * sampled, np.ones(len(sampled), np.float32), acq["te_ms"], acq["field_t"])


def _add_aif_vof(signal, masks: dict, c_art: NDArray, c_ven: NDArray, timing: Timing, acq: dict, rng,
                 extravascular: bool) -> dict:
    """Two-compartment AIF/VOF voxels: f·S_blood + (1 − f)·(voxel's own signal), the latter times the
    extravascular dephasing when ``extravascular`` (large vessels on).

    Arterial partial volume f ~ U[0.5, 1] (§4.4, §9), venous f ~ U[0.7, 1].
    """
    fractions = {}
    for name, curve, low, s0_ratio in (("aif", c_art, 0.5, ARTERIAL_BLOOD_S0), ("vof", c_ven, 0.7, VENOUS_BLOOD_S0)):
        mask = masks[name]
        f = rng.uniform(low, 1.0, int(mask.sum()))[:, None]
        sampled = _sampled(curve, mask, timing)
        own = signal[mask] * (_extravascular(f, sampled, acq) if extravascular else 1.0)
        signal[mask] = (f * _blood(sampled, acq, s0_ratio) + (1.0 - f) * own).astype(np.float32)
        fractions[name] = np.round(f[:, 0], 4).tolist()
    return fractions


def _add_large_vessels(signal, arterial: NDArray, venous: NDArray, c_art, c_ven, timing: Timing, acq: dict) -> None:
    """Large-vessel voxels: f_a·S_arterial + f_v·S_venous + (1 − f_a − f_v)·(own signal)·(extravascular dephasing)."""
    mask = (arterial + venous) > 0
    f_a, f_v = arterial[mask][:, None], venous[mask][:, None]
    art, ven = _sampled(c_art, mask, timing), _sampled(c_ven, mask, timing)
    blood = f_a * _blood(art, acq, ARTERIAL_BLOOD_S0) + f_v * _blood(ven, acq, VENOUS_BLOOD_S0)
    own = signal[mask] * _extravascular(f_a, art, acq) * _extravascular(f_v, ven, acq)
    signal[mask] = (blood + (1.0 - f_a - f_v) * own).astype(np.float32)


def render(config, acq: dict, realism_values: dict, anatomy, sim: NDArray, coil: NDArray, h, masks: dict,
           vessels: tuple[NDArray, NDArray], rng: np.random.Generator):
    """Noise-free signal (x, y, z, t), a function giving the brain voxels' concentrations, C_a and C_v
    at the frames, extras.

    The delays are rounded to the fine step here (``h.delay_s`` is updated: the truth uses them).
    The tissue concentrations (of the voxels of ``masks["brain"]``) are at the reference times k·TR,
    as a perfect slice-timing correction would give them (computed when called); the signal of
    slice z is sampled at k·TR + t_z.
    """
    switches, n_frames = config.realism, config.n_frames
    timing = fine_timing(acq["tr_s"], n_frames, config.shape[2], config.max_fine_step_s,
                         slice_timing=switches.slice_timing, order_start=realism_values["slice_order_start"])
    delay_steps = np.round(h.delay_s / timing.dt_s).astype(np.int64)
    h.delay_s = delay_steps * timing.dt_s
    c_half, c_art, c_ven = blood_curves(acq, timing, realism_values if switches.aif_plateau else None)
    kernels = {"cbf": h.cbf, "mtt_s": h.mtt_s, "dispersion_s": h.dispersion_s, "shape": h.shape}
    table = tissue_kernel_table(c_half, timing.dt_s, h.mtt_s)
    offsets = timing.offsets[np.nonzero(sim)[2]]
    c_sim = tissue_concentration(c_half, timing.dt_s, timing.n_sub, n_frames, **kernels, delay_steps=delay_steps - offsets,
                                 table=table)
    brain = masks["brain"][sim]
    if timing.offsets.any():
        def c_tissue():
            return tissue_concentration(c_half, timing.dt_s, timing.n_sub, n_frames, delay_steps=delay_steps[brain],
                                        table=table, **{key: value[brain] for key, value in kernels.items()})
    else:
        reference = c_sim[brain]

        def c_tissue():
            return reference
    s0_tissue, s0_csf = _baseline_maps(anatomy, coil, acq)
    signal = np.empty(config.shape + (n_frames,), np.float32)
    signal[...] = (s0_tissue + s0_csf)[..., None]
    if switches.csf_compartment:
        tissue_part = (anatomy.pgm + anatomy.pwm)[sim][:, None]
        signal[sim] = tissue_signal(c_sim / tissue_part, s0_tissue[sim], acq["te_ms"], acq["field_t"]) + s0_csf[sim][:, None]
    else:
        signal[sim] = tissue_signal(c_sim, (s0_tissue + s0_csf)[sim], acq["te_ms"], acq["field_t"])
    fractions = _add_aif_vof(signal, masks, c_art, c_ven, timing, acq, rng, extravascular=switches.large_vessels)
    if switches.large_vessels:
        _add_large_vessels(signal, *vessels, c_art, c_ven, timing, acq)
    factors = non_steady_factors(n_frames, realism_values) if switches.non_steady_frames else np.ones(n_frames, np.float32)
    signal *= factors
    extras = {"fine_step_s": timing.dt_s, "noise_sigma": float(np.median((s0_tissue + s0_csf)[masks["brain"]])) / acq["snr"],
              "vessel_partial_volume": fractions, "slice_timing_s": np.round(timing.slice_timing_s, 6).tolist(),
              "frame_factors": np.round(factors[factors != 1], 4).tolist()}
    c_aif, c_vof = c_art[: (n_frames - 1) * timing.n_sub + 1 : timing.n_sub], c_ven[: (n_frames - 1) * timing.n_sub + 1 : timing.n_sub]
    return signal, c_tissue, c_aif, c_vof, extras
