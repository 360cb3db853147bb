"""Computed brain masks: every perfused piece kept, the eyes and specks dropped; the AIF search region."""

import nibabel as nib
import numpy as np
import pytest

from conftest import shared_file
from curves import gamma_variate
from stnet_lib.masking import MIN_COMPONENT_VOXELS, compute_brain_mask, search_region

TIME_S = np.arange(40) * 1.5


def _blob(shape, centre, radius):
    x, y = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return (((x - centre[0]) ** 2 + (y - centre[1]) ** 2) <= radius**2)[..., None] & np.ones(shape, bool)


def _series(rng):
    """A 48×40×3 head: a large brain piece, a separate smaller lobe (both with a bolus), an 'eye' as bright
    and as big as the lobe but without one, and a bright 6-voxel speck with a bolus."""
    shape = (48, 40, 3)
    bolus = 1.0 - 0.4 * gamma_variate(TIME_S, t0_s=15.0, peak_mM=1.0)
    pieces = {"brain": (_blob(shape, (28, 20), 12), bolus), "lobe": (_blob(shape, (8, 30), 4), bolus),
              "eye": (_blob(shape, (8, 8), 4), np.ones_like(bolus)), "speck": (_blob(shape, (45, 3), 0.9), bolus)}
    signal = rng.normal(0, 5.0, shape + TIME_S.shape) + 20.0
    for mask, curve in pieces.values():
        signal[mask] = 800.0 * curve + rng.normal(0, 5.0, (int(mask.sum()), TIME_S.size))
    return signal.astype(np.float32), {name: mask for name, (mask, _) in pieces.items()}


def test_every_perfused_piece_is_kept_and_the_rest_dropped(rng):
    signal, pieces = _series(rng)
    assert pieces["speck"].sum() < MIN_COMPONENT_VOXELS <= pieces["lobe"].sum()
    mask = compute_brain_mask(signal)
    for name, expected in {"brain": True, "lobe": True, "eye": False, "speck": False}.items():
        # erosion removes the rim: the inner part of each kept piece is in, nothing of a dropped one
        assert mask[pieces[name]].any() == expected, name
    assert not mask[~(pieces["brain"] | pieces["lobe"])].any()


def test_a_series_without_a_bolus_keeps_every_large_piece(rng):
    signal, pieces = _series(rng)
    flat = np.where(pieces["eye"][..., None], signal, signal[..., :1])  # no frame differs: no bolus anywhere
    mask = compute_brain_mask(flat)
    assert mask[pieces["eye"]].any() and mask[pieces["lobe"]].any() and mask[pieces["brain"]].any()


def test_a_three_slice_series_is_not_taken_for_an_rgb_image(rng):
    """skimage warns about (x, y, 3) images; filterwarnings=error turns that into a failure."""
    signal, _ = _series(rng)
    assert compute_brain_mask(signal).shape == signal.shape[:3]


def test_the_search_region_reaches_vessels_outside_the_brain_mask():
    brain = np.zeros((20, 20, 5), bool)
    brain[5:15, 5:15, 1:4] = True
    region = search_region(brain)
    assert region[brain].all() and region[3, 10, 2] and region[10, 10, 0] and not region[2, 10, 2]


@pytest.mark.shared_data
def test_the_real_slice_keeps_its_temporal_lobe_and_drops_the_eyes():
    """On the real slice the upper temporal lobe (256 voxels around x 55, y 83) is its own piece; the eyes
    (x 28, y 44 and x 27, y 80), as bright as the brain, have no bolus."""
    signal = np.asarray(nib.load(shared_file("real_dsc", "moyamoya_cerebellum_dsc.nii.gz")).dataobj, np.float32)
    mask = compute_brain_mask(signal)[..., 0]
    assert mask[50:60, 78:88].mean() > 0.8
    assert not mask[24:33, 40:49].any() and not mask[23:32, 76:85].any()
    assert 2200 < mask.sum() < 2700
