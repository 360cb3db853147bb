"""The ST-Net that ships (``stnet_lib/weights/``): it is intact, it has learned, and a site's conventions do not move it.

The shipped network was trained on the quick profile's synthetic cohort (its record says so). Here it
maps a subject it never saw (a new seed of the same simulator) against that subject's truth, beside a
network of the same architecture with untrained weights, and the same subject rendered under another
site's conventions (signal scale, TE, field strength, non-steady first frames) must give the same
maps (issue #17).
"""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from stnet_lib import weights as shipped
from stnet_lib.cli import main
from stnet_lib.constants import relaxivities
from stnet_lib.experiments.data import subject_scan
from stnet_lib.experiments.subjects import reference_maps
from stnet_lib.manifest import load_manifest
from stnet_lib.metrics import pcc, scc
from stnet_lib.network import STNet, STNetConfig, predict_maps, save_checkpoint
from stnet_lib.network.checkpoint import load_checkpoint
from stnet_lib.profiles import PROFILES
from stnet_lib.signal import count_non_steady_frames, detect_baseline
from stnet_lib.simulation.cohort import simulate_cohort

torch.set_num_threads(2)

#: Least Pearson r with the truth over the unseen subject's brain (measured with the weights shipped on
#: 2026-12-07 with the 42 training variants of decision 0077: CBV 0.921, CBF 0.950, Tmax 0.984; before them
#: 0.912, 0.938, 0.984; untrained: 0.09, 0.11 and a constant Tmax).
LEARNED_PCC = {"cbv": 0.85, "cbf": 0.85, "tmax": 0.9}

#: A subject of the quick cohort's grid from a seed no profile uses, with a lesion (and none of the quick
#: cohort's 42 training variants, which the fixture simulated and never read until 2026-12-08: 14 s).
UNSEEN = dataclasses.replace(PROFILES["quick"].cohort, name="unseen", n_train=0, n_val=0, n_test_labelled=1,
                             n_test_unlabelled=0, n_no_lesion=0, n_train_variants=0, seed=4242)


@pytest.fixture(scope="module")
def unseen(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unseen")
    simulate_cohort(UNSEEN, folder, progress=False)
    row = load_manifest(folder / "data_manifest.csv").iloc[0]
    return subject_scan(row), reference_maps(row.to_dict())


def test_the_shipped_weights_match_their_record_and_name_their_cohort(capsys):
    checkpoint = shipped.shipped_checkpoint()  # sha256 checked against the record
    record = shipped.read_record()
    assert record["profile"] == "quick" and record["size_bytes"] == checkpoint.stat().st_size < shipped.MAX_BYTES
    payload = load_checkpoint(checkpoint)
    assert record["time_grid"] == {"n_frames": payload["config"]["n_frames"], "dt_s": payload["config"]["dt_s"]}
    assert main(["weights"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1]) == record


def test_the_shipped_network_has_learned_on_a_subject_it_never_saw(unseen, tmp_path):
    scan, truth = unseen
    brain = scan.brain_mask & np.isfinite(truth["tmax"])
    trained = predict_maps(scan, shipped.shipped_checkpoint())
    payload = load_checkpoint(shipped.shipped_checkpoint())
    torch.manual_seed(0)
    untrained_net = STNet(STNetConfig.from_dict(payload["config"]))
    untrained = predict_maps(scan, save_checkpoint({**payload, "model": untrained_net.state_dict()}, tmp_path / "u.pt"))
    scores = {name: (pcc(truth[name], getattr(trained, name), mask=brain),
                     pcc(truth[name], np.nan_to_num(getattr(untrained, name)), mask=brain))
              for name in ("cbv", "cbf", "tmax")}
    for name, (learned, chance) in scores.items():  # an untrained network's output is constant: r = NaN there
        assert learned > LEARNED_PCC[name] and learned > abs(np.nan_to_num(chance)) + 0.3, (name, scores)


def _rendered_elsewhere(scan, *, scale: float, te_ms: float, field_t: float, n_non_steady: int):
    """The same subject as another site would record it: its ΔR2* (eq. 1 inverted with the scan's own
    TE) at ``field_t`` (every relaxivity, tissue and blood, scales with the field: the same
    concentrations give ΔR2* in that ratio), rendered at ``te_ms`` (eq. 1 forward), the signal scaled
    by ``scale``, and its own non-steady first frames replaced by ``n_non_steady`` others decaying
    towards S0 (1.3, 1.15, 1.075… × S0, as T1 saturation does)."""
    signal = scan.signal.astype(np.float64)
    signal = signal[..., count_non_steady_frames(signal[scan.brain_mask].mean(axis=0)):]
    s0 = signal[..., detect_baseline(signal[scan.brain_mask])].mean(axis=-1, keepdims=True)
    delta = -np.log(np.clip(signal / s0, 1e-3, None)) / (scan.te_ms / 1000.0)
    ratio = relaxivities(field_t)["r2star_tissue"] / relaxivities(scan.field_t)["r2star_tissue"]
    steady = scale * s0 * np.exp(-(te_ms / 1000.0) * delta * ratio)
    front = [scale * s0 * (1 + 0.3 * 0.5**k) for k in range(n_non_steady)]
    return dataclasses.replace(scan, signal=np.concatenate([*front, steady], axis=-1).astype(np.float32), te_ms=te_ms,
                               field_t=field_t)


@pytest.mark.parametrize("convention", [
    {"scale": 0.1, "te_ms": 45.0, "n_non_steady": 3},
    {"scale": 10.0, "te_ms": 25.0, "n_non_steady": 1},
], ids=["S0x0.1-TE45-3nonsteady", "S0x10-TE25-1nonsteady"])
def test_another_sites_conventions_do_not_move_the_maps(unseen, convention):
    """Issue #17: signal scale, TE, field strength (swapped between 1.5 and 3 T) and non-steady frames.

    Measured (fp32; the subject's own: 3 T, TE 30.9 ms, 2 non-steady frames): CBV and CBF median
    relative differences 0.17–0.38 % and 0.25–0.55 %; Tmax median absolute differences 0.043 and
    0.098 s (2–5 % of the value or one frame interval, whichever is longer; the relative
    difference alone is large where Tmax is near 0). The residue is the noise: it goes through
    eq. 1's logarithm and the per-voxel S0 differently at another TE.
    """
    scan, _ = unseen
    checkpoint = shipped.shipped_checkpoint()
    here = predict_maps(scan, checkpoint, precision="fp32")
    other = _rendered_elsewhere(scan, field_t=3.0 if scan.field_t < 2 else 1.5, **convention)
    there = predict_maps(other, checkpoint, precision="fp32")
    assert there.params["frames_dropped"] == convention["n_non_steady"]
    brain = scan.brain_mask
    for name in ("cbv", "cbf"):
        a, b = getattr(here, name)[brain], getattr(there, name)[brain]
        assert np.median(np.abs(b - a) / np.abs(a)) < 0.05, name
    assert np.median(np.abs(there.tmax[brain] - here.tmax[brain])) < 0.15  # [s], a tenth of a frame interval


def _aif_later(scan, delay_s: float):
    """``scan`` with its arterial voxels' signal ``delay_s`` later (their baseline held in front): every
    tissue voxel's true Tmax is then ``delay_s`` lower, and a quarter of the brain leads the AIF."""
    signal = scan.signal.astype(np.float64)
    t = np.arange(signal.shape[-1]) * scan.tr_s
    signal[scan.aif_mask] = [np.interp(t - delay_s, t, curve, left=curve[2:6].mean()) for curve in signal[scan.aif_mask]]
    return dataclasses.replace(scan, signal=signal.astype(np.float32))


def test_an_aif_the_tissue_leads_lowers_tmax_by_as_much(unseen):
    """Decision 0079: the tissue 3 s earlier relative to its AIF, as on the real slice (true Tmax 3 s lower,
    down to −2.5 s). Aligned, the shipped network's Tmax follows (measured: median change −2.77 s, mean
    error 0.51 s, r 0.985); read as it is, the network answers with its floor (−1.03 s, 1.95 s, 0.923).
    CBV and CBF stay within 2 % either way they are read aligned."""
    scan, truth = unseen
    brain = scan.brain_mask & np.isfinite(truth["tmax"])
    checkpoint = shipped.shipped_checkpoint()
    here = predict_maps(scan, checkpoint)
    assert here.params["aif_advance_s"] == 0  # it arrives like the training subjects: read as it is
    later = _aif_later(scan, 3.0)
    aligned, as_is = (predict_maps(later, checkpoint, align_aif=align) for align in (True, False))
    assert aligned.params["aif_advance_s"] == pytest.approx(3.6) and as_is.params["aif_advance_s"] == 0
    error = {name: np.mean(np.abs(maps.tmax[brain] - (truth["tmax"][brain] - 3.0))) for name, maps in
             (("aligned", aligned), ("as_is", as_is))}
    assert np.median(aligned.tmax[brain] - here.tmax[brain]) == pytest.approx(-3.0, abs=0.4)
    assert np.median(as_is.tmax[brain] - here.tmax[brain]) > -1.5
    assert error["aligned"] < 0.7 and error["aligned"] < error["as_is"] / 2, error
    assert pcc(truth["tmax"], aligned.tmax, mask=brain) > LEARNED_PCC["tmax"]
    for name in ("cbv", "cbf"):
        assert np.median(getattr(aligned, name)[brain] / getattr(here, name)[brain]) == pytest.approx(1.0, abs=0.02)


def test_stnet_maps_records_the_alignment_and_can_be_told_not_to_align(unseen, tmp_path, capsys):
    import nibabel as nib

    scan, _ = unseen
    later = _aif_later(scan, 3.0)
    files = {}
    for name, data in (("dsc", later.signal), ("aif_mask", later.aif_mask), ("vof_mask", later.vof_mask),
                       ("brain_mask", later.brain_mask)):
        files[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), scan.affine), files[name])
    common = ["maps", "--dsc", str(files["dsc"]), "--aif-mask", str(files["aif_mask"]), "--vof-mask",
              str(files["vof_mask"]), "--brain-mask",
              str(files["brain_mask"]), "--te-ms", str(scan.te_ms), "--tr-s", str(scan.tr_s), "--field-t",
              str(scan.field_t), "--no-qc", "--method"]
    assert main([*common, "stnet", "--out", str(tmp_path / "aligned")]) == 0
    assert main([*common, "stnet", "--no-aif-alignment", "--out", str(tmp_path / "as_is")]) == 0
    params = {name: json.loads((tmp_path / name / "maps.json").read_text())["params"] for name in ("aligned", "as_is")}
    assert params["aligned"]["aif_advance_s"] == pytest.approx(3.6) and params["as_is"]["aif_advance_s"] == 0
    assert params["aligned"]["arrival_lag_s"] == params["as_is"]["arrival_lag_s"] < 0.5
    tmax = {name: np.asarray(nib.load(tmp_path / name / "tmax.nii.gz").dataobj) for name in params}
    assert np.median(tmax["aligned"][scan.brain_mask] - tmax["as_is"][scan.brain_mask]) < -1.0
    assert main([*common, "osvd", "--no-aif-alignment", "--out", str(tmp_path / "osvd")]) == 2
    assert "use it with --method stnet" in capsys.readouterr().err and not (tmp_path / "osvd").exists()


@pytest.mark.shared_data
@pytest.mark.filterwarnings("ignore:this ST-Net was trained with the VOF")  # OSIPI's cases have no VOF: k_AV = 1
def test_on_osipis_reference_object_the_shipped_network_passes_as_osvd_does():
    """Issue #17: OSIPI's DRO (another group's simulator: no arterial plateau or recirculation, MTT up to
    24 s), each case rendered as a series through eq. 1–2. oSVD passes 14/14 on CBV and on CBF, and so
    must the shipped network; its CBF must rise with the reference in both tissue series, and its Tmax
    must be nearer OSIPI's (0 s) than oSVD's.

    Before the training variants of decision 0077 it passed CBF in 1/14 (1.3–5.7× the reference); with
    21 variants 13/14 on each map, with the 42 it ships with 14/14.
    """
    from stnet_lib.experiments.validation import osipi_signal_results

    from conftest import shared_file

    results = osipi_signal_results(["stnet", "osvd"], shared_file("osipi_dsc", "dsc_data.csv"),
                                   stnet={"checkpoint": shipped.shipped_checkpoint()})
    passed = results.groupby("method")[["cbv_pass", "cbf_pass"]].sum()
    assert passed.loc["osvd"].tolist() == [14, 14]
    assert passed.loc["stnet"].tolist() == [14, 14]
    stnet = results[results["method"] == "stnet"]
    for _, series in stnet.groupby("cbv_ref"):
        assert np.all(np.diff(series.sort_values("cbf_ref")["cbf"].to_numpy()) > 0)
    # Tmax: every case has no delay and no dispersion (truth 0 s). Measured median |Tmax|: ST-Net 0.20 s
    # (0.37 without the alignment of decision 0079), oSVD 1.39 s, cSVD 1.54 s
    error = results.assign(error=results["tmax"].abs()).groupby("method")["error"].median()
    assert error["stnet"] < 0.4 and error["stnet"] < error["osvd"] / 2, error


@pytest.mark.shared_data
@pytest.mark.filterwarnings("ignore:this ST-Net was trained with the VOF")  # the automatic VOF is not applied
def test_on_the_real_slice_the_shipped_networks_cbv_is_eq4s_over_the_frames_it_reads_and_its_tmax_ranks():
    """Issue #17: the real slice (no truth), its AIF found automatically. The shipped network reads its
    time grid, 50 frames of 1.2 s (58.8 s) of the prepared 96-s series; eq. 4 over those same frames
    is the deconvolution-free CBV it can be held to (measured 2026-12-07: r 0.961), and over the whole
    series it reaches 0.920, below the 0.967 at which eq. 4 over 58.8 s agrees with eq. 4 over 96 s,
    the ceiling of any reader of that window (the recirculation after 58.8 s differs between voxels).
    """
    from stnet_lib.experiments import validation

    scan = validation.real_scan()
    _, maps = validation.real_scan_summary(scan, ["csvd", "osvd", "stnet"],
                                           stnet={"checkpoint": shipped.shipped_checkpoint()})
    agreement = validation.real_scan_agreement(scan, maps).set_index("method")
    stnet, osvd = agreement.loc["stnet"], agreement.loc["osvd"]
    assert stnet["span_read_s"] == pytest.approx(58.8, abs=0.01) and np.isnan(osvd["span_read_s"])
    assert stnet["cbv_pearson_eq4_frames_read"] >= 0.95, stnet
    ceiling = validation.eq4_window_ceiling(scan, maps["osvd"], stnet["span_read_s"])
    assert stnet["cbv_pearson_eq4"] < ceiling < 0.99
    assert osvd["cbv_pearson_eq4_frames_read"] == osvd["cbv_pearson_eq4"] > 0.9999
    # Tmax (decision 0079): the automatic AIF rises with the brain's mean (lag 0.26 s, the training median
    # 3.14 s), so the network reads it two frames earlier; its Tmax then ranks with cSVD's and oSVD's at
    # 0.72 and 0.70 (they with each other 0.91), where read as it is it ranked at 0.18 and 0.16
    from stnet_lib.curves import prepare_curves
    from stnet_lib.pipeline import compute_maps

    assert maps["stnet"].params["aif_advance_s"] == pytest.approx(2.4)
    as_is = compute_maps(prepare_curves(scan), "stnet", checkpoint=shipped.shipped_checkpoint(), align_aif=False)
    brain = scan.brain_mask
    for reference in ("csvd", "osvd"):
        aligned_rank = scc(maps[reference].tmax, maps["stnet"].tmax, mask=brain)
        assert aligned_rank > 0.65 and scc(maps[reference].tmax, as_is.tmax, mask=brain) < 0.3, reference


@pytest.mark.shared_data
@pytest.mark.filterwarnings("ignore:this ST-Net was trained with the VOF")  # OSIPI's cases have no VOF: k_AV = 1
def test_on_osipi_with_its_aif_moved_later_the_aligned_network_reads_the_negative_tmax():
    """Decision 0079 off our simulator: OSIPI's tissue (Tmax 0 s) with its AIF moved 2 s later leads it by
    2 s (truth −2 s), as the real slice's tissue leads its automatic AIF. Measured (median over the 14
    cases): aligned ST-Net −1.77 s (|error| 0.23 s), read as it is +0.35 s (its floor), oSVD −0.58 s
    (its +1.4 s bias at every delay); at delay 0: 0.20, 0.37 and 1.39 s."""
    from stnet_lib.experiments import validation

    from conftest import shared_file

    csv_path, checkpoint = shared_file("osipi_dsc", "dsc_data.csv"), shipped.shipped_checkpoint()
    runs = {"stnet": ("stnet", {"checkpoint": checkpoint}),
            "stnet_as_is": ("stnet", {"checkpoint": checkpoint, "align_aif": False}),
            "osvd": ("osvd", {"kh": 1.0, "rho": 1.0})}
    tables = [validation.osipi_tmax_by_delay([method], (0.0, 2.0), csv_path, **{method: options}).assign(method=label)
              for label, (method, options) in runs.items()]
    summary = validation.osipi_tmax_by_delay_summary(pd.concat(tables)).set_index(["method", "truth_s"])
    error, median = summary["median_abs_error_s"], summary["median_tmax_s"]
    assert (summary["cases"] == 14).all()
    assert error["stnet", -2.0] < 0.4 and error["stnet", 0.0] < 0.4
    assert median["stnet_as_is", -2.0] > 0 and error["stnet_as_is", -2.0] > 1.5  # its floor, not the truth
    assert error["osvd", -2.0] > 1.0 and error["stnet", -2.0] < error["osvd", -2.0] / 3


@pytest.mark.shared_data
def test_the_vof_warning_says_when_a_vof_was_found_and_deliberately_not_applied(unseen):
    # the shipped network was trained with eq. 8; a drawn AIF without a VOF searches none, while the real
    # slice (no masks) has a VOF found automatically, which decision 0075 records but never applies
    from stnet_lib.experiments import validation

    from conftest import shared_file

    scan, _ = unseen
    with pytest.warns(UserWarning, match="the scan has no VOF mask: k_AV = 1") as drawn:
        predict_maps(dataclasses.replace(scan, vof_mask=None), shipped.shipped_checkpoint())
    assert not any("found automatically" in str(w.message) for w in drawn)
    shared_file("real_dsc", "moyamoya_cerebellum_dsc.nii.gz")
    with pytest.warns(UserWarning, match="VOF found automatically is written beside the maps but not applied"):
        predict_maps(validation.real_scan(), shipped.shipped_checkpoint())
