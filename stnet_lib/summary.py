"""Per-scan hypoperfusion summary: what a stroke team reads off the maps (issue #15).

From one scan's :class:`~stnet_lib.maps.PerfusionMaps`, its brain mask and affine:

* volumes [ml] of Tmax > 4, 6, 8 and 10 s inside the brain (``tmax_gt_6s_ml``, ...), with the rule
  of every hypoperfusion mask in the package (strictly greater, on the continuous Tmax,
  :func:`stnet_lib.metrics.overlap.hypoperfusion_mask`);
* the hypoperfusion intensity ratio, volume(Tmax > 10 s)/volume(Tmax > 6 s) (Olivot et al.,
  Stroke 2014, doi:10.1161/STROKEAHA.113.003857), null with a note when nothing exceeds 6 s;
* relative maps rCBF and rCBV: each voxel's value over the median of the normal-appearing tissue
  (Tmax ≤ 4 s) of the hemisphere opposite the lesion, and the volume with rCBF < 30 % (RAPID's
  core estimate; Campbell et al., Stroke 2011, doi:10.1161/STROKEAHA.111.627547), and the
  mismatch between the Tmax > 6 s volume and that core.

The mid-sagittal plane comes from the brain mask's left–right symmetry (:func:`mid_sagittal_plane`):
the affine says which array axis runs left–right, and the plane perpendicular to it that best
superimposes the mask on its own mirror image is taken. Every threshold is a field of
:class:`SummaryConfig`; every key carries its unit. Why these choices, and the plane measured on
synthetic subjects: docs/decisions/0042-hypoperfusion-summary.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

from ._validation import StnetInputError, check_mask
from .maps import PerfusionMaps
from .metrics.overlap import hypoperfusion_mask

__all__ = ["SummaryConfig", "HypoperfusionSummary", "MidSagittalPlane", "mid_sagittal_plane", "hemisphere_masks",
           "hypoperfusion_summary", "tmax_volumes"]


@dataclass(frozen=True)
class SummaryConfig:
    """Thresholds of the summary (every one a parameter; recorded in the summary's ``parameters``)."""

    tmax_thresholds_s: tuple[float, ...] = (4.0, 6.0, 8.0, 10.0)  # volumes of Tmax > each [s]
    hir_thresholds_s: tuple[float, float] = (10.0, 6.0)  # HIR = vol(Tmax > first)/vol(Tmax > second)
    lesion_tmax_s: float = 6.0  # hypoperfused tissue: picks the affected hemisphere, and the mismatch
    normal_tmax_s: float = 4.0  # normal-appearing tissue of the reference: Tmax ≤ this [s]
    rcbf_threshold: float = 0.3  # core estimate: rCBF below this fraction of the reference

    def __post_init__(self):
        """Refuse thresholds that make no summary (StnetInputError, one line); store them as floats."""
        def seconds(values, name: str, count: int | None = None) -> tuple[float, ...]:
            values = tuple(np.atleast_1d(np.asarray(values, dtype=np.float64)).tolist())
            if not values or (count is not None and len(values) != count) or not all(
                    np.isfinite(v) and v >= 0 for v in values):
                wanted = f"{count} " if count else ""
                raise StnetInputError(f"{name} must be {wanted}finite Tmax threshold(s) ≥ 0 s; got {values}")
            return values

        object.__setattr__(self, "tmax_thresholds_s", seconds(self.tmax_thresholds_s, "tmax_thresholds_s"))
        object.__setattr__(self, "hir_thresholds_s", seconds(self.hir_thresholds_s, "hir_thresholds_s", 2))
        if self.hir_thresholds_s[0] == self.hir_thresholds_s[1]:
            raise StnetInputError(f"hir_thresholds_s must be two different thresholds (e.g. 10, 6); got "
                                  f"{self.hir_thresholds_s}")
        for name in ("lesion_tmax_s", "normal_tmax_s"):
            object.__setattr__(self, name, seconds(getattr(self, name), name, 1)[0])
        if not 0 < float(self.rcbf_threshold) < 1:
            raise StnetInputError(f"rcbf_threshold is a fraction of the reference CBF in (0, 1), e.g. 0.3 for 30 %; "
                                  f"got {self.rcbf_threshold}")
        object.__setattr__(self, "rcbf_threshold", float(self.rcbf_threshold))


@dataclass
class HypoperfusionSummary:
    """The summary of one scan.

    Attributes
    ----------
    values : dict
        Flat JSON-safe numbers and notes, one row of a cohort's table (see :func:`hypoperfusion_summary`).
    rcbf, rcbv : ndarray, shape (x, y, z)
        CBF and CBV over the reference tissue's median (dimensionless), NaN outside the brain.
    parameters : dict
        The :class:`SummaryConfig` that made it.
    """

    values: dict
    rcbf: NDArray
    rcbv: NDArray
    parameters: dict = dataclasses.field(default_factory=dict)

    def as_json(self) -> dict:
        """``values`` with ``parameters`` under their own key (the content of ``summary.json``)."""
        return {**self.values, "parameters": self.parameters}


@dataclass(frozen=True)
class MidSagittalPlane:
    """The plane x_axis = ``index_vox`` (half-integers allowed) and which side the index grows towards."""

    axis: int
    index_vox: float
    increasing_side: str  # "left" or "right": the hemisphere of indices above ``index_vox``


def mid_sagittal_plane(brain_mask: NDArray, affine: NDArray) -> MidSagittalPlane:
    """The mid-sagittal plane from the brain mask's left–right symmetry.

    The left–right array axis is the one the affine maps mostly onto world x (``nibabel``'s axis
    codes, RAS+). Along it, the mirror image about the plane at index c/2 pairs voxel i with
    voxel c − i; the overlap of the mask with that mirror image, summed over the other axes, is
    the self-convolution of the mask along the axis (computed with FFTs for every c at once), and
    the plane is the c that maximises it (the first, for ties). The plane is perpendicular to the
    array axis: a head turned within the field of view is split slightly off its true midline.
    """
    brain_mask = np.asarray(brain_mask, dtype=bool)
    codes = nib.aff2axcodes(np.asarray(affine, dtype=np.float64))
    axis = next((i for i, code in enumerate(codes) if code in ("L", "R")), None)
    if axis is None or axis >= brain_mask.ndim:
        raise StnetInputError(f"the affine has no left–right axis among the mask's axes (axis codes {codes}): "
                              "pass the scan's own affine")
    if not brain_mask.any():
        raise StnetInputError("the brain mask is empty: no midline to find")
    n = brain_mask.shape[axis]
    spectrum = np.fft.rfft(brain_mask.astype(np.float64), n=2 * n, axis=axis)
    overlap = np.fft.irfft(spectrum**2, n=2 * n, axis=axis)
    overlap = overlap.sum(axis=tuple(a for a in range(brain_mask.ndim) if a != axis))[: 2 * n - 1]
    best = int(np.argmax(np.round(overlap)))
    return MidSagittalPlane(axis, best / 2.0, "right" if codes[axis] == "R" else "left")


def hemisphere_masks(shape: tuple[int, ...], plane: MidSagittalPlane) -> dict[str, NDArray]:
    """Boolean masks ``{"left": ..., "right": ...}`` of the two sides of ``plane`` (voxels on it in neither)."""
    index = np.arange(shape[plane.axis]).reshape([-1 if a == plane.axis else 1 for a in range(len(shape))])
    above = np.broadcast_to(index > plane.index_vox, shape)
    below = np.broadcast_to(index < plane.index_vox, shape)
    other = "left" if plane.increasing_side == "right" else "right"
    return {plane.increasing_side: above.copy(), other: below.copy()}


def _key(value: float) -> str:
    return f"{value:g}".replace(".", "p")


def tmax_volumes(tmax: NDArray, brain: NDArray, thresholds_s, voxel_ml: float) -> dict:
    """``{"tmax_gt_<t>s_ml": volume}``: the brain's volume [ml] with Tmax > t [s] (strictly; NaN never counts)."""
    return {f"tmax_gt_{_key(t)}s_ml": float(np.count_nonzero(hypoperfusion_mask(tmax, threshold_s=t) & brain))
            * voxel_ml for t in thresholds_s}


def _ratio(numerator: float, denominator: float, what: str) -> tuple[float | None, str]:
    """numerator/denominator, or None with the reason when the denominator is 0."""
    if denominator > 0:
        return numerator / denominator, ""
    return None, f"undefined: no voxel with {what}"


def _reference_side(lesion: NDArray, sides: dict[str, NDArray], voxel_ml: float, lesion_s: float) -> tuple[dict, str]:
    """Per-side lesion volumes, and the side whose tissue is the reference (``"both"`` without a lesion)."""
    volumes = {side: float(np.count_nonzero(lesion & mask)) * voxel_ml for side, mask in sides.items()}
    values = {f"tmax_gt_{_key(lesion_s)}s_{side}_ml": volume for side, volume in sorted(volumes.items())}
    if volumes["left"] == volumes["right"] == 0.0:
        return {**values, "affected_hemisphere": None}, "both"
    affected = max(volumes, key=volumes.get)
    return {**values, "affected_hemisphere": affected}, "left" if affected == "right" else "right"


def _relative_maps(maps: PerfusionMaps, reference: NDArray, brain: NDArray) -> tuple[dict, NDArray, NDArray]:
    """Reference medians, and CBF and CBV over them (NaN outside the brain, and everywhere without reference)."""
    values, relative = {"n_reference_voxels": int(np.count_nonzero(reference))}, {}
    for name, unit in (("cbf", "ml_100g_min"), ("cbv", "ml_100g")):
        volume = np.asarray(getattr(maps, name), dtype=np.float64)
        inside = volume[reference & np.isfinite(volume)]
        median = float(np.median(inside)) if inside.size else float("nan")
        values[f"reference_{name}_{unit}"] = median if median > 0 else None
        with np.errstate(divide="ignore", invalid="ignore"):
            relative[name] = np.where(brain, volume / median, np.nan) if median > 0 else np.full(brain.shape, np.nan)
    ok = all(values[key] is not None for key in ("reference_cbf_ml_100g_min", "reference_cbv_ml_100g"))
    values["reference_note"] = "" if ok else "undefined: no normal-appearing voxel with positive CBF and CBV"
    return values, relative["cbf"], relative["cbv"]


def _check_inputs(maps: PerfusionMaps, brain_mask, affine) -> tuple[NDArray, NDArray]:
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)) or np.linalg.det(affine[:3, :3]) == 0:
        raise StnetInputError(f"the affine must be a finite, invertible 4×4 matrix; got shape {affine.shape}: "
                              "pass the scan's NIfTI affine")
    shapes = {name: np.shape(getattr(maps, name)) for name in ("cbf", "cbv", "tmax")}
    if len(set(shapes.values())) != 1:
        raise StnetInputError(f"the maps' shapes differ ({shapes}): summarise maps of one scan")
    brain = check_mask(brain_mask, shapes["tmax"], "brain_mask")
    return brain, affine


def hypoperfusion_summary(maps: PerfusionMaps, brain_mask: NDArray, affine: NDArray,
                          config: SummaryConfig = SummaryConfig()) -> HypoperfusionSummary:
    """Volumes, hypoperfusion intensity ratio, rCBF/rCBV and the rCBF core of one scan.

    Parameters
    ----------
    maps : PerfusionMaps
        The scan's maps (``cbf`` ml/100g/min, ``cbv`` ml/100g, ``tmax`` s), shape (x, y, z).
    brain_mask : ndarray of bool, shape (x, y, z)
        Where the volumes are counted and the relative maps defined.
    affine : ndarray, shape (4, 4)
        Voxel-to-world (RAS+ mm) matrix: the voxel volume |det| [mm³] and the left–right axis.
    config : SummaryConfig
        Thresholds.

    Returns
    -------
    HypoperfusionSummary
        ``values``: ``voxel_volume_ml``, ``brain_volume_ml``, ``tmax_gt_<t>s_ml`` per threshold,
        ``hypoperfusion_intensity_ratio`` (+ ``_note``), the plane (``midline_axis``,
        ``midline_index_vox``), the lesion volume per side, ``affected_hemisphere`` (the side
        with more Tmax > 6 s; None without), ``reference_hemisphere`` (the other, or "both"),
        ``n_reference_voxels``, ``reference_cbf_ml_100g_min``, ``reference_cbv_ml_100g``
        (+ ``reference_note``), ``rcbf_lt_<p>pct_ml``, ``mismatch_ml`` = vol(Tmax > 6 s) −
        core, ``mismatch_ratio`` (+ ``_note``). A ratio whose denominator is 0 is None with a
        note saying why. ``rcbf``, ``rcbv``: the relative maps.
    """
    brain, affine = _check_inputs(maps, brain_mask, affine)
    voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
    tmax = np.asarray(maps.tmax, dtype=np.float64)
    values = {"voxel_volume_ml": voxel_ml, "brain_volume_ml": float(brain.sum()) * voxel_ml,
              **tmax_volumes(tmax, brain, config.tmax_thresholds_s, voxel_ml)}
    high, low = tmax_volumes(tmax, brain, config.hir_thresholds_s, voxel_ml).values()
    hir_s = [_key(t) for t in config.hir_thresholds_s]
    values["hypoperfusion_intensity_ratio"], values["hypoperfusion_intensity_ratio_note"] = _ratio(
        high, low, f"Tmax > {hir_s[1]} s")
    plane = mid_sagittal_plane(brain, affine)
    lesion = hypoperfusion_mask(tmax, threshold_s=config.lesion_tmax_s) & brain
    sides = hemisphere_masks(brain.shape, plane)
    side_values, reference_side = _reference_side(lesion, sides, voxel_ml, config.lesion_tmax_s)
    values.update({"midline_axis": plane.axis, "midline_index_vox": plane.index_vox, **side_values,
                   "reference_hemisphere": reference_side})
    region = brain if reference_side == "both" else brain & sides[reference_side]
    normal = region & (np.nan_to_num(tmax, nan=np.inf) <= config.normal_tmax_s)
    reference_values, rcbf, rcbv = _relative_maps(maps, normal, brain)
    values.update(reference_values)
    core_ml = float(np.count_nonzero(brain & (np.nan_to_num(rcbf, nan=np.inf) < config.rcbf_threshold))) * voxel_ml
    lesion_ml = float(lesion.sum()) * voxel_ml
    values[f"rcbf_lt_{_key(100 * config.rcbf_threshold)}pct_ml"] = core_ml
    values["mismatch_ml"] = lesion_ml - core_ml
    values["mismatch_ratio"], values["mismatch_ratio_note"] = _ratio(lesion_ml, core_ml, "rCBF below the threshold")
    return HypoperfusionSummary(values=values, rcbf=rcbf, rcbv=rcbv, parameters=dataclasses.asdict(config))
