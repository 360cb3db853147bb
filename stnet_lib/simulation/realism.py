"""Stage 1 (synthetic data): what makes a synthetic subject look like a real DSC scan (issue #16).

Every feature is switchable (:class:`Realism`, all on by default; :meth:`Realism.none` is the
simulator before issue #16) and drawn per subject from a range (:func:`draw_realism`). All values
are drawn whatever the switches, from the subject's own realism stream, so turning one feature off
leaves every other draw of the subject unchanged. Sources (simulation_recipe.md §-numbers; [L]
literature from memory, [H] our choice, "real slice" = ``../shared/data/real_dsc``, measured with
:func:`stnet_lib.experiments.realism.realism_statistics`;
docs/decisions/0040-realistic-synthetic-cohort.md):

``aif_plateau``
    A steady-state plateau: the sigmoid-modulated exponential of Parker's population AIF (Parker et
    al. 2006, MRM 56:993 [L]; recipe §2.3 [V]), whose plateau is ≈ 15 % of its first-pass peak,
    rises 7 s after its second pass and decays at 0.1685/min; here 6–16 % of the first-pass peak
    in concentration, rising 0–5 s after the second pass, which measures 8–20 % in −ln(S/S0) of
    the AIF voxels (their peak saturates; 9 % on the real slice); and the recirculation of recipe
    §2.2 moved so that its peak comes 10–25 s after the first-pass peak (≈ 20 s on the real
    slice), with 25–45 % of the first pass's area (Parker's second pass: 41 %).
``non_steady_frames``
    0–3 leading frames at 1.1–1.3× S0, each brighter than the next (T1 saturation before the
    longitudinal steady state [L]; 1.24× on the real slice, :func:`non_steady_factors`).
``correlated_noise``
    Complex noise smoothed in-plane by a 3-tap kernel per axis, adjacent-voxel correlation
    0.3–0.5 per axis, 0.02–0.07 two voxels apart (k-space filtering and interpolation [L]; 0.34 and
    0.43 on the real slice, ≈ 0 two voxels apart).
``large_vessels``
    Arteries and veins/sinuses as voxels of high blood volume with arterial or venous curves
    (:mod:`.vessels`).
``csf_compartment``
    CSF as its own compartment in partial-volume voxels: bright at baseline, no bolus (recipe §1.4).
``slice_timing``
    Interleaved 2-D EPI: slice ``z`` is sampled at its own offset within TR (the sidecar's
    ``SliceTiming``).
``older_brains``
    Half of the subjects are older [H]: atrophy (5–25 % tissue loss turned into CSF [L]),
    white-matter disease (CBF 10–15 ml/100g/min, CBV 0.7–0.9×, 0.5–2 s later arrival in 2–20 % of
    the white matter [L]) and a bolus up to twice as wide (low cardiac output [L]).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Realism", "RANGES", "draw_realism", "non_steady_factors", "interleaved_positions", "slice_offset_steps",
           "kernel_coefficient"]


@dataclass(frozen=True)
class Realism:
    """Switches of the realism features (decision 0040); every one is on by default."""

    aif_plateau: bool = True  # arterial steady-state plateau and a late recirculation
    non_steady_frames: bool = True  # 0–3 first frames brighter than S0
    correlated_noise: bool = True  # in-plane correlated complex noise (then Rician)
    large_vessels: bool = True  # arteries, veins and sinuses with their own curves
    csf_compartment: bool = True  # CSF signal without bolus in partial-volume voxels
    slice_timing: bool = True  # interleaved slice acquisition times within TR
    older_brains: bool = True  # atrophy, white-matter disease, broad boluses

    @classmethod
    def none(cls) -> "Realism":
        """Every feature off: the simulator as it was before issue #16."""
        return cls(**{f.name: False for f in dataclasses.fields(cls)})

    def without(self, *names: str) -> "Realism":
        """A copy with the features ``names`` turned off."""
        unknown = set(names) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown realism features {sorted(unknown)}; known: {[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **{name: False for name in names})


#: Per-subject ranges (low, high) of every drawn value (sources in the module docstring).
RANGES = {
    "plateau_fraction": (0.06, 0.16),  # C_a plateau / first-pass peak (Parker 2006: ≈ 0.15; measured: decision 0040)
    "plateau_width_s": (1.5, 4.0),  # sigmoid rise of the plateau (Parker 2006: 1.6 s)
    "plateau_decay_per_min": (0.10, 0.25),  # slow decay of the plateau (Parker 2006: 0.1685/min)
    "plateau_lag_s": (0.0, 5.0),  # plateau's sigmoid centre after the second-pass peak (Parker 2006: 7 s)
    "second_pass_delay_s": (10.0, 25.0),  # second-pass peak after the first-pass peak (real slice ≈ 20 s)
    "recirc_fraction": (0.25, 0.45),  # second-pass area / first-pass area (recipe §2.2: 0.10–0.25; Parker 2006: 0.41)
    "recirc_tau_s": (2.0, 6.0),  # dispersion of the second pass (its bump ≈ 2.5× the plateau, as on the real slice)
    "first_frame_position": (0.0, 1.0),  # where the first frame lies in its range (non_steady_factors)
    "noise_correlation_x": (0.3, 0.5),  # adjacent-voxel noise correlation along x (real slice 0.34, 0.43)
    "noise_correlation_y": (0.3, 0.5),  # and along y
    "atrophy": (0.05, 0.25),  # tissue fraction lost to CSF in older brains [L]
    "wmh_fraction": (0.02, 0.20),  # white matter with white-matter disease in older brains [L]
    "wmh_cbf": (10.0, 15.0),  # CBF of diseased pure white matter [ml/100g/min] (issue #16) [L]
    "wmh_rcbv": (0.7, 0.9),  # CBV of diseased white matter relative to healthy [L]
    "wmh_extra_delay_s": (0.5, 2.0),  # later arrival in diseased white matter [L]
    "bolus_width_factor": (1.0, 2.0),  # AIF β multiplier in older brains (low cardiac output)
    "pial_vessel_radius": (0.15, 0.22),  # level-set half-width of the pial vessel network [H] (vessels.py)
    "venous_share": (0.5, 0.7),  # share of pial vessel voxels that are veins [H]
}
#: Probability that a subject is older (atrophy, white-matter disease, broad bolus) [H].
OLDER_PROBABILITY = 0.5
#: Most leading frames ever drawn as not yet at steady state.
MAX_NON_STEADY_FRAMES = 3
#: Non-steady frames: the last one at this multiple of S0, the first at most at NON_STEADY_FIRST_MAX,
#: each at least NON_STEADY_STEP times the next (``stnet_lib.signal.count_non_steady_frames`` looks for 5 %).
NON_STEADY_LAST, NON_STEADY_FIRST_MAX, NON_STEADY_STEP = 1.1, 1.3, 1.06


def draw_realism(rng: np.random.Generator, realism: Realism) -> dict:
    """Per-subject values of every feature (JSON-safe), drawn in a fixed order whatever the switches.

    Returns
    -------
    dict
        The values of :data:`RANGES`, ``n_non_steady_frames`` (0–3), ``older`` (bool),
        ``slice_order_start`` (0 or 1: interleaving starts with the even or the odd slices) and
        ``switches`` (the :class:`Realism` as a dict). Values of an older-brain feature are drawn
        for every subject; they are used only when ``older`` and ``realism.older_brains``.
    """
    values = {key: round(float(rng.uniform(*bounds)), 4) for key, bounds in RANGES.items()}
    values["n_non_steady_frames"] = int(rng.integers(0, MAX_NON_STEADY_FRAMES + 1))
    values["older"] = bool(rng.random() < OLDER_PROBABILITY)
    values["slice_order_start"] = int(rng.integers(0, 2))
    values["switches"] = dataclasses.asdict(realism)
    return values


def non_steady_factors(n_frames: int, values: dict) -> NDArray:
    """Signal factor of every frame (t,): the first n frames at 1.1–1.3× S0, each ≥ 5 % above the next, then 1.

    Frame 0 is at r, frame n − 1 at :data:`NON_STEADY_LAST`, geometric in between; r is
    ``first_frame_position`` of the way from NON_STEADY_LAST·NON_STEADY_STEP^(n−1) to
    :data:`NON_STEADY_FIRST_MAX` (so every step is at least NON_STEADY_STEP). The real slice's one
    non-steady frame is at 1.24×; 1.1–1.3× is common (issue #16; T1 saturation before the
    longitudinal steady state [L]). The step to steady state after frame n − 1 is abrupt [H].
    """
    factors = np.ones(n_frames, np.float32)
    n = min(values["n_non_steady_frames"], n_frames)
    if n:
        low = NON_STEADY_LAST * NON_STEADY_STEP ** (n - 1)
        first = low + values["first_frame_position"] * (NON_STEADY_FIRST_MAX - low)
        factors[:n] = first * (NON_STEADY_LAST / first) ** (np.arange(n) / max(n - 1, 1))
    return factors


def interleaved_positions(n_slices: int, start: int) -> NDArray:
    """Acquisition rank of each slice (z,) in an interleaved order starting with slice ``start``.

    E.g. 5 slices, start 0: slices 0, 2, 4, 1, 3 are acquired in that order, so slice 1 has rank 3.
    """
    order = np.concatenate([np.arange(start, n_slices, 2), np.arange(1 - start, n_slices, 2)])
    positions = np.empty(n_slices, np.int64)
    positions[order] = np.arange(n_slices)
    return positions


def slice_offset_steps(n_slices: int, n_sub: int, start: int) -> NDArray:
    """Acquisition offset of each slice within TR in fine steps (``n_sub`` steps per TR, a multiple of ``n_slices``)."""
    if n_sub % n_slices:
        raise ValueError(f"n_sub = {n_sub} must be a multiple of the {n_slices} slices")
    return interleaved_positions(n_slices, start) * (n_sub // n_slices)


def kernel_coefficient(correlation: float) -> float:
    """c of the 3-tap kernel [c, 1, c] whose filtered white noise has adjacent correlation ``correlation``.

    The autocorrelation of [c, 1, c] at lag 1 is 2c/(1 + 2c²) and at lag 2 c²/(1 + 2c²); solving
    2c = ρ(1 + 2c²) for its root below 1/√2 gives c (0 for ρ = 0).
    """
    if not 0.0 <= correlation <= 0.7:
        raise ValueError(f"correlation must lie in [0, 0.7] (a 3-tap kernel reaches at most 1/√2); got {correlation}")
    if correlation == 0.0:
        return 0.0
    return float((1.0 - np.sqrt(1.0 - 2.0 * correlation**2)) / (2.0 * correlation))
