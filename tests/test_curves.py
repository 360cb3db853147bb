"""The curve preparation every method shares: non-steady frames, slice timing, the record it leaves."""

import dataclasses

import nibabel as nib
import numpy as np
import pytest

from curves import tissue_curves
from stnet_lib import compute_maps, load_scan
from stnet_lib._validation import StnetInputError
from stnet_lib.curves import align_slice_timing, prepare_curves
from stnet_lib.io import Scan
from stnet_lib.signal import concentration_to_delta_r2, delta_r2_to_signal
from stnet_lib.simulation import SubjectConfig, make_subject
from stnet_lib.simulation.realism import Realism


def _with_frames_before(scan: Scan, factors) -> Scan:
    """The scan with bright, not yet steady frames (S0 × factors) put before its first frame."""
    first = scan.signal[..., :1]
    extra = np.concatenate([first * f for f in factors], axis=-1)
    return dataclasses.replace(scan, signal=np.concatenate([extra, scan.signal], axis=-1).astype(np.float32))


def test_non_steady_frames_are_dropped_before_any_method_sees_the_curves(small_scan):
    scan = load_scan(small_scan["dsc"], small_scan["aif"], brain_mask=small_scan["brain"], te_ms=30.0, field_t=1.5)
    unsteady = _with_frames_before(scan, [1.25, 1.08])
    for method in ("osvd", "ttv"):
        plain, dropped = compute_maps(scan, method), compute_maps(unsteady, method)
        for name in ("cbv", "cbf", "mtt", "tmax"):
            np.testing.assert_array_equal(getattr(dropped, name), getattr(plain, name))
        assert plain.params["frames_dropped"] == 0 and dropped.params["frames_dropped"] == 2
        assert dropped.params["frames_in"] == scan.signal.shape[-1] + 2
        assert dropped.params["baseline_frames"] == plain.params["baseline_frames"]


@pytest.mark.parametrize("seed", [3, 8])
def test_the_simulators_non_steady_frames_are_found(seed):
    """The realistic simulator draws 0–3 leading frames at 1.1–1.3× S0 decaying to 1; the preparation
    drops exactly those, and none from a subject simulated without them."""
    config = SubjectConfig(shape=(24, 24, 4), voxel_mm=(8.0, 8.0, 10.0), n_frames=40)
    for realism, expected in ((Realism(), None), (Realism.none(), 0)):
        subject = make_subject(dataclasses.replace(config, realism=realism), np.random.default_rng(seed))
        header = nib.Nifti1Header()
        scan = Scan(subject.signal, subject.affine, header, subject.te_ms, subject.tr_s, subject.masks["aif"],
                    subject.masks["brain"], field_t=subject.field_t)
        record = prepare_curves(scan).record
        assert record["frames_dropped"] == (subject.params["n_non_steady_frames"] if expected is None else expected)


def _interleaved_scan(tr_s: float, timing: np.ndarray):
    """Slices acquired at ``timing`` [s] within each TR; tissue delays spread over a TR so that the mean
    Tmax of a slice is not set by the frame grid. Returns the scan and the true Tmax (the delay)."""
    n_frames, delays = 50, np.linspace(1.0, 1.0 + tr_s, 10, endpoint=False)
    shape = (10, 6, len(timing))
    cbf = 50.0 + 10.0 * np.arange(6)
    delta_r2 = np.zeros(shape + (n_frames,))
    tmax = np.zeros(shape)
    for z, offset in enumerate(timing):
        for x, delay in enumerate(delays):
            # slice z's frame k is taken at k·TR + offset: the tissue curve seen delay − offset later
            _, c_tissue = tissue_curves(cbf, 4.0, delay_s=delay - offset, tr_s=tr_s, n_frames=n_frames)
            delta_r2[x, :, z] = concentration_to_delta_r2(c_tissue, kind="tissue")
            tmax[x, :, z] = delay
    c_aif, _ = tissue_curves([50.0], 4.0, tr_s=tr_s, n_frames=n_frames)
    aif = np.zeros(shape, bool)
    aif[0, 0, 0] = True  # slice 0 is acquired at offset 0
    delta_r2[aif] = concentration_to_delta_r2(c_aif, kind="arterial")
    signal = delta_r2_to_signal(delta_r2, 500.0, 30.0).astype(np.float32)
    scan = Scan(signal, np.eye(4), nib.Nifti1Header(), 30.0, tr_s, aif, ~aif, field_t=1.5)
    scan.slice_timing_s = timing
    return scan, tmax


def test_slice_timing_alignment_removes_the_tmax_bias_between_slices():
    """Interleaved acquisition (slices 0, 2 at 0 s, slices 1, 3 at TR/2): without alignment the odd slices'
    Tmax is about TR/2 early; aligned onto the frame times, the bias between slices is below 0.3 s."""
    tr_s = 1.5
    scan, truth = _interleaved_scan(tr_s, np.array([0.0, tr_s / 2, 0.0, tr_s / 2]))
    brain = scan.brain_mask

    def slice_bias(maps):
        error = np.where(brain, maps.tmax - truth, np.nan)
        return np.nanmean(error[:, :, 1::2]) - np.nanmean(error[:, :, 0::2])

    aligned = compute_maps(scan, "osvd")
    unaligned = compute_maps(dataclasses.replace(scan, slice_timing_s=None), "osvd")
    assert aligned.params["slice_timing"]["slice_timing_s"] == [0.0, 0.75, 0.0, 0.75]
    assert abs(slice_bias(unaligned) + tr_s / 2) < 0.25  # about −TR/2 = −0.75 s
    assert abs(slice_bias(aligned)) < 0.3


def test_slice_timing_of_zero_changes_nothing_and_bad_timing_is_refused(small_scan):
    signal = nib.load(small_scan["dsc"]).get_fdata().astype(np.float32)
    np.testing.assert_array_equal(align_slice_timing(signal, [0.0, 0.0], 1.5), signal)
    with pytest.raises(StnetInputError, match="one acquisition time"):
        align_slice_timing(signal, [0.0, 0.5, 1.0], 1.5)
    with pytest.raises(StnetInputError, match="SliceTiming is in seconds"):
        align_slice_timing(signal, [0.0, 750.0], 1.5)


def test_a_prepared_scan_is_not_aligned_twice_and_the_input_scan_is_left_alone():
    scan, _ = _interleaved_scan(1.5, np.array([0.0, 0.75]))
    before = scan.signal.copy()
    prepared = prepare_curves(scan)
    np.testing.assert_array_equal(scan.signal, before)
    assert prepared.scan.slice_timing_s is None and scan.slice_timing_s is not None
    assert not np.array_equal(prepared.scan.signal[:, :, 1], before[:, :, 1])
    np.testing.assert_array_equal(prepared.scan.signal[:, :, 0], before[:, :, 0])


def test_methods_given_one_prepared_scan_map_as_from_the_scan_and_a_second_preparation_is_refused(small_scan):
    scan = load_scan(small_scan["dsc"], small_scan["aif"], brain_mask=small_scan["brain"], te_ms=30.0, field_t=1.5)
    unsteady = _with_frames_before(scan, [1.2])
    prepared = prepare_curves(unsteady)
    for method in ("csvd", "ttv"):
        shared, own = compute_maps(prepared, method), compute_maps(unsteady, method)
        for name in ("cbv", "cbf", "mtt", "tmax"):
            np.testing.assert_array_equal(getattr(shared, name), getattr(own, name))
        assert shared.params["frames_dropped"] == own.params["frames_dropped"] == 1
        assert shared.params["aif"] == own.params["aif"]
    with pytest.raises(StnetInputError, match="already prepared"):
        compute_maps(prepared, "osvd", motion_correct=True)
