"""PSNR, SSIM, NRMSE: scikit-image oracles (standard), a hand-computed example and a brute-force
1-D SSIM (the authors' ``paper`` convention), edge cases."""

import numpy as np
import pytest
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity

from stnet_lib._validation import StnetInputError
from stnet_lib.metrics import nrmse, psnr, ssim


@pytest.fixture
def maps(rng):
    """A CBF-like reference (x, y, z) = (16, 14, 5), a noisy estimate, a box mask; NaN outside."""
    reference = rng.uniform(10.0, 80.0, (16, 14, 5))
    estimate = reference + rng.normal(0.0, 5.0, reference.shape)
    mask = np.zeros(reference.shape, bool)
    mask[3:13, 2:12, 1:5] = True
    return np.where(mask, reference, np.nan), np.where(mask, estimate, np.nan), mask


# --- standard convention ----------------------------------------------------------------------

def test_psnr_standard_matches_skimage_on_region_voxels(maps):
    reference, estimate, mask = maps
    expected = peak_signal_noise_ratio(reference[mask], estimate[mask], data_range=100.0)
    assert psnr(reference, estimate, mask=mask, data_range=100.0) == pytest.approx(expected, rel=1e-12)


def test_psnr_default_range_is_reference_range_in_region(maps):
    reference, estimate, mask = maps
    span = np.ptp(reference[mask])
    assert psnr(reference, estimate, mask=mask) == pytest.approx(
        psnr(reference, estimate, mask=mask, data_range=span), rel=1e-12)


@pytest.mark.parametrize("normalization", ["euclidean", "min-max", "mean"])
def test_nrmse_matches_skimage(maps, normalization):
    reference, estimate, mask = maps
    expected = normalized_root_mse(reference[mask], estimate[mask], normalization=normalization)
    assert nrmse(reference, estimate, mask=mask, normalization=normalization) == pytest.approx(expected, rel=1e-12)


def test_ssim_standard_full_mask_is_mean_of_skimage_slices(rng):
    # with every voxel in the region, the pooled mean over the slices' interiors (equal sizes)
    # is the mean of scikit-image's per-slice mean SSIM, which crops the same 3-voxel band
    reference = rng.uniform(0.0, 10.0, (12, 11, 3))
    estimate = reference + rng.normal(0.0, 1.0, reference.shape)
    expected = np.mean([structural_similarity(reference[..., k], estimate[..., k], data_range=10.0)
                        for k in range(3)])
    assert ssim(reference, estimate, data_range=10.0) == pytest.approx(expected, rel=1e-12)
    assert ssim(reference[..., 0], estimate[..., 0], data_range=10.0) == pytest.approx(
        structural_similarity(reference[..., 0], estimate[..., 0], data_range=10.0), rel=1e-12)


def test_ssim_standard_reads_nan_outside_mask_as_zero_background(maps):
    reference, estimate, mask = maps
    zero_filled = ssim(np.nan_to_num(reference), np.nan_to_num(estimate), mask=mask, data_range=80.0)
    assert ssim(reference, estimate, mask=mask, data_range=80.0) == pytest.approx(zero_filled, rel=1e-12)
    assert 0.0 < zero_filled < 1.0


def test_identical_maps_are_perfect(maps):
    reference, _, mask = maps
    assert psnr(reference, reference, mask=mask) == np.inf
    assert ssim(reference, reference, mask=mask) == pytest.approx(1.0)
    assert nrmse(reference, reference, mask=mask) == 0.0
    assert psnr(reference, reference, mask=mask, convention="paper") == np.inf
    assert ssim(reference, reference, mask=mask, convention="paper") == pytest.approx(1.0)


def test_worse_estimate_scores_worse(maps, rng):
    reference, estimate, mask = maps
    worse = estimate + rng.normal(0.0, 10.0, estimate.shape)
    for metric in (psnr, ssim):
        for convention in ("standard", "paper"):
            assert metric(reference, worse, mask=mask, convention=convention) < metric(
                reference, estimate, mask=mask, convention=convention)
    assert nrmse(reference, worse, mask=mask) > nrmse(reference, estimate, mask=mask)


# --- paper convention -------------------------------------------------------------------------

def test_psnr_paper_hand_computed_example():
    # slice 0: 3×4, column 3 outside the mask (NaN in the reference, 100 in the estimate: ignored);
    # the estimate doubles the value 4 (→ 8) and has −3 where the reference is 0 (clipped to 0).
    # Both slices are min–max normalised on their own: ref/(8 + 1e-6), est/(8 + 1e-6); they differ
    # at one voxel of nine by 4/(8 + 1e-6).  Slice 1 has 5 region voxels (< 8): skipped.
    reference = np.full((3, 4, 2), np.nan)
    estimate = np.full((3, 4, 2), 100.0)
    mask = np.zeros((3, 4, 2), bool)
    mask[:, :3, 0] = True
    mask[0, :, 1] = mask[1, 0, 1] = True
    reference[:, :3, 0] = np.arange(9.0).reshape(3, 3)
    estimate[:, :3, 0] = reference[:, :3, 0]
    estimate[1, 1, 0], estimate[0, 0, 0] = 8.0, -3.0
    reference[mask[..., 1], 1] = 50.0
    mse = (4.0 / (8.0 + 1e-6)) ** 2 / 9.0
    expected = 10 * np.log10(1.0 / mse)
    assert psnr(reference, estimate, mask=mask, convention="paper") == pytest.approx(expected, rel=1e-12)
    assert np.isnan(psnr(reference, estimate, mask=mask, convention="paper", min_slice_voxels=10))


def _ssim_1d_brute_force(x, y):
    """Mean over every full 7-voxel window of the SSIM formula (sample covariance, range 2)."""
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    values = []
    for start in range(len(x) - 6):
        a, b = x[start:start + 7], y[start:start + 7]
        cov = np.cov(a, b, ddof=1)
        values.append((2 * a.mean() * b.mean() + c1) * (2 * cov[0, 1] + c2)
                      / ((a.mean() ** 2 + b.mean() ** 2 + c1) * (cov[0, 0] + cov[1, 1] + c2)))
    return np.mean(values)


def test_ssim_paper_matches_brute_force_per_slice_1d_ssim(rng):
    reference = rng.uniform(0.0, 60.0, (9, 8, 3))
    estimate = reference + rng.normal(0.0, 8.0, reference.shape)
    mask = np.zeros(reference.shape, bool)
    mask[1:8, 2:7, 0] = True  # 35 voxels
    mask[2:5, 1:6, 1] = True  # 15 voxels
    mask[4, 4:7, 2] = True  # 3 voxels: skipped
    expected = []
    for k in range(2):
        ref = np.where(mask[..., k], np.clip(reference[..., k], 0, None), 0.0)
        est = np.where(mask[..., k], np.clip(estimate[..., k], 0, None), 0.0)
        ref = (ref - ref.min()) / (ref.max() - ref.min() + 1e-6)
        est = (est - est.min()) / (est.max() - est.min() + 1e-6)
        expected.append(_ssim_1d_brute_force(ref[mask[..., k]], est[mask[..., k]]))
    assert ssim(reference, estimate, mask=mask, convention="paper") == pytest.approx(np.mean(expected), rel=1e-10)


def test_paper_convention_ignores_global_scale_standard_does_not(maps):
    reference, _, mask = maps
    scaled = 1.2 * reference
    assert ssim(reference, scaled, mask=mask, convention="paper") > 0.99999
    assert psnr(reference, scaled, mask=mask, convention="paper") > 80.0
    assert psnr(reference, scaled, mask=mask, data_range=80.0) < 30.0


def test_nrmse_paper_clips_negatives(maps):
    reference, estimate, mask = maps
    estimate = estimate - 30.0  # many negative values
    clipped = np.clip(estimate, 0, None)
    assert nrmse(reference, estimate, mask=mask, convention="paper") == pytest.approx(
        nrmse(reference, clipped, mask=mask), rel=1e-12)
    assert nrmse(reference, estimate, mask=mask) != pytest.approx(nrmse(reference, clipped, mask=mask))


# --- edge cases and errors --------------------------------------------------------------------

def test_constant_reference_gives_nan_without_range_and_a_value_with_one(maps):
    _, estimate, mask = maps
    constant = np.full(estimate.shape, 40.0)
    assert np.isnan(psnr(constant, estimate, mask=mask))
    assert np.isnan(ssim(constant, estimate, mask=mask))
    assert np.isfinite(psnr(constant, estimate, mask=mask, data_range=100.0))
    assert np.isfinite(ssim(constant, estimate, mask=mask, data_range=100.0))
    assert np.isnan(nrmse(np.zeros(estimate.shape), estimate, mask=mask))


def test_empty_mask_gives_nan(maps):
    reference, estimate, _ = maps
    empty = np.zeros(reference.shape, bool)
    for metric in (psnr, ssim):
        for convention in ("standard", "paper"):
            assert np.isnan(metric(reference, estimate, mask=empty, convention=convention))
    assert np.isnan(nrmse(reference, estimate, mask=empty))


@pytest.mark.parametrize("metric", [psnr, ssim, nrmse])
@pytest.mark.parametrize("convention", ["standard", "paper"])
def test_nan_in_estimate_inside_mask_is_an_error(maps, metric, convention):
    reference, estimate, mask = maps
    estimate[5, 5, 2] = np.nan
    with pytest.raises(StnetInputError, match="estimate has 1 NaN or infinite values inside the mask"):
        metric(reference, estimate, mask=mask, convention=convention)


@pytest.mark.parametrize("metric", [psnr, ssim, nrmse])
def test_mismatched_shapes_are_an_error(maps, metric):
    reference, estimate, mask = maps
    with pytest.raises(StnetInputError, match="does not match reference shape"):
        metric(reference, estimate[:-1], mask=mask)
    with pytest.raises(StnetInputError, match="mask shape"):
        metric(reference, estimate, mask=mask[:-1])


def test_option_errors(maps):
    reference, estimate, mask = maps
    with pytest.raises(StnetInputError, match="data_range is fixed by convention='paper'"):
        psnr(reference, estimate, mask=mask, data_range=1.0, convention="paper")
    with pytest.raises(StnetInputError, match="convention must be one of"):
        ssim(reference, estimate, mask=mask, convention="fancy")
    with pytest.raises(StnetInputError, match="data_range must be a positive number"):
        psnr(reference, estimate, mask=mask, data_range=0.0)
    with pytest.raises(StnetInputError, match="normalization must be one of"):
        nrmse(reference, estimate, mask=mask, normalization="max")
    with pytest.raises(StnetInputError, match="slices of at least 7"):
        ssim(reference[:5], estimate[:5], mask=mask[:5])
    with pytest.raises(StnetInputError, match="slices of axis 2 of a 3-D map"):
        psnr(reference[..., 0], estimate[..., 0], convention="paper")
    small = mask.copy()
    small[..., 2] = False
    small[4, 3:6, 2] = True  # 3 voxels: too few for the 7-voxel window
    with pytest.raises(StnetInputError, match="at least 7 region voxels"):
        ssim(reference, estimate, mask=small, convention="paper", min_slice_voxels=2)
