"""Eq. 1–2: signal ↔ ΔR2* ↔ concentration, baseline detection, bad input."""

import numpy as np
import pytest
import torch

from curves import gamma_variate
from stnet_lib._validation import StnetInputError
from stnet_lib.constants import relaxivities
from stnet_lib.signal import (
    arterial_baseline,
    concentration_to_delta_r2,
    count_non_steady_frames,
    delta_r2_to_concentration,
    delta_r2_to_signal,
    detect_baseline,
    signal_to_delta_r2,
)

TIME_S = np.arange(50) * 1.5


def test_eq1_inverts_the_signal_model():
    delta_r2 = gamma_variate(TIME_S, t0_s=15.0, peak_mM=1.0) * 20.0  # 1/s
    signal = delta_r2_to_signal(delta_r2, 800.0, 30.0)
    result = signal_to_delta_r2(signal, 30.0, baseline=slice(0, 8))
    np.testing.assert_allclose(result.delta_r2_per_s, delta_r2, atol=1e-12)
    assert result.s0 == pytest.approx(800.0)
    # by hand: S = S0·exp(−TE·ΔR2*) with TE = 0.03 s
    assert signal[20] == pytest.approx(800.0 * np.exp(-0.030 * delta_r2[20]))


@pytest.mark.parametrize("field_t", [1.5, 3.0])
def test_eq2_arterial_quadratic_round_trip(field_t):
    c = np.linspace(-0.5, 12.0, 40)
    delta_r2 = concentration_to_delta_r2(c, kind="arterial", field_t=field_t)
    rel = relaxivities(field_t)
    positive = c > 0
    np.testing.assert_allclose(delta_r2[positive], rel["arterial_a"] * c[positive] + rel["arterial_b"] * c[positive] ** 2)
    np.testing.assert_allclose(delta_r2_to_concentration(delta_r2, kind="arterial", field_t=field_t), c, atol=1e-12)


def test_eq2_tissue_is_linear():
    np.testing.assert_allclose(delta_r2_to_concentration(np.array([44.0, 88.0])), [1.0, 2.0])
    np.testing.assert_allclose(delta_r2_to_concentration(np.array([87.0]), field_t=3.0), [87.0 / 88.0])


def test_baseline_detection_skips_a_non_steady_first_frame_and_stops_before_arrival(rng):
    curve = 1000.0 - 400.0 * gamma_variate(TIME_S, t0_s=15.0, peak_mM=1.0)  # arrival after frame 10
    signal = curve + rng.normal(0, 5.0, (30, TIME_S.size))
    signal[:, 0] += 300.0  # first frame not at steady state
    found = detect_baseline(signal)
    assert found.start == 1
    assert 6 <= found.stop <= 11
    assert np.all(gamma_variate(TIME_S, t0_s=15.0)[: found.stop] < 0.01)


def test_zero_and_negative_signal_give_finite_values_and_are_counted():
    signal = np.full((3, 20), 100.0)
    signal[0, 10] = 0.0
    signal[1, 11] = -5.0
    signal[2] = 0.0  # background voxel: S0 = 0
    result = signal_to_delta_r2(signal, 30.0, baseline=slice(0, 5))
    assert np.isfinite(result.delta_r2_per_s).all()
    assert result.n_clipped == 2 + 20
    assert np.all(result.delta_r2_per_s[2] == 0)


def test_bad_te_and_too_short_a_baseline_are_refused():
    with pytest.raises(StnetInputError, match="te_ms must be a positive number"):
        signal_to_delta_r2(np.ones((2, 10)), 0.0, baseline=slice(0, 3))
    early_bolus = 100.0 - 50.0 * gamma_variate(np.arange(20.0), t0_s=0.0, peak_mM=1.0)
    with pytest.raises(StnetInputError, match="before the bolus arrives"):
        detect_baseline(early_bolus[None, :])


def test_eq1_and_eq2_take_torch_tensors_and_agree_with_numpy():
    """The same functions run on tensors (whole-brain inference on a GPU): float64 tensors back, same values."""
    rng = np.random.default_rng(8)
    signal = 400 * np.exp(-rng.uniform(0, 1.5, (50, 30)))
    signal[:, :5] = 400.0
    signal[3] = 0.0  # S0 ≤ 0: zeros, counted
    signal[4, 12] = -2.0  # below the floor
    ours = signal_to_delta_r2(torch.from_numpy(signal), 30.0, baseline=slice(0, 5))
    reference = signal_to_delta_r2(signal, 30.0, baseline=slice(0, 5))
    assert isinstance(ours.delta_r2_per_s, torch.Tensor) and ours.delta_r2_per_s.dtype == torch.float64
    np.testing.assert_allclose(ours.delta_r2_per_s.numpy(), reference.delta_r2_per_s, rtol=1e-12)
    np.testing.assert_allclose(ours.s0.numpy(), reference.s0, rtol=1e-12)
    assert ours.n_clipped == reference.n_clipped > 0
    for kind in ("tissue", "arterial"):
        np.testing.assert_allclose(
            delta_r2_to_concentration(torch.from_numpy(reference.delta_r2_per_s), kind=kind, field_t=3.0).numpy(),
            delta_r2_to_concentration(reference.delta_r2_per_s, kind=kind, field_t=3.0), rtol=1e-12)


def test_non_steady_frames_are_counted_as_they_approach_steady_state(rng):
    """T1 saturation: 1.25, 1.09, 1.033 × S0, then steady; a flat curve has none; at most three are counted."""
    curve = 1000.0 - 400.0 * gamma_variate(TIME_S, t0_s=15.0, peak_mM=1.0) + rng.normal(0, 0.5, TIME_S.size)
    assert count_non_steady_frames(curve) == 0
    decaying = curve.copy()
    decaying[:3] *= [1.25, 1.09, 1.033]
    assert count_non_steady_frames(decaying) == 3
    assert detect_baseline(decaying[None]).start == 3
    early = np.full(20, 1000.0)
    early[0], early[4:8] = 1100.0, 600.0  # a non-steady frame, then a bolus among the next frames' next frames
    assert count_non_steady_frames(early) == 1
    assert count_non_steady_frames(np.r_[[1500.0] * 5, np.full(20, 1000.0)]) == 0  # bright plateau: not a decay
    assert count_non_steady_frames(np.r_[[1800.0, 1600.0, 1400.0, 1200.0], np.full(20, 1000.0)]) == 3


def test_arterial_baseline_is_one_rule_robust_to_noise(rng):
    """Cut at the first frame 10 % (and 3 robust SDs) below the baseline median, never after the brain's
    baseline, never shorter than two frames; with ±4 % noise a 15 % dip is within 3 robust SDs."""
    curve = 1000.0 + 40.0 * (-1.0) ** np.arange(30)  # MAD 40: 3 robust SDs = 178 > 10 % of 1000
    curve[10:15] = [850.0, 500.0, 150.0, 300.0, 700.0]
    assert arterial_baseline(curve, slice(0, 12)) == slice(0, 10)  # arrival at 11, not at the 15 % dip of frame 10
    assert arterial_baseline(np.where(np.arange(30) < 10, 1000.0, curve), slice(0, 12)) == slice(0, 9)
    clean = np.full(30, 1000.0)
    clean[7:12] = [950.0, 600.0, 200.0, 300.0, 700.0]
    assert arterial_baseline(clean, slice(1, 9)) == slice(1, 7)
    assert arterial_baseline(clean, slice(1, 5)) == slice(1, 5)
    assert arterial_baseline(clean, slice(6, 20)) == slice(6, 8)  # the bolus at once: two frames are kept
