"""Eq. 4–8 against hand computations."""

import numpy as np
import pytest

from stnet_lib._validation import StnetInputError
from stnet_lib.constants import K_H, RHO_G_PER_ML
from stnet_lib.maps import PerfusionMaps, cbf_eq5, cbv_eq4, k_av_eq8, mtt_eq6, tmax_eq7


def test_cbv_eq4_by_hand():
    c_aif = np.array([0.0, 2.0, 4.0, 2.0, 0.0])  # trapezoid area 8·dt
    c_tissue = np.array([0.0, 0.1, 0.2, 0.1, 0.0])  # area 0.4·dt
    assert cbv_eq4(c_tissue, c_aif, 1.5, kh=1, rho=1) == pytest.approx(100 * 0.4 / 8)
    assert cbv_eq4(c_tissue, c_aif, 1.5) == pytest.approx(100 * 0.7333333 / 1.04 * 0.05, rel=1e-6)
    assert cbv_eq4(c_tissue, c_aif, 1.5, k_av=2.0, kh=1, rho=1) == pytest.approx(10.0)


def test_cbf_eq5_and_mtt_eq6_by_hand():
    # a flow-scaled residue peak of 0.01/s is F = (kh/rho)·0.01 ml/g/s = 6000·(kh/rho)·0.01 ml/100g/min
    assert cbf_eq5(0.01) == pytest.approx(60.0 * K_H / RHO_G_PER_ML)
    assert cbf_eq5(0.01, kh=1, rho=1) == pytest.approx(60.0)
    np.testing.assert_allclose(mtt_eq6(np.array([4.0, 2.0]), np.array([60.0, 0.0])), [4.0, np.nan])


def test_tmax_eq7_with_and_without_wrap():
    residue = np.zeros((3, 10))
    residue[0, 3] = 1.0
    residue[1, 8] = 1.0  # second half of a circulant period: a negative delay of −2 frames → −3 s
    residue[2, 4] = 1.0
    residue[2, 5] = -3.0  # a negative value does not win the argmax
    # parabola through (0, 1, −3) around sample 4: vertex at 4 + ½·(0 + 3)/(0 − 2 − 3) = 3.7 samples
    np.testing.assert_allclose(tmax_eq7(residue, 1.5, wrap=True), [4.5, -3.0, 3.7 * 1.5])
    np.testing.assert_allclose(tmax_eq7(residue, 1.5, wrap=False), [4.5, 12.0, 3.7 * 1.5])
    np.testing.assert_allclose(tmax_eq7(residue, 1.5, wrap=True, peak="sample"), [4.5, -3.0, 6.0])


def test_k_av_eq8():
    assert k_av_eq8(np.array([0, 1.0, 0]), np.array([0, 2.0, 0]), 1.0) == pytest.approx(0.5)
    with pytest.raises(StnetInputError, match="VOF mask shows no bolus"):
        k_av_eq8(np.ones(3), np.zeros(3), 1.0)


def test_scatter_puts_nan_outside_the_mask():
    maps = PerfusionMaps(np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([5.0, 6.0]), np.array([0.0, 1.0]), "x")
    mask = np.array([[True, False], [False, True]])
    volume = maps.scatter(mask)
    assert volume.cbv[0, 0] == 1.0 and volume.cbv[1, 1] == 2.0
    assert np.isnan(volume.cbf[0, 1]) and np.isnan(volume.tmax[1, 0])
