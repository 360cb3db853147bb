"""The realism features of the synthetic cohort (issue #16, docs/decisions/0040-realistic-synthetic-cohort.md).

Each statistic of issue #16's realism table, measured by one function
(:func:`stnet_lib.experiments.realism.realism_statistics`) as on a clinical scan (brain mask and
AIF found from the series), lands in its range with the features on and keeps the value of the
simulator before issue #16 with them off. Oracles: the drawn values, brute-force convolutions at
each slice's acquisition times, the two-compartment signal equation, the autocorrelation of the
3-tap noise kernel, the volume of a straight tube, the library's own non-steady-frame detector
and sidecar reader, and the real slice of ../shared/data.
"""

import dataclasses

import numpy as np
import pytest
from scipy.signal import fftconvolve

from conftest import shared_file
from stnet_lib.constants import K_H, RHO_G_PER_ML
from stnet_lib.experiments.realism import _curve_statistics, realism_statistics, scan_realism
from stnet_lib.io import load_scan
from stnet_lib.masking import compute_brain_mask
from stnet_lib.signal import count_non_steady_frames, delta_r2_to_concentration, signal_to_delta_r2
from stnet_lib.simulation import vascular
from stnet_lib.simulation.cohort import write_subject
from stnet_lib.simulation.realism import Realism, interleaved_positions, kernel_coefficient, non_steady_factors
from stnet_lib.simulation.render import arterial_parameters
from stnet_lib.simulation.subject import SubjectConfig, make_subject
from stnet_lib.simulation.synthesis import add_correlated_rician_noise
from stnet_lib.simulation.vessels import MIN_VESSEL_FRACTION, tube_fraction

#: Smoke-size grid with the in-plane voxels of the quick profile's order (vessels need them).
GRID = {"shape": (48, 48, 4), "voxel_mm": (4.0, 4.0, 8.0)}
#: Seed 0: an older subject with one non-steady frame.
SEED = 0


@pytest.fixture(scope="module")
def pair():
    """The same subject with every feature and with none (noisy), and each one's statistics."""
    subjects = {label: make_subject(SubjectConfig(**GRID, realism=realism), np.random.default_rng(SEED))
                for label, realism in (("on", Realism()), ("off", Realism.none()))}
    stats = {label: realism_statistics(s.signal, compute_brain_mask(s.signal), None, s.tr_s) for label, s in subjects.items()}
    return subjects, stats


#: statistic → (range with the features, range without: the simulator before issue #16).
RANGES = {
    "aif_plateau_ratio": ((0.08, 0.20), (-0.03, 0.03)),
    "tissue_plateau_ratio": ((0.08, 0.30), (-0.03, 0.03)),
    "aif_post_first_pass_ratio": ((0.7, 1.7), (0.0, 0.4)),
    "tissue_post_first_pass_ratio": ((0.5, 1.7), (0.0, 0.4)),
    "first_frame_ratio": ((1.1, 1.3), (0.98, 1.02)),
    "noise_correlation_x": ((0.25, 0.55), (-0.05, 0.05)),
    "noise_correlation_y": ((0.25, 0.55), (-0.05, 0.05)),
    "noise_correlation_two_apart": ((-0.03, 0.1), (-0.05, 0.05)),
    "cbv_p99_p50": ((5.0, 10.0), (1.2, 2.5)),
}


@pytest.mark.parametrize("name", sorted(RANGES))
def test_each_realism_statistic_is_in_range_with_the_features_and_as_before_without(pair, name):
    _, stats = pair
    (on_low, on_high), (off_low, off_high) = RANGES[name]
    assert on_low <= stats["on"][name] <= on_high, stats["on"]
    assert off_low <= stats["off"][name] <= off_high, stats["off"]


def test_measured_statistics_follow_the_drawn_values(pair):
    subjects, stats = pair
    real = subjects["on"].params["realism"]
    assert stats["on"]["first_frame_ratio"] == pytest.approx(subjects["on"].params["frame_factors"][0], abs=0.02)
    assert stats["on"]["noise_correlation_x"] == pytest.approx(real["noise_correlation_x"], abs=0.05)
    assert stats["on"]["noise_correlation_y"] == pytest.approx(real["noise_correlation_y"], abs=0.05)
    assert subjects["on"].params["n_non_steady_frames"] == real["n_non_steady_frames"] == 1


def test_the_second_pass_comes_where_it_is_drawn_and_where_the_recipe_put_it_before():
    """On the true arterial curve: the drawn 10–25 s after the first-pass peak; without the feature,
    the recipe's recirculation, shifted t_d plus the exponential kernel's shift of the peak (11–16 s)."""
    for seed in range(3):
        for realism in (Realism(), Realism.none()):
            s = make_subject(SubjectConfig(**GRID, noise=False, realism=realism), np.random.default_rng(seed))
            acq, real = s.params["acquisition"], s.params["realism"]
            baseline = slice(s.params["n_non_steady_frames"], s.params["n_baseline_frames"] - 1)
            measured = _curve_statistics(s.c_aif, s.tr_s, baseline)["second_pass_delay_s"]
            if realism.aif_plateau:
                expected = real["second_pass_delay_s"]
            else:
                expected = acq["recirc_delay_s"] - vascular.recirculation_delay_s(0.0, acq["aif_alpha"], acq["aif_beta_s"],
                                                                                  acq["recirc_tau_s"])
            assert measured == pytest.approx(expected, abs=3.0), (seed, realism.aif_plateau)


def test_turning_one_feature_off_changes_nothing_else(pair):
    subjects, _ = pair
    on = subjects["on"]
    quiet = make_subject(SubjectConfig(**GRID, realism=Realism().without("correlated_noise", "non_steady_frames")),
                         np.random.default_rng(SEED))
    for key in ("cbv", "cbf", "mtt", "tmax"):
        np.testing.assert_array_equal(quiet.truth[key], on.truth[key])
    assert {k: v for k, v in quiet.params["realism"].items() if k != "switches"} == \
        {k: v for k, v in on.params["realism"].items() if k != "switches"}
    assert quiet.params["frame_factors"] == [] and abs(realism_statistics(
        quiet.signal, quiet.masks["brain"], quiet.masks["aif"], quiet.tr_s)["noise_correlation_x"]) < 0.05
    with pytest.raises(ValueError, match="unknown realism features"):
        Realism().without("plateau")


def _brute_force(s, voxels, times_s):
    """C_t of brain voxels (indices into the brain mask) at ``times_s`` (n, t) on a 5 ms grid (recipe §3.2)."""
    dt = 0.005
    time_s = np.arange(0.0, s.tr_s * (s.signal.shape[-1] + 1) + 1.0, dt)
    c_aif = vascular.arterial_input(time_s, **arterial_parameters(s.params["acquisition"], None))
    brain = s.masks["brain"]
    maps = {k: s.truth[k][brain] for k in ("cbf", "mtt", "delay", "dispersion", "residue_shape")}
    out = []
    for i, times in zip(voxels, times_s):
        kernel = vascular.residue(vascular.RESIDUE_SHAPES[int(maps["residue_shape"][i])], time_s, maps["mtt"][i])
        if maps["dispersion"][i] > 0:
            h = np.exp(-time_s / maps["dispersion"][i])
            kernel = fftconvolve(h / h.sum(), kernel)[: time_s.size]
        curve = fftconvolve(c_aif, kernel)[: time_s.size] * dt * RHO_G_PER_ML / K_H * maps["cbf"][i] / 6000.0
        out.append(np.interp(times - maps["delay"][i], time_s, curve, left=0.0))
    return np.array(out)


def test_each_slice_is_sampled_at_its_own_time_and_the_truth_is_relative_to_the_aif():
    """Interleaved slices: voxel curves of slice z are C_t(k·TR + t_z); c_tissue (reference times), the
    truth and the sidecar's SliceTiming follow (the loader reads it back)."""
    config = SubjectConfig(**GRID, noise=False, realism=dataclasses.replace(Realism.none(), slice_timing=True))
    s = make_subject(config, np.random.default_rng(3))
    plain = make_subject(dataclasses.replace(config, realism=Realism.none()), np.random.default_rng(3))
    start = s.params["realism"]["slice_order_start"]
    np.testing.assert_allclose(s.slice_timing_s, interleaved_positions(4, start) * s.tr_s / 4, atol=1e-9)
    brain = s.masks["brain"]
    delta_r2 = signal_to_delta_r2(s.signal[brain].astype(np.float64), s.te_ms, baseline=slice(0, 4))
    measured = delta_r2_to_concentration(delta_r2.delta_r2_per_s, kind="tissue", field_t=s.field_t)
    z = np.nonzero(brain)[2]
    voxels = np.random.default_rng(1).choice(brain.sum(), 12, replace=False)
    expected = _brute_force(s, voxels, s.time_s[None, :] + s.slice_timing_s[z[voxels]][:, None])
    np.testing.assert_allclose(measured[voxels], expected, atol=5e-3 * expected.max())
    reference = _brute_force(s, voxels, np.tile(s.time_s, (voxels.size, 1)))
    np.testing.assert_allclose(s.c_tissue[voxels], reference, atol=5e-3 * reference.max())
    step = max(s.params["fine_step_s"], plain.params["fine_step_s"])  # delays are rounded to each one's fine grid
    np.testing.assert_allclose(s.truth["tmax"][brain], plain.truth["tmax"][brain], atol=step)


def test_the_sidecar_carries_te_tr_field_and_slice_timing(tmp_path):
    s = make_subject(SubjectConfig(**GRID), np.random.default_rng(1))
    write_subject(s, tmp_path / "sub")
    scan = load_scan(tmp_path / "sub" / "dsc.nii.gz")
    assert scan.te_ms == pytest.approx(s.te_ms) and scan.tr_s == pytest.approx(s.tr_s) and scan.field_t == s.field_t
    np.testing.assert_allclose(scan.slice_timing_s, s.slice_timing_s, atol=1e-6)
    assert np.ptp(s.slice_timing_s) > 0.5 * s.tr_s
    assert (tmp_path / "sub" / "vessel_mask.nii.gz").is_file() and (tmp_path / "sub" / "pvessel.nii.gz").is_file()


def test_csf_is_its_own_compartment_without_bolus():
    """S = S0_tissue·e^(−TE·r2*·C/(p_GM + p_WM)) + S0_CSF in partial-volume voxels (eq. 1–2 per compartment)."""
    config = SubjectConfig(**GRID, noise=False, realism=dataclasses.replace(Realism.none(), csf_compartment=True))
    s = make_subject(config, np.random.default_rng(2))
    one = make_subject(dataclasses.replace(config, realism=Realism.none()), np.random.default_rng(2))
    brain = s.masks["brain"]
    np.testing.assert_allclose(s.signal[..., 0], one.signal[..., 0], rtol=1e-5)  # same S0
    g, w, c = (s.tissue[k][brain][:, None] for k in ("gm", "wm", "csf"))
    ratio = s.params["acquisition"]["s0_csf_ratio"]
    s0 = s.signal[brain][:, :1].astype(np.float64)
    s0_csf = s0 * ratio * c / (g + 0.8 * w + ratio * c)
    c_rel = delta_r2_to_concentration(-np.log((s.signal[brain] - s0_csf) / (s0 - s0_csf)) / (s.te_ms / 1000.0),
                                      kind="tissue", field_t=s.field_t)
    np.testing.assert_allclose(c_rel * (g + w), s.c_tissue, atol=2e-3 * s.c_tissue.max())
    csf_rich = (c[:, 0] > 0.3) & ((g + w + c)[:, 0] > 0.98)  # inside the head: the CSF part only dilutes the drop
    assert csf_rich.sum() > 20
    drop = lambda x: 1 - x[brain][csf_rich].min(axis=1) / x[brain][csf_rich][:, 0]  # noqa: E731
    assert np.all(drop(s.signal) < drop(one.signal))


def test_large_vessels_are_flagged_outside_the_truth_and_carry_high_blood_volume(pair):
    subjects, _ = pair
    s = subjects["on"]
    vessel, brain = s.masks["vessel"], s.masks["brain"]
    assert (vessel == 1).sum() > 20 and (vessel == 2).sum() > 20
    assert not (brain & (vessel > 0)).any() and np.isnan(s.truth["cbv"][vessel > 0]).all()
    assert (vessel[s.masks["aif"]] == 1).all() and (vessel[s.masks["vof"]] == 2).all()
    network = (vessel > 0) & ~s.masks["aif"] & ~s.masks["vof"]
    assert s.tissue["vessel"][network].min() >= MIN_VESSEL_FRACTION
    assert not (subjects["off"].masks["vessel"] & ~subjects["off"].masks["aif"] & ~subjects["off"].masks["vof"]).any()


def test_a_straight_tube_fills_its_volume():
    """Σ fraction·voxel volume = π r² L for a tube inside the grid (2 % with ~1.5 mm sampling)."""
    shape, voxel = (40, 40, 12), np.array([2.0, 2.0, 5.0])
    grid = np.stack(np.meshgrid(*(np.arange(n) * v for n, v in zip(shape, voxel)), indexing="ij"), -1).astype(np.float32)
    path = np.array([[10.0, 20.0, 25.0], [70.0, 50.0, 35.0]])
    fraction = tube_fraction(grid, path, 3.0)
    expected = np.pi * 3.0**2 * np.linalg.norm(path[1] - path[0])
    capped = expected + 4.0 / 3.0 * np.pi * 3.0**3  # the polyline's distance is round at its ends
    assert expected < fraction.sum() * voxel.prod() < 1.02 * capped


def test_older_brains_have_white_matter_disease_atrophy_and_a_broader_bolus(pair):
    subjects, _ = pair
    old, young = subjects["on"], make_subject(SubjectConfig(**GRID, realism=Realism().without("older_brains")),
                                             np.random.default_rng(SEED))
    real = old.params["realism"]
    assert real["older"] and not young.params["realism"]["older"]
    wmh = old.masks["wmh"] & (old.truth["rcbf"] == 1.0)  # the lesion's delays come on top
    assert wmh.sum() > 10 and not young.masks["wmh"].any()
    pure = wmh & (old.tissue["wm"] > 0.9 * (old.tissue["gm"] + old.tissue["wm"]))
    assert 0.75 * real["wmh_cbf"] < np.median(old.truth["cbf"][pure]) < 1.25 * real["wmh_cbf"]
    assert np.median(old.truth["tmax"][wmh]) > np.median(young.truth["tmax"][wmh])
    assert old.truth["tmax"][wmh].max() <= 5.0 + old.params["fine_step_s"]  # delays rounded to the fine grid
    assert old.tissue["csf"].sum() > (1 + 0.5 * real["atrophy"]) * young.tissue["csf"].sum()
    assert old.params["acquisition"]["aif_beta_s"] == pytest.approx(
        young.params["acquisition"]["aif_beta_s"] * real["bolus_width_factor"], abs=1e-3)


def test_correlated_noise_has_the_kernels_autocorrelation_and_sigma():
    signal = np.full((128, 128, 2, 8), 1000.0, np.float32)
    c = kernel_coefficient(0.4), kernel_coefficient(0.3)
    add_correlated_rician_noise(signal, 10.0, np.random.default_rng(0), c)
    e = signal - 1000.0
    assert e.std() == pytest.approx(10.0, rel=0.03)
    for axis, coefficient in ((0, c[0]), (1, c[1])):
        for lag, expected in ((1, 2 * coefficient / (1 + 2 * coefficient**2)), (2, coefficient**2 / (1 + 2 * coefficient**2))):
            a, b = np.take(e, np.arange(128 - lag), axis), np.take(e, np.arange(lag, 128), axis)
            assert np.corrcoef(a.ravel(), b.ravel())[0, 1] == pytest.approx(expected, abs=0.02)
    assert 2 * c[0] / (1 + 2 * c[0] ** 2) == pytest.approx(0.4) and kernel_coefficient(0.0) == 0.0


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_non_steady_frames_are_what_the_detector_finds(n):
    for position in (0.0, 0.5, 1.0):
        factors = non_steady_factors(20, {"n_non_steady_frames": n, "first_frame_position": position})
        assert np.all((factors[:n] >= 1.1 - 1e-6) & (factors[:n] <= 1.3 + 1e-6)) and np.all(factors[n:] == 1.0)
        assert np.all(factors[: max(n - 1, 0)] >= 1.06 * factors[1:n] - 1e-6)
        assert count_non_steady_frames(1000.0 * factors) == n


@pytest.mark.shared_data
def test_the_real_slice_statistics_are_those_of_issue_16():
    """The same function on the real slice: the values issue #16's table reports (9–12 %, 0.9–1.06, ≈ 20 s, 1.2,
    0.38–0.44 and ≈ 0 two apart, 8.3; our difference-based noise estimate gives 0.34 and 0.43)."""
    stats = scan_realism(shared_file("real_dsc", "moyamoya_cerebellum_dsc.nii.gz"))
    assert 0.07 <= stats["aif_plateau_ratio"] <= 0.12 and 0.9 <= stats["aif_post_first_pass_ratio"] <= 1.06
    assert 18.0 <= stats["second_pass_delay_s"] <= 22.0 and 1.15 <= stats["first_frame_ratio"] <= 1.3
    assert 0.3 <= stats["noise_correlation_x"] <= 0.5 and 0.3 <= stats["noise_correlation_y"] <= 0.5
    assert abs(stats["noise_correlation_two_apart"]) < 0.05 and 7.0 <= stats["cbv_p99_p50"] <= 9.5


def test_field_and_te_are_drawn_per_subject_with_their_relaxivities():
    """1.5 T with TE 40–50 ms, 3 T with TE 25–35 ms (Boxerman 2020; issue #16: 25–50 ms); the signal uses
    the field's relaxivities (the inverse with the same field recovers C_t: test_simulation's round trip)."""
    from stnet_lib.simulation.subject import draw_acquisition

    draws = [draw_acquisition(np.random.default_rng(seed)) for seed in range(200)]
    for field_t, (low, high) in ((1.5, (40, 50)), (3.0, (25, 35))):
        te = np.array([d["te_ms"] for d in draws if d["field_t"] == field_t])
        assert te.size > 60 and low <= te.min() and te.max() <= high


def test_a_cohort_profile_carries_its_realism_into_every_subject_and_its_fingerprint():
    from stnet_lib.simulation.cohort import CohortProfile, _fingerprint, subject_config

    profile = CohortProfile("x", (8, 8, 2), (4.0, 4.0, 8.0), 1, 0, 0, 0, 0, seed=1)
    plain = dataclasses.replace(profile, realism=Realism.none())
    assert subject_config(profile, True).realism == Realism() and subject_config(plain, True).realism == Realism.none()
    assert _fingerprint(subject_config(profile, True), 1, 0) != _fingerprint(subject_config(plain, True), 1, 0)
