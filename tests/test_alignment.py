"""The arterial-curve alignment of ST-Net's inference (``network/alignment.py``, decision 0079).

Oracles: a curve with a known half-maximum crossing (a gamma variate, its crossing solved by scipy's
root finder on the continuous function), tissue curves that are the arterial curve delayed by a known
number of frames, and the time-shift identity that makes the alignment exact: with C_t = C_a ⊗ R,
an arterial curve advanced by k frames deconvolves to the residue delayed by k frames.
"""

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from stnet_lib.network.alignment import (MIN_FRAMES_BEFORE_RISE, advance_curve, alignment_frames, arrival_lag_s,
                                         arrival_reference, half_max_rise_s, held_tail_frames)

DT_S = 1.2


def _gamma(t, t0=12.0, alpha=3.0, beta=1.5):
    x = np.clip(t - t0, 0.0, None)
    return x**alpha * np.exp(-x / beta)


def test_the_half_maximum_rise_is_the_gamma_variates_own():
    fine = np.arange(0, 60, 0.05)
    peak = _gamma(fine).max()
    truth = brentq(lambda t: _gamma(t) - 0.5 * peak, 12.0, 12.0 + 3.0 * 1.5)  # the rise, before the mode αβ
    # sampled finely, the interpolated crossing is the continuous one; at the network's 1.2 s, within a
    # tenth of a frame (the sampled peak is lower than the true one)
    assert half_max_rise_s(_gamma(fine), 0.05) == pytest.approx(truth, abs=0.01)
    assert half_max_rise_s(_gamma(np.arange(50) * DT_S), DT_S) == pytest.approx(truth, abs=0.12)


def test_the_lag_is_the_tissues_delay_whatever_the_scales():
    aif = _gamma(np.arange(50) * DT_S).astype(np.float32)
    volume = np.zeros((4, 4, 2, 50), np.float32)
    brain = np.zeros((4, 4, 2), bool)
    brain[1:3, 1:3] = True
    volume[brain] = 0.07 * np.concatenate([np.zeros(3), aif[:-3]])  # the tissue: the AIF three frames later, scaled
    assert arrival_lag_s(volume, brain, aif, DT_S) == pytest.approx(3 * DT_S, abs=1e-6)
    assert arrival_lag_s(volume, brain, 40.0 * aif, DT_S) == pytest.approx(3 * DT_S, abs=1e-6)


def test_advancing_the_aif_delays_the_residue_by_as_much():
    """The identity the alignment rests on, on the discrete convolution the deconvolution methods invert."""
    aif = _gamma(np.arange(50) * DT_S)
    residue = np.exp(-np.arange(50) * DT_S / 4.0)
    tissue = np.convolve(aif, residue)[:50] * DT_S
    advanced = advance_curve(aif, 2)
    delayed = np.concatenate([np.zeros(2), residue[:-2]])
    # the same tissue from the advanced AIF and the delayed residue, up to the held tail (after the bolus)
    np.testing.assert_allclose(np.convolve(advanced, delayed)[:48] * DT_S, tissue[:48], rtol=1e-10, atol=1e-12)
    assert np.argmax(delayed) - np.argmax(residue) == 2  # Tmax up by two frames, peak and area alike
    np.testing.assert_array_equal(advanced[-3:], aif[-1])


def test_the_aif_moves_only_earlier_only_short_of_the_median_and_keeps_its_rise():
    aif = _gamma(np.arange(50) * DT_S)  # its half-maximum rise near 14.2 s: 11 whole frames before it
    reference = arrival_reference([2.0, 3.0, 5.0])
    assert reference["lag_median_s"] == 3.0 and reference["n_subjects"] == 3
    assert alignment_frames(0.6, None, aif, DT_S) == 0  # a checkpoint without a reference
    assert alignment_frames(3.0, reference, aif, DT_S) == 0
    assert alignment_frames(6.0, reference, aif, DT_S) == 0  # never later
    assert alignment_frames(0.6, reference, aif, DT_S) == 2  # 2.4 s short: two frames
    room = int(half_max_rise_s(aif, DT_S) // DT_S) - MIN_FRAMES_BEFORE_RISE
    assert alignment_frames(-30.0, reference, aif, DT_S) == room == 8


def test_curves_without_a_rise_have_no_lag_and_move_nothing():
    aif = _gamma(np.arange(50) * DT_S)
    assert np.isnan(half_max_rise_s(np.full(50, np.nan), DT_S)) and np.isnan(half_max_rise_s(-aif, DT_S))
    reference = arrival_reference([2.0, np.nan, 4.0])  # a subject without a lag is left out
    assert reference["n_subjects"] == 2 and reference["lag_median_s"] == 3.0
    assert arrival_reference([np.nan]) is None
    assert alignment_frames(float("nan"), reference, aif, DT_S) == 0
    assert alignment_frames(0.6, reference, aif, DT_S, max_frames=1) == 1  # the tail training held
    assert held_tail_frames({"aif_shift_frames": 2, "time_shift_frames": 3}) == 5 and held_tail_frames(None) is None


def test_the_lag_of_a_tensor_volume_is_the_arrays():
    rng = np.random.default_rng(0)
    aif = _gamma(np.arange(50) * DT_S).astype(np.float32)
    volume = np.zeros((5, 4, 2, 50), np.float32)
    brain = rng.uniform(size=(5, 4, 2)) > 0.3
    volume[brain] = np.concatenate([np.zeros(2), aif[:-2]]) * rng.uniform(0.02, 0.08, (brain.sum(), 1))
    assert arrival_lag_s(torch.from_numpy(volume), brain, aif, DT_S) == pytest.approx(
        arrival_lag_s(volume, brain, aif, DT_S), abs=1e-9)
