"""The automatic AIF and VOF: a phantom with known vessels, the synthetic cohort, the real slice."""

import dataclasses

import nibabel as nib
import numpy as np
import pytest

from conftest import shared_file
from curves import gamma_variate
from stnet_lib import compute_maps, load_scan
from stnet_lib._validation import StnetInputError
from stnet_lib.aif import ArterialSearch, find_arterial_masks
from stnet_lib.curves import prepare_curves
from stnet_lib.io import Scan
from stnet_lib.masking import search_region
from stnet_lib.profiles import PROFILES
from stnet_lib.signal import arterial_baseline, delta_r2_to_signal, signal_to_delta_r2
from stnet_lib.simulation import SubjectConfig, make_subject

TR_S, TE_MS = 1.5, 30.0
TIME_S = np.arange(60) * TR_S


def _phantom(rng, *, saturate_full_arteries=False):
    """A 20×20×2 slab of tissue (ΔR2* peak ~12/s, arrival 18 s) with full arteries (peak 90/s, 15 s),
    half partial-volumed arteries, and veins (peak 80/s, 21 s, wider) at known voxels."""
    shape = (20, 20, 2)
    delta_r2 = np.zeros(shape + TIME_S.shape)
    delta_r2[...] = 12.0 * gamma_variate(TIME_S, t0_s=18.0, beta_s=2.5, peak_mM=1.0)
    voxels = {"artery": [(3, 4, 0), (4, 4, 0), (15, 10, 1), (15, 11, 1)], "partial": [(8, 15, 0), (9, 15, 0), (12, 3, 1)],
              "vein": [(18, 18, 0), (18, 17, 0), (17, 18, 1)]}
    artery = 90.0 * gamma_variate(TIME_S, t0_s=15.0, beta_s=1.2, peak_mM=1.0)
    curves = {"artery": artery, "partial": 0.45 * artery,
              "vein": 80.0 * gamma_variate(TIME_S, t0_s=21.0, beta_s=2.2, peak_mM=1.0)}
    masks = {}
    for name, where in voxels.items():
        masks[name] = np.zeros(shape, bool)
        masks[name][tuple(np.array(where).T)] = True
        delta_r2[masks[name]] = curves[name]
    s0 = np.full(shape, 600.0)
    if saturate_full_arteries:  # full arteries in darker voxels, whose signal hits the noise floor at the peak
        masks["saturated"] = np.zeros(shape, bool)
        masks["saturated"][[6, 6], [12, 13], [0, 0]] = True
        delta_r2[masks["saturated"]] = artery
        s0[masks["saturated"]] = 150.0
    signal = delta_r2_to_signal(delta_r2, s0, TE_MS)
    signal = np.abs(signal + rng.normal(0, 6.0, signal.shape)).astype(np.float32)
    return signal, masks


def test_the_full_arteries_and_the_veins_are_found_not_the_partial_volumed_ones(rng):
    signal, masks = _phantom(rng)
    everything = np.ones(signal.shape[:3], bool)
    screen_only = ArterialSearch(min_arterial_voxels=0)
    selection = find_arterial_masks(signal, everything, slice(0, 8), te_ms=TE_MS, tr_s=TR_S, config=screen_only)
    np.testing.assert_array_equal(selection.aif_mask, masks["artery"])
    assert selection.vof_mask is not None and (selection.vof_mask & masks["vein"]).sum() == 3
    assert not (selection.vof_mask & (masks["artery"] | masks["partial"])).any()
    assert selection.record["aif_voxels"] == 4 and selection.record["aif_saturated_voxels"] == 0


def test_the_aif_averages_at_least_ten_arterial_curves_never_a_vein_or_tissue(rng):
    """Four full arteries pass the area band; the default fills the mean up to ten curves with the
    largest-area arterial curves left. The arterial clusters hold only the seven arteries, so the mean
    takes all of them (the three partial-volumed ones too), never a vein or tissue."""
    signal, masks = _phantom(rng)
    selection = find_arterial_masks(signal, np.ones(signal.shape[:3], bool), slice(0, 8), te_ms=TE_MS, tr_s=TR_S)
    assert ArterialSearch().min_arterial_voxels == 10 and selection.aif_mask.sum() == 7
    assert (selection.aif_mask & masks["artery"]).sum() == 4 and (selection.aif_mask & masks["partial"]).sum() == 3


def test_background_voxels_are_not_searched():
    """Decision 0050, "Background and the mean of ten": cohort subject 823 (no lesion; brain at 33 noise
    SDs) once got an AIF of five voxels outside the head, whose Rician noise (baseline 3–7 noise SDs, above
    a tenth of the searched median) reads as a large early ΔR2* curve. With the baseline screen of 10
    noise SDs every chosen voxel is a simulated artery."""
    cohort = PROFILES["quick"].cohort  # bench/automatic_aif.py's subjects
    config = SubjectConfig(shape=cohort.shape, voxel_mm=cohort.voxel_mm, n_frames=cohort.n_frames, has_lesion=False)
    subject = make_subject(config, np.random.default_rng(823))
    signal = np.clip(np.rint(subject.signal), 0, np.iinfo(np.int16).max).astype(np.float32)
    scan = Scan(signal, subject.affine, nib.Nifti1Header(), subject.te_ms, subject.tr_s, None, subject.masks["brain"],
                field_t=subject.field_t, slice_timing_s=subject.slice_timing_s)
    prepared = prepare_curves(scan)
    found = prepared.scan.aif_mask
    assert found.sum() >= 10 and (subject.masks["vessel"][found] == 1).all(), subject.masks["vessel"][found]
    old = ArterialSearch(min_baseline_n_sd=0.0, min_arterial_voxels=5)
    background = find_arterial_masks(prepared.scan.signal, search_region(prepared.scan.brain_mask), prepared.baseline,
                                     te_ms=scan.te_ms, tr_s=scan.tr_s, find_vof=False, config=old).aif_mask
    assert (subject.masks["vessel"][background] == 0).all()  # the screen is what keeps them out


def test_saturated_arteries_give_way_to_unsaturated_ones_of_as_large_an_area(rng):
    signal, masks = _phantom(rng, saturate_full_arteries=True)
    assert signal[masks["saturated"]].min() < 20 < signal[masks["artery"]].min()  # 3 noise SDs = 18
    selection = find_arterial_masks(signal, np.ones(signal.shape[:3], bool), slice(0, 8), te_ms=TE_MS, tr_s=TR_S,
                                    find_vof=False)
    assert not (selection.aif_mask & masks["saturated"]).any() and (selection.aif_mask & masks["artery"]).sum() == 4
    assert selection.vof_mask is None


def test_a_series_without_a_bolus_is_refused():
    flat = np.full((6, 6, 1, 30), 500.0, np.float32)
    with pytest.raises(StnetInputError, match="pass an AIF mask"):
        find_arterial_masks(flat, np.ones((6, 6, 1), bool), slice(0, 5), te_ms=TE_MS, tr_s=TR_S)


def _cohort_scan(seed: int) -> tuple[Scan, Scan]:
    """A simulated subject of 64×64×10 voxels of the quick profile's size, 3.6×3.6×8 mm (every realism
    feature on), without and with its own arterial mask; int16 signal as the cohort writes it."""
    config = SubjectConfig(shape=(64, 64, 10), voxel_mm=(3.6, 3.6, 8.0), n_frames=50, has_lesion=seed % 4 != 3)
    subject = make_subject(config, np.random.default_rng(seed))
    signal = np.clip(np.rint(subject.signal), 0, np.iinfo(np.int16).max).astype(np.float32)
    auto = Scan(signal, subject.affine, nib.Nifti1Header(), subject.te_ms, subject.tr_s, None, subject.masks["brain"],
                field_t=subject.field_t, slice_timing_s=subject.slice_timing_s)
    return auto, dataclasses.replace(auto, aif_mask=subject.masks["aif"])


@pytest.mark.slow
def test_cbf_with_the_automatic_aif_against_cbf_with_the_true_arterial_mask():
    """Issue #14's measure on 10 subjects of the synthetic cohort, whose arterial voxels are known: the
    brain-median oSVD CBF with the automatic AIF over that with the true mask (no VOF in either, so
    that only the AIF differs).

    The issue asks for ±15 % on ≥ 90 % of subjects. bench/aif_min_voxels.py (decision 0050, "Background
    and the mean of ten"): 93.8 % of seeds 500–579 and 90.0 % of 800–879 (the rule was chosen on these),
    92.5 % of 600–679, 95.0 % of 900–979 and 96.2 % of 1000–1079 (the last two measured once, after the
    choice); before the background screen and the mean of ten, 90.0 %, 86.2 %, 91.2 %, 88.8 %, 91.2 %. Here (seeds 600–609, 10 slices) all ten are
    within ±15 % (0.87–1.08, median 0.98). Asserted: the criterion itself on these ten (at most one
    outside ±15 %), no systematic bias (median 0.9–1.1) and none off by more than a third.
    """
    ratios = []
    for seed in range(600, 610):
        auto, true = _cohort_scan(seed)
        found = prepare_curves(auto).scan.aif_mask
        with_found = compute_maps(dataclasses.replace(true, aif_mask=found), "osvd")
        with_true = compute_maps(true, "osvd")
        brain = true.brain_mask & np.isfinite(with_true.cbf)
        ratios.append(np.median(with_found.cbf[brain]) / np.median(with_true.cbf[brain]))
    ratios = np.array(ratios)
    assert 0.9 <= np.median(ratios) <= 1.1, np.round(ratios, 3)
    assert np.mean(np.abs(ratios - 1) <= 0.15) >= 0.9, np.round(ratios, 3)
    assert np.all((ratios > 0.75) & (ratios < 1.33)), np.round(ratios, 3)


def test_the_automatic_vof_is_written_and_recorded_but_not_applied():
    """Decision 0075: with no masks, k_AV = 1; the VOF found, its curve and the k_AV it would give are
    in the record and the mask is written. Given back as a drawn VOF it gives that k_AV, and eq. 4's
    CBV scales by exactly it (CBV ∝ k_AV; the deconvolution's CBF too)."""
    auto, _ = _cohort_scan(606)
    found = compute_maps(auto, "osvd")
    vof = found.params["vof"]
    assert found.params["k_av"] == 1.0 and vof["used"] is False and vof["source"] == "automatic"
    assert vof["voxels"] == int(found.extra_volumes["vof_mask"].sum()) >= 3
    assert 0.3 < vof["k_av_if_used"] < 3.0 and abs(vof["k_av_if_used"] - 1.0) > 1e-3
    assert len(vof["c_mM"]) == len(found.params["time_s"])
    drawn = dataclasses.replace(auto, aif_mask=found.extra_volumes["aif_mask"] > 0,
                                vof_mask=found.extra_volumes["vof_mask"] > 0)
    applied = compute_maps(drawn, "osvd")
    assert applied.params["k_av"] == pytest.approx(vof["k_av_if_used"], rel=1e-9)
    assert applied.params["vof"]["used"] is True
    brain = auto.brain_mask
    np.testing.assert_allclose(applied.cbv[brain], vof["k_av_if_used"] * found.cbv[brain], rtol=1e-9)
    np.testing.assert_allclose(applied.cbf[brain], vof["k_av_if_used"] * found.cbf[brain], rtol=1e-9)


def _arrival_and_depth(curve: np.ndarray, baseline: slice, time_s: np.ndarray) -> tuple[float, float]:
    """Time [s] at which the curve first falls 10 % below its baseline, linearly interpolated between
    frames (TR 2 s here: a frame is as long as the arrival difference), and its deepest relative signal."""
    relative = curve / curve[baseline].mean()
    after = np.flatnonzero(relative[baseline.stop :] < 0.9)[0] + baseline.stop
    fraction = (relative[after - 1] - 0.9) / (relative[after - 1] - relative[after])
    return time_s[after - 1] + fraction * (time_s[after] - time_s[after - 1]), relative.min()


def _full_width_at_half_maximum(curve: np.ndarray, time_s: np.ndarray) -> float:
    """Width [s] of a curve's highest peak at half its height, each flank's crossing linearly
    interpolated between frames."""
    peak = int(np.argmax(curve))
    half = 0.5 * curve[peak]
    before = np.flatnonzero(curve[:peak] < half)[-1]
    after = peak + np.flatnonzero(curve[peak:] < half)[0]
    rise = time_s[before] + (half - curve[before]) / (curve[before + 1] - curve[before]) * (time_s[before + 1] - time_s[before])
    fall = time_s[after - 1] + (curve[after - 1] - half) / (curve[after - 1] - curve[after]) * (time_s[after] - time_s[after - 1])
    return fall - rise


def test_the_width_at_half_maximum_of_a_sampled_gaussian_is_2_355_sigma():
    time_s = np.arange(0.0, 60.0, 2.0)  # frames as coarse as the real slice's
    sigma = 3.0
    gaussian = np.exp(-0.5 * ((time_s - 24.0) / sigma) ** 2)  # its peak on a frame
    assert _full_width_at_half_maximum(gaussian, time_s) == pytest.approx(2 * np.sqrt(2 * np.log(2)) * sigma, rel=0.05)


@pytest.mark.shared_data
def test_on_the_real_slice_the_aif_arrives_earlier_peaks_narrower_and_drops_deeper_than_the_brain():
    """The chosen arterial curve (10 voxels) against the brain's mean, on the real slice (TR 2 s):

    * earlier: its signal falls 10 % below baseline 1.6 s before the brain's (16.1 against 17.7 s);
    * narrower: its ΔR2* (eq. 1) peak is 7.6 s wide at half height, the brain's 9.4 s;
    * deeper: its signal drops to 5 % of baseline (the brain's to 56 %), a ΔR2* peak 5× the brain's.

    What these do not say (decision 0050, "The real slice"): normalised to its own peak, the arterial ΔR2*
    rises with the brain's (10 % of the peak at 16.8 against 16.9 s; at TR 2 s this slice does not
    resolve the artery's arrival from the tissue's), and after eq. 2's quadratic blood relaxivity,
    which compresses a high peak, its concentration is as wide as the brain's (9.3 against 9.4 s).
    Its arteries reach the noise floor for two frames, so its true peak is higher and narrower still.
    """
    scan = load_scan(shared_file("real_dsc", "moyamoya_cerebellum_dsc.nii.gz"), te_ms=30.0, field_t=1.5)
    prepared = prepare_curves(scan)
    signal, baseline = prepared.scan.signal, prepared.baseline
    time_s = np.arange(signal.shape[-1]) * scan.tr_s
    brain_curve = signal[prepared.scan.brain_mask].mean(axis=0, dtype=np.float64)
    aif_curve = signal[prepared.scan.aif_mask].mean(axis=0, dtype=np.float64)
    brain = _arrival_and_depth(brain_curve, baseline, time_s)
    aif = _arrival_and_depth(aif_curve, baseline, time_s)
    assert aif[0] < brain[0] and aif[1] < 0.5 * brain[1], (aif, brain)
    arterial = signal_to_delta_r2(aif_curve, 30.0, baseline=arterial_baseline(aif_curve, baseline))
    tissue = signal_to_delta_r2(brain_curve, 30.0, baseline=baseline)
    assert arterial.delta_r2_per_s.max() > 4 * tissue.delta_r2_per_s.max()
    assert _full_width_at_half_maximum(arterial.delta_r2_per_s, time_s) < \
        0.9 * _full_width_at_half_maximum(tissue.delta_r2_per_s, time_s)
    assert prepared.record["aif_source"] == "automatic" and 1 <= prepared.scan.aif_mask.sum() <= 30
    assert prepared.scan.vof_mask is None  # found, not applied (decision 0075)
    vof = _arrival_and_depth(signal[prepared.found_vof_mask].mean(axis=0), baseline, time_s)
    assert vof[1] < brain[1] and prepared.record["aif_search"]["vof_first_moment_frames"] > \
        prepared.record["aif_search"]["aif_first_moment_frames"]
    assert search_region(prepared.scan.brain_mask)[prepared.scan.aif_mask].all()
