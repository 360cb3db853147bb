"""The synthetic subject: forward model, Tmax truth, round trip through the deconvolution, recipe ranges.

Oracles: a brute-force per-voxel convolution on a 5 ms grid (independent of the kernel tables),
the closed form of argmax(h ⊗ R) for exponential residue and dispersion (simulation_recipe.md
§3.3), the library's own inverse (eq. 1–2) and deconvolution (eq. 3–7), and the recipe's ranges.
"""

import numpy as np
import pytest
from scipy.signal import fftconvolve

from stnet_lib.constants import K_H, RHO_G_PER_ML
from stnet_lib.deconvolution import deconvolve
from stnet_lib.signal import delta_r2_to_concentration, signal_to_delta_r2
from stnet_lib.simulation import vascular
from stnet_lib.simulation.anatomy import MNI_NOTICE, draw_pose, make_anatomy
from stnet_lib.simulation.realism import Realism
from stnet_lib.simulation.render import arterial_parameters
from stnet_lib.simulation.statistics import RECIPE_RANGES, subject_statistics
from stnet_lib.simulation.subject import SubjectConfig, make_subject

SMALL = {"shape": (40, 40, 4), "voxel_mm": (5.6, 5.6, 15.0)}


@pytest.fixture(scope="module")
def clean_subject():
    """A noise-free subject with a lesion and every realism feature (module-wide: ~0.5 s)."""
    return make_subject(SubjectConfig(**SMALL, noise=False), np.random.default_rng(2))


@pytest.fixture(scope="module")
def plain_subject():
    """The same without the realism features: its signal is eq. 1–2 of its tissue curves."""
    return make_subject(SubjectConfig(**SMALL, noise=False, realism=Realism.none()), np.random.default_rng(2))


def test_residues_start_at_one_and_integrate_to_mtt():
    time_s = (np.arange(40000) + 0.5) * 0.01
    for shape in vascular.RESIDUE_SHAPES:
        curve = vascular.residue(shape, time_s, 7.0)
        assert curve[0] == pytest.approx(1.0, abs=2e-3), shape
        assert curve.sum() * 0.01 == pytest.approx(7.0, rel=1e-4), shape
        assert np.all(np.diff(curve) <= 1e-12), shape
    with pytest.raises(ValueError, match="shape must be one of"):
        vascular.residue("box", time_s, 4.0)


def test_peak_time_table_matches_the_closed_form_for_exponential_residue_and_dispersion():
    rng = np.random.default_rng(0)
    mtt, tau = rng.uniform(2.0, 60.0, 500), rng.uniform(0.3, 6.0, 500)
    expected = vascular.tmax_exponential_closed_form(mtt, tau)
    got = vascular.residue_peak_time_s(np.zeros(500, int), mtt, tau)
    np.testing.assert_allclose(got, expected, atol=0.02)
    # recipe §3.3 table: MTT 12 s, 1/β_d = 1.5, 3.0, 4.5 s → Tmax − δ = 3.55, 5.54, 7.05 s (the
    # recipe rounds down: ln 8/(2/3 − 1/12) = 3.565 s)
    np.testing.assert_allclose(vascular.tmax_exponential_closed_form(12.0, [1.5, 3.0, 4.5]), [3.55, 5.54, 7.05], atol=0.02)
    assert vascular.residue_peak_time_s(np.array([3]), np.array([5.0]), np.array([0.0]))[0] == 0.0


def test_subject_tmax_truth_is_delay_plus_closed_form_for_exponential_voxels(clean_subject):
    brain = clean_subject.masks["brain"]
    truth = {k: clean_subject.truth[k][brain] for k in ("tmax", "delay", "mtt", "dispersion", "residue_shape")}
    exponential = truth["residue_shape"] == 0
    expected = truth["delay"] + vascular.tmax_exponential_closed_form(truth["mtt"], truth["dispersion"])
    assert exponential.sum() > 100 and (truth["dispersion"][exponential] > 1.0).sum() > 10
    np.testing.assert_allclose(truth["tmax"][exponential], expected[exponential], atol=0.05)


def test_tissue_curves_match_a_brute_force_convolution(clean_subject):
    """C_t = (ρ/k_H)·CBF·[C_a ⊗ h ⊗ R](t − δ), recomputed per voxel on a 5 ms grid (recipe §3.2), with
    the arterial plateau, late recirculation and white-matter disease of the realism features."""
    s, acq = clean_subject, clean_subject.params["acquisition"]
    dt = 0.005
    time_s = np.arange(0.0, s.tr_s * 50 + 1.0, dt)
    c_aif = vascular.arterial_input(time_s, **arterial_parameters(acq, s.params["realism"]))
    np.testing.assert_allclose(np.interp(s.time_s, time_s, c_aif), s.c_aif, atol=2e-3 * s.c_aif.max())
    brain = s.masks["brain"]
    maps = {k: s.truth[k][brain] for k in ("cbf", "mtt", "delay", "dispersion", "residue_shape")}
    lesion = np.flatnonzero(s.masks["lesion"][brain])
    voxels = np.concatenate([np.random.default_rng(1).choice(brain.sum(), 12, replace=False), lesion[:4]])
    for i in voxels:
        kernel = vascular.residue(vascular.RESIDUE_SHAPES[int(maps["residue_shape"][i])], time_s, maps["mtt"][i])
        if maps["dispersion"][i] > 0:
            h = np.exp(-time_s / maps["dispersion"][i])
            kernel = fftconvolve(h / h.sum(), kernel)[: time_s.size]
        curve = fftconvolve(c_aif, kernel)[: time_s.size] * dt * RHO_G_PER_ML / K_H * maps["cbf"][i] / 6000.0
        expected = np.interp(s.time_s - maps["delay"][i], time_s, curve, left=0.0)
        np.testing.assert_allclose(s.c_tissue[i], expected, atol=5e-3 * expected.max())


def test_noise_free_round_trip_through_signal_and_deconvolution(plain_subject):
    """Eq. 1–2 inverse recovers C_t; cSVD/oSVD recover the truth up to the sampling bias at TR ≈ 1.5 s.

    The deconvolution works on the TR grid (rectangle rule) while the truth is continuous: an
    exponential residue sampled every 1.2–1.9 s loses part of its peak, so noise-free CBF comes
    out 8–22 % low across subjects (Østergaard 1996); the thresholds are noise-free ones (0.1 %).
    ``test_round_trip_converges_with_finer_sampling`` shows the bias is the sampling's.
    """
    s = plain_subject
    brain = s.masks["brain"]
    n_base = s.params["n_baseline_frames"]
    delta_r2 = signal_to_delta_r2(s.signal[brain].astype(np.float64), s.te_ms, baseline=slice(0, n_base - 1))
    c_tissue = delta_r2_to_concentration(delta_r2.delta_r2_per_s, kind="tissue", field_t=s.field_t)
    np.testing.assert_allclose(c_tissue, s.c_tissue, atol=1e-5)
    still = s.truth["dispersion"][brain] == 0
    assert still.sum() > 200
    for method, options in (("csvd", {"threshold": 1e-3}), ("osvd", {"thresholds": (1e-3, 0.01, 0.05)})):
        maps = deconvolve(c_tissue, s.c_aif, s.tr_s, method, **options)
        cbv_error = maps.cbv / s.truth["cbv"][brain] - 1
        cbf_error = maps.cbf[still] / s.truth["cbf"][brain][still] - 1
        tmax_error = np.abs(maps.tmax[still] - s.truth["tmax"][brain][still])
        assert np.median(np.abs(cbv_error)) < 0.05, method
        assert -0.3 < np.median(cbf_error) < 0.05, method
        assert np.median(tmax_error) <= s.tr_s, method


def test_round_trip_converges_with_finer_sampling():
    """At TR = 0.5 s (180 frames), noise-free sSVD recovers CBF within 15 % (median, no dispersion)."""
    s = make_subject(SubjectConfig(**SMALL, noise=False, tr_s=0.5, n_frames=180), np.random.default_rng(0))
    brain = s.masks["brain"]
    still = s.truth["dispersion"][brain] == 0
    maps = deconvolve(s.c_tissue.astype(np.float64), s.c_aif, s.tr_s, "ssvd", threshold=1e-4)
    assert abs(np.median(maps.cbf[still] / s.truth["cbf"][brain][still] - 1)) < 0.15
    assert np.median(np.abs(maps.cbv / s.truth["cbv"][brain] - 1)) < 0.05


def test_truth_is_consistent_and_masks_follow_from_it(clean_subject):
    s = clean_subject
    brain = s.masks["brain"]
    np.testing.assert_allclose(s.truth["mtt"][brain], 60 * s.truth["cbv"][brain] / s.truth["cbf"][brain], rtol=1e-5)
    assert np.isnan(s.truth["cbf"][~brain]).all() and np.isfinite(s.truth["cbf"][brain]).all()
    np.testing.assert_array_equal(s.masks["lesion"], brain & (np.nan_to_num(s.truth["tmax"]) > 6.0))
    assert s.masks["core"].sum() > 0 and not (s.masks["aif"] & brain).any() and not (s.masks["vof"] & brain).any()
    assert (s.masks["core"] & ~s.masks["lesion"]).sum() == 0  # core ⊂ Tmax > 6 s in this lesion model
    assert s.params["mni_notice"] == MNI_NOTICE and "Louis Collins" in MNI_NOTICE


def test_noise_free_and_noisy_subjects_share_everything_but_the_noise():
    config = SubjectConfig(shape=(24, 24, 3), voxel_mm=(9.0, 9.0, 20.0))
    noisy = make_subject(config, np.random.default_rng(5))
    clean = make_subject(SubjectConfig(**{**config.__dict__, "noise": False}), np.random.default_rng(5))
    np.testing.assert_array_equal(noisy.truth["tmax"], clean.truth["tmax"])
    brain = noisy.masks["brain"]
    residual = (noisy.signal - clean.signal)[brain][:, :3]
    sigma = noisy.params["noise_sigma"]
    assert 0.7 * sigma < residual.std() < 1.3 * sigma


def test_anatomy_volumes_follow_the_template():
    """GM/WM volume of a whole-brain grid equals the template's (Σp: 1008 and 670 ml, recipe §6)."""
    pose = {"angles_deg": [4.0, -3.0, 7.0], "scale": [1.0, 1.0, 1.0], "shift_mm": [0.0, 0.0], "slab_centre_z_mm": 18.0}
    anatomy = make_anatomy((60, 72, 50), (3.5, 3.5, 4.0), pose)
    voxel_ml = 3.5 * 3.5 * 4.0 / 1000
    assert anatomy.pgm.sum() * voxel_ml == pytest.approx(1008, rel=0.02)
    assert anatomy.pwm.sum() * voxel_ml == pytest.approx(670, rel=0.02)
    assert (anatomy.pgm + anatomy.pwm + anatomy.pcsf).max() <= 1.0 + 1e-6
    scaled = draw_pose(np.random.default_rng(0), (5.0, 35.0))
    assert all(0.85 <= v <= 1.15 for v in scaled["scale"]) and all(abs(a) <= 10 for a in scaled["angles_deg"])


def test_subject_statistics_land_in_the_recipe_ranges():
    """GM/WM CBF and CBV, GM drop at the bolus peak, SNR measured on the baseline vs requested (§4.1, §1.4, §5)."""
    rows = []
    for seed in range(4):
        subject = make_subject(SubjectConfig(shape=(48, 48, 6), voxel_mm=(4.8, 4.8, 12.0)), np.random.default_rng(seed))
        rows.append({**subject_statistics(subject), "snr": subject.snr})
    for row in rows:
        for key in ("gm_cbf", "gm_cbv", "wm_cbf", "wm_cbv", "gm_mtt_s", "gm_drop"):
            low, high = RECIPE_RANGES[key]
            assert low <= row[key] <= high, (key, row[key])
        assert row["snr_measured"] == pytest.approx(row["snr"], rel=0.1)
        assert row["tmax_healthy_p99_s"] < 6.0


def test_wide_mtt_subjects_spread_mtt_independently_of_cbv():
    """A wide-MTT training subject (decision 0077) covers OSIPI's MTT range (2–25 s) with CBV left
    physiological and MTT decorrelated from it; the physiological rule keeps MTT within 2–12 s and
    CBV and CBF correlated. Both subjects share every other draw."""
    normal = make_subject(SubjectConfig(**SMALL, noise=False, has_lesion=False), np.random.default_rng(4))
    wide = make_subject(SubjectConfig(**SMALL, noise=False, has_lesion=False, mtt_range_s=(2.0, 25.0)),
                        np.random.default_rng(4))
    brain = normal.masks["brain"]
    assert np.array_equal(brain, wide.masks["brain"])
    mtt_n, mtt_w = normal.truth["mtt"][brain], wide.truth["mtt"][brain]
    assert 2.0 <= np.percentile(mtt_n, 1) and np.percentile(mtt_n, 99) <= 12.0
    low, high = np.percentile(mtt_w, [5, 95])
    assert low < 3.0 and high > 15.0 and mtt_w.min() >= 2.0 - 1e-6 and mtt_w.max() <= 25.0 + 1e-6
    cbv_w, cbf_w = wide.truth["cbv"][brain], wide.truth["cbf"][brain]
    np.testing.assert_allclose(mtt_w, 60.0 * cbv_w / cbf_w, rtol=1e-4)  # central volume theorem kept
    assert abs(np.corrcoef(np.log(cbv_w), np.log(mtt_w))[0, 1]) < 0.3
    assert np.corrcoef(normal.truth["cbv"][brain], normal.truth["cbf"][brain])[0, 1] > 0.6
    assert 1.0 < np.median(cbv_w) < 6.0  # CBV stays a tissue's
    np.testing.assert_array_equal(normal.truth["delay"][brain], wide.truth["delay"][brain])
