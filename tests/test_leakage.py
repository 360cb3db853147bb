"""Leakage correction (issue #15): BSW and its bidirectional variant against curves with known leakage.

Two kinds of oracle: curves written with the model itself (K2 and k_ep must come back), and an
independent signal simulation of T1- and T2*-dominant leakage (spoiled gradient echo with the
agent's extravascular T1 and T2* effects), where the corrected CBV must return to the leak-free one.
"""

import numpy as np
import pytest

from curves import FINE_DT_S, gamma_variate, tissue_curves
from stnet_lib._validation import StnetInputError
from stnet_lib.constants import R2STAR_TISSUE_PER_MM_S
from stnet_lib.leakage import correct_leakage, fit_leakage

TR_S, N_FRAMES, TE_S = 1.5, 60, 0.030
N_NORMAL, N_TUMOUR = 200, 40


def normal_delta_r2(rng):
    """ΔR2* [1/s] of normal voxels: CBF 20–70 ml/100g/min, MTT 3–6 s (exponential residues)."""
    cbf, mtt = rng.uniform(20, 70, N_NORMAL), rng.uniform(3, 6, N_NORMAL)
    return R2STAR_TISSUE_PER_MM_S * tissue_curves(cbf, cbf * mtt / 60, tr_s=TR_S, n_frames=N_FRAMES)[1]


def running_integral_fine(curve, rate_per_s=0.0):
    """∫₀ᵗ curve(t′)·e^(−rate(t − t′)) dt′ at the frames, from the curve interpolated on a 0.05 s grid."""
    fine_t = np.arange(0, N_FRAMES * TR_S, FINE_DT_S)
    fine = np.interp(fine_t, np.arange(N_FRAMES) * TR_S, curve)
    integral = np.convolve(fine, np.exp(-rate_per_s * fine_t))[: fine_t.size] * FINE_DT_S
    return np.interp(np.arange(N_FRAMES) * TR_S, fine_t, integral)


@pytest.mark.parametrize("k2_per_s", [0.01, -0.01])
def test_bsw_recovers_k2_and_the_leak_free_curve(rng, k2_per_s):
    normal = normal_delta_r2(rng)
    reference = normal.mean(axis=0)
    k1 = rng.uniform(1.0, 2.0, N_TUMOUR)
    leak_free = k1[:, None] * reference
    curves = leak_free - k2_per_s * running_integral_fine(reference)[None, :]
    noise = rng.normal(0, 0.2, (N_NORMAL + N_TUMOUR, N_FRAMES))
    out = correct_leakage(np.concatenate([normal, curves]) + noise, TR_S)
    assert not out.reference_mask[N_NORMAL:].any() and out.reference_mask[:N_NORMAL].mean() > 0.95
    np.testing.assert_allclose(np.median(out.k2_per_s[N_NORMAL:]), k2_per_s, rtol=0.02)
    np.testing.assert_allclose(out.k2_per_s[N_NORMAL:], k2_per_s, rtol=0.15)  # per voxel, with the noise
    np.testing.assert_allclose(out.k1[N_NORMAL:], k1, rtol=0.03)
    area = np.trapezoid(out.delta_r2[N_NORMAL:], dx=TR_S, axis=-1) / np.trapezoid(leak_free, dx=TR_S, axis=-1)
    assert abs(np.median(area) - 1) < 0.01
    np.testing.assert_allclose(area, 1.0, atol=0.05)  # per voxel: the noise's share of the area, and of K2
    assert np.abs(np.median(out.k2_per_s[:N_NORMAL])) < 0.05 * abs(k2_per_s)


@pytest.mark.parametrize("k2_per_s", [0.01, -0.01])
def test_bidirectional_variant_recovers_k2_and_the_back_flux(rng, k2_per_s):
    """Leakage K2·∫ref·e^(−k_ep(t − t′)), k_ep = 0.02/s (1.2/min): the variant recovers both; BSW misses the washout.

    The median corrected CBV: 1.00002 of the leak-free value with the variant, 0.980 (K2 > 0) and 1.021
    (K2 < 0) with BSW.
    """
    normal = normal_delta_r2(rng)
    reference = normal.mean(axis=0)
    k1, kep_per_s = 1.5, 0.02
    curves = k1 * reference - k2_per_s * running_integral_fine(reference, kep_per_s)
    series = np.concatenate([normal, np.repeat(curves[None, :], N_TUMOUR, axis=0)])
    series += rng.normal(0, 0.1, series.shape)
    leak_free_area = k1 * np.trapezoid(reference, dx=TR_S)
    errors, non_leaky = {}, np.arange(N_NORMAL + N_TUMOUR) < N_NORMAL  # this mild leak needs the mask given
    for bidirectional in (True, False):
        out = correct_leakage(series, TR_S, reference_mask=non_leaky, bidirectional=bidirectional)
        area = np.trapezoid(out.delta_r2[N_NORMAL:], dx=TR_S, axis=-1) / leak_free_area
        errors[bidirectional] = abs(np.median(area) - 1)
        if bidirectional:
            np.testing.assert_allclose(np.median(out.k2_per_s[N_NORMAL:]), k2_per_s, rtol=0.05)
            np.testing.assert_allclose(np.median(out.kep_per_s[N_NORMAL:]), kep_per_s, rtol=0.10)
        else:
            assert out.kep_per_s is None
    assert errors[True] < 0.005 and errors[False] > 0.015  # measured: 0.00002 and 0.020/0.021


def spgr_delta_r2(c_iv_mm, c_ees_mm, *, r1_per_mm_s, r2_ees_per_mm_s, t1_s=1.4, flip_deg=60.0):
    """Apparent ΔR2* = −ln(S/S0)/TE of a spoiled gradient echo with intravascular and extravascular agent.

    S ∝ sin α (1 − E1)/(1 − cos α·E1)·e^(−TE·R2*), E1 = e^(−TR·R1), R1 = 1/T1 + r1·C_ees (T1 shortening by
    the leaked agent), R2* raised by r2*·C_iv (intravascular) and r2_ees·C_ees (extravascular susceptibility).
    """
    def t1_factor(r1):
        e1 = np.exp(-TR_S * r1)
        return (1 - e1) / (1 - np.cos(np.deg2rad(flip_deg)) * e1)

    ratio = t1_factor(1 / t1_s + r1_per_mm_s * c_ees_mm) / t1_factor(1 / t1_s)
    return -np.log(ratio) / TE_S + R2STAR_TISSUE_PER_MM_S * c_iv_mm + r2_ees_per_mm_s * c_ees_mm


def extravascular_concentration(ktrans_per_min):
    """C_ees = Ktrans·∫C_p [mM], C_p = C_a/(1 − Hct 0.45), with the tests' gamma-variate AIF."""
    fine_t = np.arange(0, N_FRAMES * TR_S, FINE_DT_S)
    plasma = gamma_variate(fine_t) / (1 - 0.45)
    c_ees = ktrans_per_min / 60 * np.cumsum(plasma) * FINE_DT_S
    return np.interp(np.arange(N_FRAMES) * TR_S, fine_t, c_ees)


@pytest.mark.parametrize("kind, ktrans_per_min, r1, r2_ees, k2_sign", [
    ("T1-dominant", 0.015, 4.5, 0.0, 1), ("T2*-dominant", 0.03, 0.0, 30.0, -1)])
def test_corrected_cbv_returns_to_the_leak_free_value(rng, kind, ktrans_per_min, r1, r2_ees, k2_sign):
    """Tumour CBV 8 ml/100g, MTT 4.5 s (the normal tissue's mean), Ktrans 0.015 or 0.03/min, SNR-like noise 0.3/s.

    Measured (the suite's seed): T1-dominant CBV 0.583 → 0.995 of the leak-free value (worst voxel
    2.9 % off), T2*-dominant 1.397 → 1.050 (worst 8.3 %). With a tumour MTT 1.5 s off the reference's
    the BSW model itself is off by 6–26 % (docs/decisions/0043-leakage-correction.md).
    """
    normal = normal_delta_r2(rng)
    c_iv = tissue_curves(np.full(N_TUMOUR, 60 * 8.0 / 4.5), 8.0, tr_s=TR_S, n_frames=N_FRAMES)[1]
    tumour = spgr_delta_r2(c_iv, extravascular_concentration(ktrans_per_min)[None, :], r1_per_mm_s=r1,
                           r2_ees_per_mm_s=r2_ees)
    series = np.concatenate([normal, tumour]) + rng.normal(0, 0.3, (N_NORMAL + N_TUMOUR, N_FRAMES))
    leak_free = np.trapezoid(R2STAR_TISSUE_PER_MM_S * c_iv, dx=TR_S, axis=-1)
    uncorrected = np.trapezoid(series[N_NORMAL:], dx=TR_S, axis=-1) / leak_free
    out = correct_leakage(series.reshape(N_NORMAL + N_TUMOUR, 1, 1, N_FRAMES), TR_S)
    corrected = np.trapezoid(out.delta_r2.reshape(-1, N_FRAMES)[N_NORMAL:], dx=TR_S, axis=-1) / leak_free
    assert np.all(np.abs(uncorrected - 1) > 0.2), kind
    assert np.all(np.abs(corrected - 1) < 0.1), kind
    assert np.all(np.sign(out.k2_per_s.ravel()[N_NORMAL:]) == k2_sign)
    kept = out.reference_mask.ravel()
    assert not kept[N_NORMAL:].any() and kept[:N_NORMAL].mean() > 0.9  # the automatic reference
    assert out.k2_per_s.shape == (N_NORMAL + N_TUMOUR, 1, 1)


def test_outside_the_mask_nothing_changes_and_bad_inputs_are_refused(rng):
    series = normal_delta_r2(rng)[:20].reshape(4, 5, 1, N_FRAMES)
    mask = np.zeros((4, 5, 1), bool)
    mask[:2] = True
    out = correct_leakage(series, TR_S, mask=mask)
    np.testing.assert_array_equal(out.delta_r2[~mask], series[~mask])
    assert np.isnan(out.k2_per_s[~mask]).all() and np.isfinite(out.k2_per_s[mask]).all()
    with pytest.raises(StnetInputError, match="mask shape"):
        correct_leakage(series, TR_S, mask=np.ones((4, 4, 1), bool))
    with pytest.raises(StnetInputError, match="no bolus"):
        correct_leakage(np.zeros((3, N_FRAMES)), TR_S)
    with pytest.raises(StnetInputError, match="dt_s"):
        correct_leakage(series, 0.0)


def test_the_pipelines_step_places_k2_on_the_brain_grid_and_records_the_reference(rng):
    from stnet_lib.leakage import correct_brain_curves, leakage_outputs

    normal = normal_delta_r2(rng)
    reference = normal.mean(axis=0)
    leaky = rng.uniform(1.0, 2.0, (10, 1)) * reference - 0.01 * running_integral_fine(reference)[None, :]
    curves = np.concatenate([normal, leaky])  # 210 brain voxels
    brain = np.zeros((15, 15, 1), bool)
    brain.flat[: curves.shape[0]] = True
    assert correct_brain_curves(curves, TR_S, "none") is None
    with pytest.raises(StnetInputError, match="leakage_correction"):
        correct_brain_curves(curves, TR_S, "t1")
    for method, names in (("bsw", {"k2"}), ("bidirectional", {"k2", "kep"})):
        volumes, record = leakage_outputs(correct_brain_curves(curves, TR_S, method), brain, method)
        assert set(volumes) == names and np.isnan(volumes["k2"][~brain]).all()
        k2 = volumes["k2"][brain]
        assert np.median(k2[N_NORMAL:]) == pytest.approx(0.01, rel=0.1) and abs(np.median(k2[:N_NORMAL])) < 1e-3
        assert record["method"] == method and N_NORMAL * 0.9 < record["reference_voxels"] <= N_NORMAL
        assert len(record["reference_delta_r2_per_s"]) == N_FRAMES
