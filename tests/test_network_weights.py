"""Weights that ship: packing a trained checkpoint, the record, the hash check, and `stnet maps` without --checkpoint.

The network is the learning test's (``tests/stnet_learning.py``, trained once per session), packed
into a temporary folder that stands in for the package's ``stnet_lib/weights/``.
"""

import json

import numpy as np
import pytest
import torch

import stnet_lib.weights as shipped
from stnet_lib._validation import StnetInputError
from stnet_lib.cli import main
from stnet_lib.network import STNet, STNetConfig, predict_maps, save_checkpoint
from stnet_learning import split_subjects, trained_network

torch.set_num_threads(2)

METRICS_CSV = """region,map,metric,ST-Net,oSVD,p Wilcoxon (ST-Net vs oSVD)
WB,cbv,PCC,0.918 (0.024),0.836 (0.159),0.147
WB,tmax,MAE [s],0.47 (0.05),0.61 (0.20),0.031
"""


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    run = trained_network(tmp_path_factory)
    folder = tmp_path_factory.mktemp("weights")
    metrics = folder / "table2.csv"
    metrics.write_text(METRICS_CSV)
    assert main(["weights", "--pack", str(run["checkpoint"]), "--profile", "learning-test", "--cohort",
                 "tests/stnet_learning.py, 16 training subjects", "--metrics", str(metrics), "--calibrate",
                 str(run["manifest"]), "--out", str(folder)]) == 0
    return {**run, "weights": folder}


def test_the_packed_weights_and_their_record(packed, monkeypatch, capsys):
    pt = packed["weights"] / "stnet_default.pt"
    record = json.loads((packed["weights"] / "stnet_default.json").read_text())
    assert record["sha256"] == shipped.sha256(pt) and record["size_bytes"] == pt.stat().st_size < shipped.MAX_BYTES
    assert record["time_grid"] == {"n_frames": 30, "dt_s": 1.5} and record["profile"] == "learning-test"
    assert record["n_parameters"] == sum(p.numel() for p in STNet(STNetConfig.from_dict(
        torch.load(pt, weights_only=True)["config"])).parameters())
    assert record["test_metrics"] == [{"region": "WB", "map": "cbv", "metric": "PCC", "ST-Net": "0.918 (0.024)"},
                                      {"region": "WB", "map": "tmax", "metric": "MAE [s]", "ST-Net": "0.47 (0.05)"}]
    assert record["uncertainty"]["method"] == "mc_dropout" and len(record["uncertainty"]["subjects"]) == 6
    assert record["source_checkpoint"] == str(packed["checkpoint"])  # the --pack argument, not a temporary copy
    payload = torch.load(pt, weights_only=True)  # tensors, dicts, lists, numbers and strings only
    assert "optimizer" not in payload and "rng" not in payload and "uncertainty" in payload
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", packed["weights"])
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    assert "sha256 verified" in out and json.loads(out.split("\n", 1)[1]) == record


def test_stnet_maps_uses_the_shipped_weights_and_refuses_a_corrupt_file(packed, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", packed["weights"])
    sub = packed["manifest"].parent / "sub-22"
    args = ["maps", "--dsc", str(sub / "dsc.nii.gz"), "--aif-mask", str(sub / "aif_mask.nii.gz"), "--brain-mask",
            str(sub / "brain_mask.nii.gz"), "--te-ms", "30", "--tr-s", "1.5", "--field-t", "1.5", "--no-qc",
            "--method", "stnet"]
    assert main([*args, "--out", str(tmp_path / "maps")]) == 0
    sidecar = json.loads((tmp_path / "maps" / "maps.json").read_text())
    assert sidecar["params"]["checkpoint"] == str(packed["weights"] / "stnet_default.pt")
    scan, _ = split_subjects(packed["manifest"], "test")[0]
    import nibabel as nib

    direct = predict_maps(scan, packed["checkpoint"])
    written = np.asarray(nib.load(tmp_path / "maps" / "cbf.nii.gz").dataobj)
    np.testing.assert_allclose(written[scan.brain_mask], direct.cbf[scan.brain_mask], rtol=1e-5)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for name in ("stnet_default.pt", "stnet_default.json"):
        (corrupt / name).write_bytes((packed["weights"] / name).read_bytes())
    data = bytearray((corrupt / "stnet_default.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (corrupt / "stnet_default.pt").write_bytes(bytes(data))
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", corrupt)
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "bad")]) == 2
    assert "do not match their record" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", tmp_path / "none")
    assert main(["weights"]) == 2 and main([*args, "--out", str(tmp_path / "none_out")]) == 2
    assert "needs --checkpoint" in capsys.readouterr().err


def test_a_paper_size_network_packs_under_10_mb_and_a_larger_one_is_refused(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = STNet(STNetConfig(n_frames=50, dt_s=1.5))
    save_checkpoint({"config": model.config.to_dict(), "model": model.state_dict(), "epoch": 0}, tmp_path / "best.pt")
    pt, record = shipped.pack_weights(tmp_path / "best.pt", cohort="none", profile="paper", folder=tmp_path / "out")
    values = json.loads(record.read_text())
    assert values["n_parameters"] == 968_515 and 3.8e6 < values["size_bytes"] < 4.0e6  # fp32: 4 bytes each
    monkeypatch.setattr(shipped, "MAX_BYTES", 2**20)
    with pytest.raises(StnetInputError, match="under 1 MiB"):
        shipped.pack_weights(tmp_path / "best.pt", cohort="none", profile="paper", folder=tmp_path / "big")
    assert not (tmp_path / "big").exists() or not any((tmp_path / "big").iterdir())


def test_the_reports_coverage_is_measured_on_test_subjects_the_scales_were_not_fitted_on(packed):
    # oracle: the coverage at each level recomputed from the same maps with the calibrated SDs
    from stnet_lib.experiments.uncertainty import manifest_cases, uncertainty_coverage
    from stnet_lib.network.uncertainty import LEVELS, interval_coverage

    table, calibration = uncertainty_coverage(packed["manifest"], packed["checkpoint"], n_test=2)
    assert set(table["map"]) == {"cbv", "cbf", "tmax"} and sorted(set(table["nominal"])) == list(LEVELS)
    val_ids = manifest_cases(packed["manifest"], "val")[1]
    test_cases, test_ids = manifest_cases(packed["manifest"], "test", limit=2)
    assert calibration.subjects == tuple(val_ids) and not set(val_ids) & set(test_ids)
    payload = {**torch.load(packed["checkpoint"], weights_only=True), "uncertainty": calibration.to_dict()}
    errors, sds = [], []
    for scan, truth in test_cases:
        maps = predict_maps(scan, payload, uncertainty=True)
        brain = scan.brain_mask & np.isfinite(truth["tmax"])
        errors.append(maps.cbf[brain] - truth["cbf"][brain])
        sds.append(maps.extra_volumes["cbf_sd"][brain])
    row = table[(table["map"] == "cbf") & (table["nominal"] == 0.9)].iloc[0]
    assert row["observed"] == pytest.approx(interval_coverage(np.concatenate(errors), np.concatenate(sds), 0.9))
    assert 0.7 < row["observed"] <= 1.0  # scales fitted for 90 % on other subjects of the same simulator
