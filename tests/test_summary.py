"""Hypoperfusion summary (issue #15) on hand-made volumes whose answers are known exactly."""

import json

import numpy as np
import pytest

from stnet_lib._validation import StnetInputError
from stnet_lib.maps import PerfusionMaps
from stnet_lib.summary import SummaryConfig, hemisphere_masks, hypoperfusion_summary, mid_sagittal_plane

VOXEL_MM = (2.0, 2.0, 5.0)  # 0.02 ml
AFFINE = np.diag([*VOXEL_MM, 1.0])  # RAS: array index 0 grows to the right


def make_maps(cbf, cbv, tmax):
    return PerfusionMaps(cbv=cbv, cbf=cbf, mtt=np.zeros_like(tmax), tmax=tmax, method="test")


def test_volumes_and_hir_of_cubes_of_known_size():
    shape = (10, 10, 4)
    brain = np.ones(shape, bool)
    tmax = np.full(shape, 2.0)
    tmax[0:3, 0:3, 0:2] = 12.0  # 18 voxels
    tmax[5:7, 5:7, 0] = 7.0  # 4 voxels
    tmax[8:10, 0:5, 3] = 5.0  # 10 voxels
    tmax[9, 9, 0] = 6.0  # exactly 6 s: not > 6 s
    summary = hypoperfusion_summary(make_maps(np.full(shape, 50.0), np.full(shape, 4.0), tmax), brain, AFFINE)
    v = summary.values
    assert v["voxel_volume_ml"] == pytest.approx(0.02)
    assert v["brain_volume_ml"] == pytest.approx(400 * 0.02)
    assert v["tmax_gt_4s_ml"] == pytest.approx(33 * 0.02)
    assert v["tmax_gt_6s_ml"] == pytest.approx(22 * 0.02)
    assert v["tmax_gt_8s_ml"] == pytest.approx(18 * 0.02)
    assert v["tmax_gt_10s_ml"] == pytest.approx(18 * 0.02)
    assert v["hypoperfusion_intensity_ratio"] == pytest.approx(18 / 22)
    assert v["hypoperfusion_intensity_ratio_note"] == ""
    json.dumps(summary.as_json(), allow_nan=False)


def test_voxels_outside_the_brain_or_without_tmax_are_not_counted():
    shape = (6, 4, 2)
    brain = np.zeros(shape, bool)
    brain[1:5] = True
    tmax = np.full(shape, 9.0)
    tmax[2, 0, 0] = np.nan
    summary = hypoperfusion_summary(make_maps(np.full(shape, 40.0), np.full(shape, 4.0), tmax), brain, AFFINE)
    assert summary.values["tmax_gt_6s_ml"] == pytest.approx((32 - 1) * 0.02)
    assert np.isnan(summary.rcbf[~brain]).all()


def test_no_hypoperfusion_gives_a_null_ratio_with_its_reason():
    shape = (8, 4, 2)
    summary = hypoperfusion_summary(make_maps(np.full(shape, 50.0), np.full(shape, 4.0), np.full(shape, 1.0)),
                                    np.ones(shape, bool), AFFINE)
    v = summary.values
    assert v["tmax_gt_6s_ml"] == 0.0
    assert v["hypoperfusion_intensity_ratio"] is None
    assert "no voxel with Tmax > 6 s" in v["hypoperfusion_intensity_ratio_note"]
    assert v["affected_hemisphere"] is None and v["reference_hemisphere"] == "both"
    assert v["rcbf_lt_30pct_ml"] == 0.0 and v["mismatch_ratio"] is None
    np.testing.assert_allclose(summary.rcbf, 1.0)
    json.dumps(summary.as_json(), allow_nan=False)


def symmetric_brain(centre_x=23.0, shape=(44, 30, 3)):
    """An ellipsoid brain symmetric about x = ``centre_x`` (array index), off the array's centre."""
    x, y, z = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    return ((x - centre_x) / 15.0) ** 2 + ((y - 14.5) / 12.0) ** 2 + ((z - 1.0) / 3.0) ** 2 <= 1.0


@pytest.mark.parametrize("centre_x", [23.0, 20.5])
def test_mid_sagittal_plane_is_the_symmetry_plane_of_the_mask(centre_x):
    brain = symmetric_brain(centre_x)
    plane = mid_sagittal_plane(brain, AFFINE)
    assert (plane.axis, plane.index_vox, plane.increasing_side) == (0, centre_x, "right")
    sides = hemisphere_masks(brain.shape, plane)
    assert (sides["left"] & brain).sum() == (sides["right"] & brain).sum()
    assert not (sides["left"] & sides["right"]).any()


def stroke(brain, left_healthy_cbf=80.0):
    """Right hemisphere CBF 50, CBV 4; left healthy CBF 80 (not the reference); a left lesion CBF 12, CBV 2,
    Tmax 8 s."""
    x = np.arange(brain.shape[0])[:, None, None] * np.ones(brain.shape)
    cbf = np.where(x < 23, left_healthy_cbf, 50.0)
    cbv = np.full(brain.shape, 4.0)
    tmax = np.full(brain.shape, 1.0)
    lesion = brain & (x >= 10) & (x <= 16)
    cbf[lesion], cbv[lesion], tmax[lesion] = 12.0, 2.0, 8.0
    return make_maps(cbf, cbv, tmax), lesion


def test_relative_maps_against_the_contralateral_normal_tissue():
    brain = symmetric_brain()
    maps, lesion = stroke(brain)
    summary = hypoperfusion_summary(maps, brain, AFFINE)
    v = summary.values
    n_lesion = int(lesion.sum())
    assert v["affected_hemisphere"] == "left" and v["reference_hemisphere"] == "right"
    assert v["tmax_gt_6s_left_ml"] == pytest.approx(n_lesion * 0.02) and v["tmax_gt_6s_right_ml"] == 0.0
    assert v["reference_cbf_ml_100g_min"] == 50.0 and v["reference_cbv_ml_100g"] == 4.0
    assert v["n_reference_voxels"] == int((brain & (np.arange(44) > 23)[:, None, None]).sum())
    np.testing.assert_allclose(summary.rcbf[lesion], 12.0 / 50.0)
    np.testing.assert_allclose(summary.rcbv[lesion], 0.5)
    assert v["rcbf_lt_30pct_ml"] == pytest.approx(n_lesion * 0.02)
    assert v["mismatch_ml"] == pytest.approx(0.0) and v["mismatch_ratio"] == pytest.approx(1.0)
    lower = hypoperfusion_summary(maps, brain, AFFINE, SummaryConfig(rcbf_threshold=0.2, tmax_thresholds_s=(4.5,)))
    assert lower.values["rcbf_lt_20pct_ml"] == 0.0 and lower.values["mismatch_ratio"] is None
    assert "tmax_gt_4p5s_ml" in lower.values and lower.parameters["rcbf_threshold"] == 0.2


def test_the_affine_says_which_side_is_which_and_which_axis_is_left_right():
    brain = symmetric_brain()
    maps, _ = stroke(brain)
    flipped = hypoperfusion_summary(maps, brain, np.diag([-2.0, 2.0, 5.0, 1.0]))  # index 0 grows to the left
    assert flipped.values["affected_hemisphere"] == "right"
    swap = np.array([[0, 2.0, 0, 0], [2.0, 0, 0, 0], [0, 0, 5.0, 0], [0, 0, 0, 1]])  # array axis 1 is x
    t = {name: np.swapaxes(getattr(maps, name), 0, 1) for name in ("cbf", "cbv", "tmax")}
    swapped = hypoperfusion_summary(make_maps(**t), np.swapaxes(brain, 0, 1), swap)
    assert swapped.values["midline_axis"] == 1 and swapped.values["midline_index_vox"] == 23.0
    assert swapped.values["affected_hemisphere"] == "left"
    assert swapped.values["reference_cbf_ml_100g_min"] == 50.0


def test_bad_inputs_are_refused_in_one_line():
    shape = (4, 4, 2)
    maps = make_maps(np.full(shape, 50.0), np.full(shape, 4.0), np.full(shape, 1.0))
    with pytest.raises(StnetInputError, match="brain_mask shape"):
        hypoperfusion_summary(maps, np.ones((4, 4, 3), bool), AFFINE)
    with pytest.raises(StnetInputError, match="4×4"):
        hypoperfusion_summary(maps, np.ones(shape, bool), np.eye(3))
    with pytest.raises(StnetInputError, match="brain_mask is empty"):
        hypoperfusion_summary(maps, np.zeros(shape, bool), AFFINE)
    with pytest.raises(StnetInputError, match="shapes differ"):
        hypoperfusion_summary(make_maps(np.ones((4, 4, 3)), np.ones(shape), np.ones(shape)), np.ones(shape, bool),
                              AFFINE)
