"""Stage 2 (curves): rigid motion correction of a DSC series with SimpleITK.

Every frame is registered onto one reference, the mean of the pre-bolus frames, by a rigid
(Euler 3-D: three rotations, three translations) transform that maximises Mattes mutual
information: the bolus darkens the tissue by up to half and the arteries to the noise floor, and a
sum-of-squares metric would move the head to explain that; mutual information only asks that the
same tissue keep one intensity within the frame. Two resolution levels (shrink 2 with 1-voxel
smoothing, then full resolution), regular-step gradient descent, 50-bin histograms sampled on a
jittered regular grid. Why SimpleITK and not
ANTsPy: docs/decisions/0051-motion-correction.md.

The parameters are those of the transform T with frame(T(x)) ≈ reference(x): rotations about the
array's x, y, z axes through the volume's centre [deg], then translations along them [mm] — the
head's displacement in that frame.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from tqdm.auto import tqdm

__all__ = ["MOTION_COLUMNS", "MotionSettings", "correct_motion", "register_frame", "motion_csv"]

log = logging.getLogger(__name__)

#: The six parameters of a frame, in the order of ``correct_motion``'s table and ``motion.csv``.
MOTION_COLUMNS = ("rot_x_deg", "rot_y_deg", "rot_z_deg", "trans_x_mm", "trans_y_mm", "trans_z_mm")


@dataclass(frozen=True)
class MotionSettings:
    """Registration settings: ~0.3 s per 64×64×16 frame on a 2-core CPU (decision 0051 has the measurements)."""

    histogram_bins: int = 50  # Mattes mutual information
    max_samples: int = 100_000  # voxels sampled per evaluation: all of a small grid, a regular subset of a large one,
    #                             each moved at random within its voxel (seeded), which removes the 0.6 mm bias that
    #                             linear interpolation's grid artefacts leave when every voxel centre is used
    iterations: int = 200  # per resolution level
    learning_rate_mm: float = 1.0  # first step of the gradient descent [mm of the largest shift]
    min_step_mm: float = 0.001  # stop when the step falls below this
    seed: int = 1  # of the random sampling (the result is deterministic)
    shrink_factors: tuple[int, ...] = (2, 1)  # shrink per level (none where the grid is under 32 voxels in-plane)
    smoothing_voxels: tuple[float, ...] = (1.0, 0.0)  # Gaussian smoothing per level [voxels]


def _image(volume: np.ndarray, zooms_mm) -> sitk.Image:
    """A SimpleITK image of an (x, y, z) array (SimpleITK wants (z, y, x)) with the voxel size [mm]."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(volume, dtype=np.float32).T))
    image.SetSpacing(tuple(float(z) for z in zooms_mm))
    return image


def register_frame(reference: sitk.Image, frame: sitk.Image, settings: MotionSettings = MotionSettings()
                   ) -> sitk.Euler3DTransform:
    """The rigid transform T with frame(T(x)) ≈ reference(x), by Mattes mutual information."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    method.SetMetricSamplingStrategy(method.REGULAR)
    n_voxels = int(np.prod(reference.GetSize()))
    method.SetMetricSamplingPercentage(min(1.0, settings.max_samples / n_voxels), settings.seed)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=settings.learning_rate_mm,
                                                    minStep=settings.min_step_mm,
                                                    numberOfIterations=settings.iterations,
                                                    gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    if min(reference.GetSize()) >= 4:
        method.SetShrinkFactorsPerLevel([max(1, min(f, min(reference.GetSize()[:2]) // 16)) for f in settings.shrink_factors])
        method.SetSmoothingSigmasPerLevel(list(settings.smoothing_voxels))
    else:  # ITK's Gaussian filters need 4 voxels along every axis: one level, gradients by differences
        method.SetShrinkFactorsPerLevel([1])
        method.SetSmoothingSigmasPerLevel([0.0])
        method.SetMetricUseFixedImageGradientFilter(False)
        method.SetMetricUseMovingImageGradientFilter(False)
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    if reference.GetSize()[2] == 1:  # one slice: only the in-plane rotation and shifts are defined
        method.SetOptimizerWeights([0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    initial = sitk.Euler3DTransform()
    initial.SetCenter(reference.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in reference.GetSize()]))
    method.SetInitialTransform(initial, inPlace=True)
    method.Execute(reference, frame)
    return initial


def _parameters(transform: sitk.Euler3DTransform) -> np.ndarray:
    angles, shifts = np.asarray(transform.GetParameters()[:3]), np.asarray(transform.GetParameters()[3:])
    return np.concatenate([np.degrees(angles), shifts])


def correct_motion(signal: np.ndarray, zooms_mm, reference_frames: slice, *, progress: bool = False,
                   settings: MotionSettings = MotionSettings()) -> tuple[np.ndarray, np.ndarray]:
    """Register every frame of a series rigidly onto the mean of ``reference_frames``.

    Parameters
    ----------
    signal : ndarray, shape (x, y, z, t)
        DSC series.
    zooms_mm : sequence of 3 floats
        Voxel size [mm].
    reference_frames : slice
        Pre-bolus frames (their mean is the reference; :func:`stnet_lib.signal.detect_baseline`).
        Frames before ``reference_frames.start`` (non-steady ones, dropped later) are not registered.
    progress : bool
        Show a tqdm bar over the frames.
    settings : MotionSettings

    Returns
    -------
    corrected : ndarray, shape (x, y, z, t), float32
        Every registered frame resampled onto the reference grid by cubic B-spline interpolation
        (linear interpolation blurs the bolus frames against the baseline's enough to leave the
        CBF map farther from the motion-free one than no correction: decision 0051); outside the
        field of view the nearest voxel's value.
    parameters : ndarray, shape (t, 6)
        ``MOTION_COLUMNS`` per frame (NaN for the frames not registered).
    """
    reference = _image(signal[..., reference_frames].mean(axis=-1, dtype=np.float64), zooms_mm)
    corrected = np.array(signal, dtype=np.float32, copy=True)
    parameters = np.full((signal.shape[-1], 6), np.nan)
    frames = range(reference_frames.start, signal.shape[-1])
    for t in tqdm(frames, desc="motion correction", unit="frame", disable=not progress):
        frame = _image(signal[..., t], zooms_mm)
        transform = register_frame(reference, frame, settings)
        parameters[t] = _parameters(transform)
        moved = sitk.Resample(frame, reference, transform, sitk.sitkBSpline, 0.0, sitk.sitkFloat32,
                              useNearestNeighborExtrapolator=True)
        corrected[..., t] = sitk.GetArrayFromImage(moved).T
    shifts = np.nanmax(np.abs(parameters), axis=0)
    log.info("motion: at most %.2f/%.2f/%.2f deg and %.2f/%.2f/%.2f mm", *shifts)
    return corrected, parameters


def motion_csv(parameters: np.ndarray, tr_s: float) -> bytes:
    """``motion.csv``: one row per frame, ``frame, time_s`` and the six ``MOTION_COLUMNS`` (empty when not registered)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(("frame", "time_s", *MOTION_COLUMNS))
    for index, row in enumerate(np.asarray(parameters, dtype=float)):
        values = ["" if np.isnan(v) else f"{v:.4f}" for v in row]
        writer.writerow((index, f"{index * tr_s:.3f}", *values))
    return text.getvalue().encode()
