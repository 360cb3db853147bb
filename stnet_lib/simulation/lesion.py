"""Stage 1 (synthetic data): a stroke lesion in the MCA territory, as a smooth severity field.

A severity field s(x) (a radial profile around one or two occlusion epicentres, times smooth
log-normal patchiness, inside a parametric MCA territory; simulation_recipe.md §7, option 2) is
cut at levels chosen from target volumes: oligaemia ⊃ Tmax > 6 s ⊃ Tmax > 10 s, and the core
(rCBF < 0.3). Between the levels every parameter is interpolated linearly in s (recipe §4.2):
relative CBF and CBV, dispersion, and a target Tmax from which the arrival delay follows as
δ = Tmax_target − argmax(h ⊗ R). The masks are then read off the computed ground truth, never
off s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["LesionParams", "draw_lesion", "territory_weight", "severity_field", "lesion_stages"]

#: Target volumes [ml] for a 100 mm slab (recipe §4.2 and §7: Tmax > 6 s median ≈ 95 ml, range
#: 0–250; core median ≈ 25–30 ml, range 0–150; HIR median ≈ 0.4).
HYPOPERFUSION_MEDIAN_ML = 95.0
HYPOPERFUSION_RANGE_ML = (15.0, 250.0)
CORE_MAX_ML = 150.0


@dataclass(frozen=True)
class LesionParams:
    """Random parameters of one lesion (all JSON-safe scalars and lists)."""

    side: int  # +1 right hemisphere (MNI x > 0), −1 left
    centres_mm: tuple  # occlusion epicentres (MNI, mm)
    radii_mm: tuple  # radial scale of each epicentre
    weights: tuple  # relative weight of each epicentre
    patchiness: float  # amplitude of the log-normal modulation
    patch_sigma_mm: float  # smoothness of the modulation
    territory: dict  # MCA borders (MNI, mm)
    hypoperfusion_ml: float  # target Vol(Tmax > 6 s)
    oligaemia_factor: float  # Vol(oligaemia) / Vol(Tmax > 6 s)
    hir: float  # Vol(Tmax > 10 s) / Vol(Tmax > 6 s)
    core_fraction: float  # Vol(core) / Vol(Tmax > 6 s)
    tmax_peak_s: float  # target Tmax at the most severe voxel
    dispersion_knots_s: tuple  # dispersion at the Tmax 6 s, 10 s and peak levels
    rcbf_knots: tuple  # relative CBF at the Tmax 6 s level, the core border (0.3) and the peak
    rcbv_knots: tuple  # relative CBV at the same levels


def draw_lesion(rng: np.random.Generator, volume_scale: float = 1.0) -> LesionParams:
    """Draw a lesion: M1 (deep, 60 %) or M2 (cortical) epicentre, 15 % multi-focal.

    ``volume_scale`` shrinks the target volumes for slabs thinner than the paper's 100 mm.
    """
    side = int(rng.choice([-1, 1]))
    if rng.random() < 0.6:
        centres = [(side * rng.uniform(25, 38), rng.uniform(-15, 5), rng.uniform(-5, 15))]
        radii = [rng.uniform(25, 45)]
    else:
        centres = [(side * rng.uniform(38, 52), rng.uniform(-45, 20), rng.uniform(5, 40))]
        radii = [rng.uniform(18, 35)]
    weights = [1.0]
    if rng.random() < 0.15:
        centres.append((side * rng.uniform(38, 52), rng.uniform(-45, 20), rng.uniform(5, 40)))
        radii.append(rng.uniform(10, 20))
        weights.append(rng.uniform(0.6, 0.9))
    hypo = float(np.clip(HYPOPERFUSION_MEDIAN_ML * np.exp(0.55 * rng.standard_normal()), *HYPOPERFUSION_RANGE_ML))
    return LesionParams(
        side=side,
        centres_mm=tuple(tuple(round(float(c), 3) for c in centre) for centre in centres),
        radii_mm=tuple(round(float(r), 3) for r in radii),
        weights=tuple(round(float(w), 3) for w in weights),
        patchiness=round(float(rng.uniform(0.3, 0.6)), 3),
        patch_sigma_mm=round(float(rng.uniform(8, 15)), 3),
        territory={"anterior_y": round(float(rng.uniform(40, 55)), 3), "posterior_y": round(float(rng.uniform(-75, -60)), 3),
                   "medial_x": round(float(rng.uniform(15, 25)), 3), "inferior_z": round(float(rng.uniform(-30, -20)), 3)},
        hypoperfusion_ml=round(hypo * volume_scale, 3),
        oligaemia_factor=round(float(rng.uniform(1.3, 1.8)), 3),
        hir=round(float(rng.uniform(0.2, 0.65)), 3),
        core_fraction=round(float(rng.uniform(0.1, 0.55)), 3),
        tmax_peak_s=round(float(rng.uniform(14, 24)), 3),
        dispersion_knots_s=tuple(round(float(rng.uniform(*r)), 3) for r in ((1.2, 2.0), (2.5, 3.5), (3.5, 5.0))),
        rcbf_knots=(round(float(rng.uniform(0.5, 0.65)), 3), 0.3, round(float(rng.uniform(0.05, 0.15)), 3)),
        rcbv_knots=tuple(round(float(rng.uniform(*r)), 3) for r in ((1.0, 1.25), (0.6, 0.8), (0.35, 0.6))),
    )


def _sigmoid(x: NDArray, width_mm: float) -> NDArray:
    return 1.0 / (1.0 + np.exp(-x / width_mm))


def territory_weight(mni_mm: NDArray, params: LesionParams) -> NDArray:
    """Soft MCA territory (0–1) of one hemisphere: a lateral wedge plus the deep nuclei (recipe §7).

    Medial border at |x| ≈ 8 mm near the basal ganglia rising to ``medial_x`` above the
    ventricles (ACA border zone); anterior/posterior borders ``anterior_y``/``posterior_y`` (ACA and
    PCA territories); inferior border ``inferior_z`` (temporal lobe included).
    """
    x = params.side * mni_mm[..., 0]
    y, z = mni_mm[..., 1], mni_mm[..., 2]
    t = params.territory
    medial = np.clip(8.0 + 0.35 * z, 8.0, t["medial_x"])
    return (_sigmoid(x - medial, 3.0) * _sigmoid(y - t["posterior_y"], 5.0)
            * _sigmoid(t["anterior_y"] - y, 5.0) * _sigmoid(z - t["inferior_z"], 5.0))


def severity_field(mni_mm: NDArray, params: LesionParams, patch_field: NDArray) -> NDArray:
    """Severity s(x) ≥ 0: territory × radial profile(s) × exp(patchiness · smooth field)."""
    radial = np.zeros(mni_mm.shape[:-1], np.float32)
    for centre, radius, weight in zip(params.centres_mm, params.radii_mm, params.weights):
        d2 = np.sum((mni_mm - np.asarray(centre, np.float32)) ** 2, axis=-1)
        radial = np.maximum(radial, weight * np.exp(-d2 / (2.0 * radius**2)))
    return territory_weight(mni_mm, params) * radial * np.exp(params.patchiness * patch_field)


def _level(values_desc: NDArray, volume_ml: float, voxel_ml: float) -> float:
    index = int(np.clip(np.ceil(volume_ml / voxel_ml), 1, values_desc.size - 1))
    return float(values_desc[index])


def lesion_stages(severity: NDArray, params: LesionParams, voxel_ml: float,
                  calibration: NDArray | None = None) -> tuple[NDArray, NDArray, dict]:
    """Stage coordinates of voxels from their severity.

    The levels are cut so that the voxels selected by ``calibration`` (boolean, like
    ``severity``; all when None — the brain mask in practice) above each level fill the target
    volumes.

    Returns
    -------
    stage_tmax : ndarray
        0 outside the oligaemia, 1 at the Tmax 6 s border, 2 at Tmax 10 s, 3 at the peak.
    stage_core : ndarray
        0 outside, 1 at the Tmax 6 s border, 2 at the core border (rCBF 0.3), 3 at the peak.
    levels : dict
        The severity levels and the volumes [ml] they were cut at (scaled down when the
        territory in the slab is too small).
    """
    desc = np.sort(severity if calibration is None else severity[calibration])[::-1]
    available_ml = float((severity > 1e-3 * desc[0]).sum()) * voxel_ml
    hypo_ml = min(params.hypoperfusion_ml, 0.8 * available_ml / params.oligaemia_factor)
    volumes = {"oligaemia_ml": hypo_ml * params.oligaemia_factor, "hypoperfusion_ml": hypo_ml,
               "tmax10_ml": hypo_ml * params.hir, "core_ml": min(hypo_ml * params.core_fraction, CORE_MAX_ML)}
    lv = {key: _level(desc, value, voxel_ml) for key, value in volumes.items()}
    top = float(desc[0]) * 1.000001
    eps = 1e-9 * top
    olig = lv["oligaemia_ml"]
    hp = max(lv["hypoperfusion_ml"], olig + eps)
    stage_tmax = np.interp(severity, [olig, hp, max(lv["tmax10_ml"], hp + eps), top], [0, 1, 2, 3])
    stage_core = np.interp(severity, [olig, hp, max(lv["core_ml"], hp + eps), top], [0, 1, 2, 3])
    return stage_tmax, stage_core, {"target_volumes_ml": volumes, "severity_levels": lv}
