"""Eq. 9, the physics loss: hand computation, numpy oracle, physics round trip."""

import math

import numpy as np
import pytest
import torch

from curves import tissue_curves
from stnet_lib.constants import K_H, RHO_G_PER_ML
from stnet_lib.network.inputs import prepare_inputs
from stnet_lib.network.physics_loss import implied_tissue_integral, stnet_loss
from stnet_lib.signal import concentration_to_delta_r2, delta_r2_to_signal


def test_loss_matches_a_hand_computation():
    parts = stnet_loss(
        torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, -1.0]]),
        cbv_ml_100g=torch.tensor([4.0, 2.0]), tissue_integral_mM_s=torch.tensor([1.0, 1.25]),
        aif_integral_mM_s=torch.tensor([50.0, 40.0]), weight=0.2, k_av=1.0, kh=0.5, rho=1.0,
    )
    # supervised: (1 + 1 + 1)/6 = 0.5; implied ∫C_t = CBV·∫C_a·ρ/(100·k_H·k_AV) = 4.0 and 1.6
    # physics: (|1 − 4| + |1.25 − 1.6|)/2 = 1.675 mM·s; total 0.5 + 0.2·1.675 = 0.835
    assert parts.supervised.item() == pytest.approx(0.5)
    assert parts.physics.item() == pytest.approx(1.675)
    assert parts.total.item() == pytest.approx(0.835)


def test_weight_zero_is_the_supervised_loss_only():
    args = dict(cbv_ml_100g=torch.tensor([4.0]), tissue_integral_mM_s=torch.tensor([9.0]),
                aif_integral_mM_s=torch.tensor([50.0]), k_av=1.0, kh=K_H, rho=RHO_G_PER_ML)
    parts = stnet_loss(torch.ones(1, 3), torch.zeros(1, 3), weight=0.0, **args)
    assert parts.total.item() == pytest.approx(1.0)
    assert parts.physics.item() > 0


def _scan(c_aif, c_tissue, te_ms, field_t=1.5):
    """Voxel 0 the artery, the others tissue; S0 = 400 (a (n+1)×1×1×T volume)."""
    delta_r2 = np.concatenate([concentration_to_delta_r2(c_aif, kind="arterial", field_t=field_t)[None],
                               concentration_to_delta_r2(c_tissue, kind="tissue", field_t=field_t)])
    signal = delta_r2_to_signal(delta_r2, 400.0, te_ms)[:, None, None, :]
    aif = np.zeros(signal.shape[:3], bool)
    aif[0] = True
    return signal, ~aif, aif


def test_tissue_integral_by_hand():
    # −ln(S/S0) = [0, 0, 0, TE·r2*·c, 0]: C_t = [0, 0, 0, c, 0] mM; trapezoid with dt 2 s → 2·c mM·s
    te_ms, c = 40.0, 0.3
    c_aif = np.array([0.0, 0.0, 0.0, 5.0, 1.0])
    signal, brain, aif = _scan(c_aif, np.array([[0.0, 0.0, 0.0, c, 0.0]]), te_ms)
    inputs = prepare_inputs(signal, brain, aif, te_ms=te_ms, tr_s=2.0, n_frames=5, dt_s=2.0)
    assert inputs.tissue_integral_mM_s[1, 0, 0] == pytest.approx(2 * c, rel=1e-5)
    assert inputs.aif_integral_mM_s == pytest.approx(11.0, rel=1e-5)  # (0 + 5)/2·2 + (5 + 1)/2·2
    assert inputs.baseline_frames == slice(0, 3)  # the frames before the arrival (frame 3)
    # concentration normalisation: C_t / C̄_a with C̄_a = ∫C_a / 8 s = 1.375 mM
    assert inputs.volume[1, 0, 0, 3] == pytest.approx(c / 1.375, rel=1e-5)
    assert inputs.aif_curve[3] == pytest.approx(5.0 / 1.375, rel=1e-5)
    ratio = prepare_inputs(signal, brain, aif, te_ms=te_ms, tr_s=2.0, n_frames=5, dt_s=2.0,
                           normalisation="signal_ratio")
    assert ratio.volume[1, 0, 0, 3] == pytest.approx(math.exp(-te_ms / 1000 * 44.0 * c), rel=1e-5)


@pytest.mark.parametrize(("te_ms", "field_t"), [(30.0, 1.5), (25.0, 3.0)])
def test_physics_term_vanishes_at_the_true_cbv(te_ms, field_t):
    # noise-free curves, a window long enough to hold the whole bolus: eq. 4 holds exactly
    cbf, cbv, tr_s = np.array([60.0, 20.0]), np.array([4.0, 3.0]), 0.5
    c_aif, c_tissue = tissue_curves(cbf, cbv, tr_s=tr_s, n_frames=400)
    signal, brain, aif = _scan(c_aif, c_tissue, te_ms, field_t)
    inputs = prepare_inputs(signal, brain, aif, te_ms=te_ms, tr_s=tr_s, n_frames=400, dt_s=tr_s, field_t=field_t)
    measured = torch.from_numpy(inputs.tissue_integral_mM_s[1:, 0, 0])
    implied = implied_tissue_integral(torch.from_numpy(cbv), torch.tensor(inputs.aif_integral_mM_s),
                                      k_av=1.0, kh=K_H, rho=RHO_G_PER_ML).float()
    # the helper's rectangle-rule convolution overestimates ∫C_t by ≈ fine_dt/(2·MTT) ≤ 0.7 %
    torch.testing.assert_close(measured, implied, rtol=1e-2, atol=0)
    assert not torch.allclose(measured, 1.1 * implied, rtol=1e-2)
    parts = stnet_loss(torch.zeros(2, 3), torch.zeros(2, 3), cbv_ml_100g=torch.from_numpy(cbv).float(),
                       tissue_integral_mM_s=measured, aif_integral_mM_s=torch.full((2,), inputs.aif_integral_mM_s),
                       weight=1.0, k_av=1.0, kh=K_H, rho=RHO_G_PER_ML)
    assert parts.physics.item() < 0.01 * measured.mean().item()


def test_vof_sets_k_av_and_scales_the_tissue_channel():
    # the AIF voxel is half arterial blood (partial volume): the VOF (whole blood) has twice its area
    te_ms, tr_s = 30.0, 1.0
    c_aif, c_tissue = tissue_curves(np.array([40.0]), np.array([4.0]), tr_s=tr_s, n_frames=80)
    signal, brain, aif = _scan(np.concatenate([0.5 * c_aif]), c_tissue, te_ms)
    vein = concentration_to_delta_r2(np.roll(c_aif, 3), kind="arterial")
    signal = np.concatenate([signal, delta_r2_to_signal(vein, 400.0, te_ms)[None, None, None]], axis=0)
    brain, aif = np.append(brain, False).reshape(-1, 1, 1), np.append(aif, False).reshape(-1, 1, 1)
    vof = np.zeros_like(aif)
    vof[-1] = True
    grid = dict(te_ms=te_ms, tr_s=tr_s, n_frames=80, dt_s=tr_s)
    plain = prepare_inputs(signal, brain, aif, **grid)
    corrected = prepare_inputs(signal, brain, aif, vof_mask=vof, **grid)
    assert plain.k_av == 1.0
    assert corrected.k_av == pytest.approx(0.5, rel=0.02)  # eq. 8: ∫C_a/∫C_v
    np.testing.assert_allclose(corrected.volume[1], plain.volume[1] * corrected.k_av, rtol=1e-5)
    np.testing.assert_allclose(corrected.aif_curve, plain.aif_curve)


def test_a_network_without_cbv_has_no_physics_term():
    # oracle: the mean absolute error of the standardised outputs, in numpy
    rng = np.random.default_rng(4)
    predicted, target = rng.normal(size=(5, 1)), rng.normal(size=(5, 1))
    args = dict(tissue_integral_mM_s=torch.full((5,), 9.0), aif_integral_mM_s=torch.full((5,), 50.0), k_av=1.0,
                kh=K_H, rho=RHO_G_PER_ML)
    parts = stnet_loss(torch.from_numpy(predicted), torch.from_numpy(target), cbv_ml_100g=None, weight=0.0, **args)
    expected = np.abs(predicted - target).mean()
    assert parts.total.item() == pytest.approx(expected, rel=1e-6)
    assert parts.supervised.item() == pytest.approx(expected, rel=1e-6) and parts.physics.item() == 0.0
    with pytest.raises(ValueError, match="weight must be 0 for a network without a CBV output"):
        stnet_loss(torch.from_numpy(predicted), torch.from_numpy(target), cbv_ml_100g=None, weight=0.1, **args)


@pytest.mark.parametrize("normalisation", ["concentration", "signal_ratio"])
def test_the_torch_path_gives_the_numpy_paths_inputs(normalisation):
    """``prepare_inputs(device=...)`` (inference on a GPU) against the numpy path (training):
    a noisy multi-voxel series with a VOF, resampled from TR 1.5 s onto 1.2 s, one voxel with S0 ≤ 0."""
    rng = np.random.default_rng(4)
    te_ms, tr_s = 30.0, 1.5
    c_aif, c_tissue = tissue_curves(rng.uniform(20, 70, 22), rng.uniform(2, 5, 22), delay_s=1.0, tr_s=tr_s,
                                    n_frames=60)
    signal, brain, aif = _scan(0.6 * c_aif, c_tissue, te_ms)
    vein = concentration_to_delta_r2(np.roll(c_aif, 3), kind="arterial")
    signal = np.concatenate([signal, delta_r2_to_signal(vein, 400.0, te_ms)[None, None, None]], axis=0)
    signal = (signal * rng.normal(1.0, 0.02, signal.shape)).reshape(4, 6, 1, -1)
    signal[3, 4] = 0.0  # a voxel without signal
    brain = np.append(brain, False).reshape(4, 6, 1)
    aif = np.append(aif, False).reshape(4, 6, 1)
    vof = np.zeros_like(aif)
    vof[3, 5] = True
    grid = dict(te_ms=te_ms, tr_s=tr_s, n_frames=60, dt_s=1.2, vof_mask=vof, normalisation=normalisation)
    reference = prepare_inputs(signal, brain, aif, **grid)
    on_torch = prepare_inputs(signal, brain, aif, device="cpu", **grid)
    assert isinstance(on_torch.volume, torch.Tensor) and isinstance(reference.volume, np.ndarray)
    np.testing.assert_allclose(on_torch.volume.numpy(), reference.volume, rtol=1e-6, atol=1e-7)
    for name in ("baseline", "aif_curve", "tissue_integral_mM_s"):
        np.testing.assert_allclose(getattr(on_torch, name), getattr(reference, name), rtol=1e-6, atol=1e-7,
                                   err_msg=name)
    assert (on_torch.aif_integral_mM_s, on_torch.k_av, on_torch.baseline_frames) == pytest.approx(
        (reference.aif_integral_mM_s, reference.k_av, reference.baseline_frames))
    assert reference.k_av != 1.0 and np.abs(reference.volume).max() > 0
