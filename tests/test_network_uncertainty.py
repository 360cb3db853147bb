"""ST-Net's per-voxel uncertainty (Monte-Carlo dropout, recalibrated) on the learning test's network.

The network of ``tests/stnet_learning.py`` (trained once per session), its SD scales fitted on
the 6 validation subjects (1,716 brain voxels) and the coverage measured on the 6 test subjects
(1,716 other voxels). Measured (30 dropout samples): scales CBV 1.82, CBF 4.47, Tmax 1.35 (the
raw 90 % intervals covered 73 %, 46 % and 83 % of the validation voxels: MC dropout alone is
under-dispersed); on the test voxels the calibrated intervals cover

=======  =====  =====  =====  =====  =====  =====  =====
nominal  0.50   0.60   0.70   0.80   0.90   0.95   0.99
=======  =====  =====  =====  =====  =====  =====  =====
CBV      0.65   0.73   0.81   0.87   0.93   0.95   0.98
CBF      0.65   0.72   0.80   0.86   0.92   0.95   0.98
Tmax     0.58   0.67   0.76   0.83   0.90   0.93   0.97
=======  =====  =====  =====  =====  =====  =====  =====

(errors more heavy-tailed than a normal: too wide at 50 %, a little narrow at 99 %). The
coverage of unseen subjects moves by a few points with the draw of subjects (with 2 validation
and 2 test subjects it ranged 0.86–0.95 between training runs), hence 6 of each.
"""

import numpy as np
import pytest
import torch

from stnet_lib._validation import StnetInputError
from stnet_lib.network import load_checkpoint, predict_maps
from stnet_lib.network.uncertainty import (LEVELS, Calibration, pooled_estimate_errors, calibrate_checkpoint, coverage_table,
                                           fit_calibration, fit_scale, plot_reliability, z_value)
from stnet_learning import split_subjects, trained_network

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    run = trained_network(tmp_path_factory)
    val, test = split_subjects(run["manifest"], "val"), split_subjects(run["manifest"], "test")
    out = run["folder"] / "calibrated.pt"
    calibration = calibrate_checkpoint(run["checkpoint"], val, out=out, subject_ids=[f"sub-{i}" for i in range(16, 22)])
    return {**run, "calibrated": out, "calibration": calibration, "test": test}


def test_only_an_uncalibrated_checkpoint_in_use_warns_not_its_calibration(calibrated, caplog):
    scan = calibrated["test"][0][0]
    with caplog.at_level("WARNING", logger="stnet_lib.network.uncertainty"):
        fit_calibration(calibrated["checkpoint"], calibrated["test"][:1], n_samples=4)
    assert "no uncertainty calibration" not in caplog.text  # sampling the raw network is the calibration
    with caplog.at_level("WARNING", logger="stnet_lib.network.uncertainty"):
        predict_maps(scan, calibrated["checkpoint"], uncertainty=True, mc_samples=4)
    assert caplog.text.count("no uncertainty calibration") == 1


def test_calibrated_90_percent_intervals_cover_85_to_95_percent_of_unseen_voxels(calibrated):
    errors, sds = pooled_estimate_errors(calibrated["test"], lambda scan: predict_maps(scan, calibrated["calibrated"],
                                                                        uncertainty=True))
    table = coverage_table(errors, sds)
    at_90 = table[table["nominal"] == 0.9].set_index("map")["observed"]
    assert set(at_90.index) == {"cbv", "cbf", "tmax"}
    assert ((at_90 >= 0.85) & (at_90 <= 0.95)).all(), at_90
    raw = calibrated["calibration"].fitted_coverage
    assert raw["cbf"] < 0.8 and raw["cbv"] < 0.85  # MC dropout alone is under-dispersed for CBV and CBF
    assert set(table["nominal"]) == set(LEVELS) and (table["n_voxels"] == 6 * 286).all()


def test_sd_maps_are_positive_in_the_brain_reproducible_and_stored_safely(calibrated):
    scan, _ = calibrated["test"][0]
    maps = predict_maps(scan, calibrated["calibrated"], uncertainty=True, precision="fp32", batch_size=50)
    again = predict_maps(scan, calibrated["calibrated"], uncertainty=True, precision="fp32", batch_size=4096)
    brain = scan.brain_mask
    for name in ("cbv", "cbf", "tmax"):
        sd = maps.extra_volumes[f"{name}_sd"]
        assert np.isnan(sd[~brain]).all() and (sd[brain] > 0).all()
        # one set of masks per thinned network, whatever the batch: the same SDs
        np.testing.assert_allclose(again.extra_volumes[f"{name}_sd"][brain], sd[brain], rtol=1e-4)
    record = maps.params["uncertainty"]
    assert record["calibrated"] and record["n_samples"] == 30 and record["scale"]["cbf"] > 1
    stored = load_checkpoint(calibrated["calibrated"])["uncertainty"]  # torch.load(weights_only=True)
    assert Calibration.from_dict(stored) == calibrated["calibration"]
    assert "cbv_sd" not in predict_maps(scan, calibrated["calibrated"]).extra_volumes


def test_a_network_without_dropout_has_no_mc_uncertainty(calibrated):
    payload = load_checkpoint(calibrated["checkpoint"])
    payload = {**payload, "config": {**payload["config"], "dropout": 0.0}}
    with pytest.raises(StnetInputError, match="without dropout"):
        predict_maps(calibrated["test"][0][0], payload, uncertainty=True)


def test_scale_and_coverage_on_normal_errors():
    rng = np.random.default_rng(0)
    sd = rng.uniform(0.5, 2.0, 200_000)
    error = rng.normal(0, 2.5 * sd)  # the raw SD is 2.5 times too small
    assert fit_scale(error, sd, 0.9) == pytest.approx(2.5, rel=0.02)
    table = coverage_table({"cbf": error}, {"cbf": 2.5 * sd})
    np.testing.assert_allclose(table["observed"], table["nominal"], atol=0.005)
    assert z_value(0.9) == pytest.approx(1.6449, abs=1e-4)
    with pytest.raises(StnetInputError, match="too few voxels"):
        fit_scale(error[:5], sd[:5])


def test_the_reliability_plot_has_labelled_axes():
    rows = coverage_table({"cbv": np.array([0.1, -0.3, 2.0]), "tmax": np.array([0.5, 0.1, -0.2])},
                          {"cbv": np.ones(3), "tmax": np.ones(3)}, levels=(0.5, 0.9))
    fig = plot_reliability(rows)
    ax = fig.axes[0]
    assert "nominal" in ax.get_xlabel() and "observed" in ax.get_ylabel() and ax.get_title()
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"CBV", "Tmax", "perfect calibration"}


def test_stnet_maps_uncertainty_writes_the_sd_maps(calibrated, tmp_path, capsys):
    import json

    import nibabel as nib

    from stnet_lib.cli import main

    sub = calibrated["manifest"].parent / "sub-22"  # a test subject
    common = ["maps", "--dsc", str(sub / "dsc.nii.gz"), "--aif-mask", str(sub / "aif_mask.nii.gz"), "--brain-mask",
              str(sub / "brain_mask.nii.gz"), "--te-ms", "30", "--tr-s", "1.5", "--field-t", "1.5", "--no-qc"]
    assert main([*common, "--method", "stnet", "--checkpoint", str(calibrated["calibrated"]), "--uncertainty",
                 "--out", str(tmp_path / "maps")]) == 0
    brain = np.asarray(nib.load(sub / "brain_mask.nii.gz").dataobj) > 0
    for name in ("cbv_sd", "cbf_sd", "tmax_sd"):
        sd = np.asarray(nib.load(tmp_path / "maps" / f"{name}.nii.gz").dataobj)
        assert (sd[brain] > 0).all() and np.isnan(sd[~brain]).all()
    assert json.loads((tmp_path / "maps" / "maps.json").read_text())["params"]["uncertainty"]["calibrated"]
    assert main([*common, "--method", "osvd", "--uncertainty", "--out", str(tmp_path / "osvd")]) == 2
    assert "use it with --method stnet" in capsys.readouterr().err and not (tmp_path / "osvd").exists()
