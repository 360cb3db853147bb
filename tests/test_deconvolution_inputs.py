"""``deconvolve`` refuses a mask of the wrong shape at once, in one line, before any deconvolution."""

import dataclasses

import numpy as np
import pytest

from stnet_lib import deconvolution
from stnet_lib._validation import StnetInputError
from stnet_lib.deconvolution import METHODS, deconvolve

SHAPE, N_FRAMES = (6, 5, 2), 20


def _curves(rng):
    c_aif = np.exp(-((np.arange(N_FRAMES) - 5.0) ** 2) / 4.0) * 5.0
    return rng.uniform(0.0, 0.5, SHAPE + (N_FRAMES,)), c_aif


@pytest.mark.parametrize("method", ["ssvd", "osvd", "ttv"])
@pytest.mark.parametrize("mask_shape", [(6, 5), (5, 6, 2), (6, 5, 2, 1), (6, 5, 2, N_FRAMES)])
def test_a_mask_of_another_shape_is_refused_before_any_work(rng, monkeypatch, method, mask_shape):
    c_tissue, c_aif = _curves(rng)
    calls = []
    spec = METHODS[method]
    monkeypatch.setitem(deconvolution.METHODS, method, dataclasses.replace(
        spec, residues=lambda *args, **kwargs: calls.append(args) or spec.residues(*args, **kwargs)))
    with pytest.raises(StnetInputError, match=r"^the mask has shape \(.*\); expected \(6, 5, 2\), the tissue curves' "
                                              r"shape without the time axis: pass a mask on the same grid$") as error:
        deconvolve(c_tissue, c_aif, 1.0, method, mask=np.ones(mask_shape, bool))
    assert "\n" not in str(error.value) and str(mask_shape) in str(error.value)
    assert calls == []


def test_a_mask_of_the_right_shape_selects_the_voxels(rng):
    c_tissue, c_aif = _curves(rng)
    mask = np.zeros(SHAPE, bool)
    mask[1:4, 2:, 1] = True
    maps = deconvolve(c_tissue, c_aif, 1.0, "csvd", mask=mask)
    assert np.isfinite(maps.cbf[mask]).all() and np.isnan(maps.cbf[~mask]).all()
    whole = deconvolve(c_tissue, c_aif, 1.0, "csvd")
    np.testing.assert_allclose(maps.cbf[mask], whole.cbf[mask])
