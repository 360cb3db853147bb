"""Whole-brain ST-Net inference, time resampling and checkpoint errors."""

import dataclasses

import numpy as np
import pytest
import torch

from stnet_lib import cli, compute_maps, load_scan
from stnet_lib._validation import StnetInputError
import stnet_lib.network.train as train_module
from stnet_lib.network import STNetConfig, predict_maps, save_checkpoint, train_from_manifest
from stnet_lib.network.checkpoint import load_checkpoint
from stnet_lib.network.inference import CBF_FLOOR_ML_100G_MIN
from stnet_lib.network.inputs import hold_tail, resample_time
from stnet_synthetic import TE_MS, TR_S, write_cohort
from stnet_synthetic_config import TINY_TRAIN

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stnet")
    manifest = write_cohort(folder / "cohort", np.random.default_rng(5))
    best = train_from_manifest(manifest, folder / "run", TINY_TRAIN.__class__(epochs=1, batch_size=64, stride=1),
                               progress=False)
    sub = folder / "cohort" / "sub-03"
    scan = load_scan(sub / "dsc.nii.gz", sub / "aif_mask.nii.gz", None, sub / "brain_mask.nii.gz", TE_MS, TR_S)
    return {"checkpoint": best, "scan": scan, "subject": sub, "folder": folder}


def test_maps_cover_the_brain_and_obey_eq6(trained):
    scan = trained["scan"]
    maps = predict_maps(scan, trained["checkpoint"], batch_size=37)
    brain = scan.brain_mask
    for name in ("cbv", "cbf", "mtt", "tmax"):
        values = getattr(maps, name)
        assert values.shape == brain.shape and np.isnan(values[~brain]).all()
    assert np.isfinite(maps.cbv[brain]).all() and (maps.cbv[brain] >= 0).all()
    positive = brain & (maps.cbf > 0)
    np.testing.assert_allclose(maps.mtt[positive], 60 * maps.cbv[positive] / maps.cbf[positive])
    assert maps.method == "stnet" and maps.params["n_frames"] == 30


def test_a_network_predicting_no_flow_reports_the_cbf_floor_and_a_defined_mtt(trained, tmp_path):
    # the head's CBF bias pushed far negative: every voxel decodes to CBF < 0, which the authors'
    # clip at 0 would leave without an MTT (eq. 6); the floor keeps MTT = 60·CBV/floor
    payload = load_checkpoint(trained["checkpoint"])
    bias = payload["model"]["head.4.bias"].clone()
    bias[1] = -1e4
    path = save_checkpoint({**payload, "model": {**payload["model"], "head.4.bias": bias}}, tmp_path / "noflow.pt")
    maps, brain = predict_maps(trained["scan"], path), trained["scan"].brain_mask
    assert (maps.cbf[brain] == np.float32(CBF_FLOOR_ML_100G_MIN)).all()
    np.testing.assert_allclose(maps.mtt[brain], 60 * maps.cbv[brain] / maps.cbf[brain], rtol=1e-6)
    assert np.isfinite(maps.mtt[brain]).all()


def test_batch_size_does_not_change_the_maps(trained):
    # fp32: bf16's rounding depends on the kernels oneDNN picks per batch shape (test_network_learning.py bounds it)
    small = predict_maps(trained["scan"], trained["checkpoint"], batch_size=5, precision="fp32")
    large = predict_maps(trained["scan"], trained["checkpoint"], batch_size=4096, precision="fp32")
    np.testing.assert_allclose(small.cbf, large.cbf, rtol=1e-5, equal_nan=True)
    with pytest.raises(StnetInputError, match="batch_size must be a positive"):
        predict_maps(trained["scan"], trained["checkpoint"], batch_size=-3)
    with pytest.raises(StnetInputError, match="precision must be one of"):
        predict_maps(trained["scan"], trained["checkpoint"], precision="fp16")
    region = np.zeros(small.cbf.shape, bool)
    region[2:5, 3:8] = True
    part = predict_maps(trained["scan"], trained["checkpoint"], region=region, precision="fp32")
    inside = region & trained["scan"].brain_mask
    np.testing.assert_allclose(part.tmax[inside], large.tmax[inside], rtol=1e-5)
    assert np.isnan(part.tmax[~inside]).all()


def test_compute_maps_and_the_command_dispatch_to_stnet(trained, tmp_path):
    direct = predict_maps(trained["scan"], trained["checkpoint"])
    via = compute_maps(trained["scan"], method="stnet", checkpoint=trained["checkpoint"])
    np.testing.assert_array_equal(via.tmax, direct.tmax)
    sub = trained["subject"]
    status = cli.main(["maps", "--dsc", str(sub / "dsc.nii.gz"), "--aif-mask", str(sub / "aif_mask.nii.gz"),
                       "--brain-mask", str(sub / "brain_mask.nii.gz"), "--te-ms", str(TE_MS), "--method", "stnet",
                       "--checkpoint", str(trained["checkpoint"]), "--out", str(tmp_path / "maps")])
    assert status == 0 and (tmp_path / "maps" / "tmax.nii.gz").is_file()


def test_a_finer_time_grid_is_resampled_onto_the_checkpoints(trained):
    scan = trained["scan"]
    fine_time = np.arange(59) * TR_S / 2
    coarse_time = np.arange(30) * TR_S
    fine = np.stack([np.interp(fine_time, coarse_time, c) for c in scan.signal.reshape(-1, 30)])
    fine_scan = type(scan)(**{**scan.__dict__, "signal": fine.reshape(scan.signal.shape[:3] + (59,)).astype(np.float32),
                              "tr_s": TR_S / 2})
    np.testing.assert_allclose(resample_time(fine_scan.signal, TR_S / 2, 30, TR_S), scan.signal, rtol=1e-5)
    expected = predict_maps(scan, trained["checkpoint"])
    got = predict_maps(fine_scan, trained["checkpoint"])
    np.testing.assert_allclose(got.cbv, expected.cbv, rtol=1e-4, atol=1e-4, equal_nan=True)


def test_a_too_short_scan_is_refused(trained):
    scan = trained["scan"]
    short = type(scan)(**{**scan.__dict__, "signal": scan.signal[..., :20]})
    with pytest.raises(StnetInputError, match="covers 28.5 s"):
        predict_maps(short, trained["checkpoint"])


def test_a_scan_a_little_shorter_than_the_window_has_its_tail_held(trained):
    """Two frames short (a realistic series loses its non-steady first frames): the plateau is held, and the
    maps stay close to those of the full series; the seconds held are recorded."""
    scan = trained["scan"]
    short = type(scan)(**{**scan.__dict__, "signal": scan.signal[..., :28]})
    expected, got = predict_maps(scan, trained["checkpoint"]), predict_maps(short, trained["checkpoint"])
    assert got.params["tail_held_s"] == pytest.approx(2 * TR_S)
    assert expected.params["tail_held_s"] == 0.0
    brain = np.isfinite(expected.cbv)
    for name in ("cbv", "cbf"):
        relative = np.abs(getattr(got, name)[brain] / getattr(expected, name)[brain] - 1)
        assert np.median(relative) < 0.1, name


def test_holding_the_tail_is_refused_where_the_bolus_would_be_cut():
    time_s = np.arange(30) * 1.5
    arterial = 100 - 60 * np.exp(-0.5 * ((time_s - 38) / 3) ** 2)  # peaks 5.5 s before the end
    signal = np.tile(arterial, (2, 2, 1, 1)).astype(np.float32)
    aif = np.ones((2, 2, 1), dtype=bool)
    with pytest.raises(StnetInputError, match="peaks 6 s before the end"):
        hold_tail(signal, aif, 1.5, 32, 1.5)
    early = np.tile(100 - 60 * np.exp(-0.5 * ((time_s - 12) / 3) ** 2), (2, 2, 1, 1)).astype(np.float32)
    held, held_s = hold_tail(early, aif, 1.5, 32, 1.5)
    assert held.shape[-1] == 32 and held_s == pytest.approx(3.0)
    np.testing.assert_allclose(held[..., 30:], early[..., -3:].mean(-1, keepdims=True).repeat(2, -1))


def test_resampling_interpolates_linearly():
    curves = np.arange(12, dtype=float).reshape(2, 6) * 2.0  # slope 2 per frame of 1 s
    np.testing.assert_allclose(resample_time(curves, 1.0, 4, 1.5), 2.0 * np.arange(4) * 1.5 + [[0], [12]])
    assert resample_time(curves, 1.0, 4, 1.0).shape == (2, 4)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_checkpoint_errors_are_clear(trained, tmp_path):
    good = load_checkpoint(trained["checkpoint"])
    with pytest.raises(StnetInputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(StnetInputError, match="corrupt"):
        load_checkpoint(_write(tmp_path / "junk.pt", b"not a checkpoint"))
    truncated = trained["checkpoint"].read_bytes()[:5000]
    with pytest.raises(StnetInputError, match="corrupt"):
        load_checkpoint(_write(tmp_path / "truncated.pt", truncated))
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(StnetInputError, match="not an ST-Net checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"format": "stnet-checkpoint", "format_version": 99}, tmp_path / "future.pt")
    with pytest.raises(StnetInputError, match="format version 99"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save({"format": "stnet-checkpoint", "format_version": 1, "config": good["config"],
                "model": good["model"], "evil": np.random.default_rng(0)}, tmp_path / "pickled.pt")
    with pytest.raises(StnetInputError, match="corrupt or not a torch file"):  # weights_only refuses objects
        load_checkpoint(tmp_path / "pickled.pt")
    incompatible = {**good, "config": {**good["config"], "temporal_channels": 32}}
    save_checkpoint(incompatible, tmp_path / "incompatible.pt")
    with pytest.raises(StnetInputError, match="does not fit"):
        predict_maps(trained["scan"], tmp_path / "incompatible.pt")


# --- networks of fewer outputs (Fig. 3) and checkpoints from before ``outputs`` ------------------

@pytest.mark.parametrize("outputs", [("cbv",), ("cbf",), ("tmax",), ("cbv", "cbf")])
def test_a_network_of_fewer_outputs_predicts_only_its_maps(trained, tmp_path, outputs):
    # oracle: the trained three-output network cut down to the head rows of ``outputs`` must give
    # exactly those maps of the whole network; the others are NaN (MTT needs CBV and CBF)
    full = load_checkpoint(trained["checkpoint"])
    config = STNetConfig.from_dict(full["config"])
    rows = [("cbv", "cbf", "tmax").index(name) for name in outputs]
    part_config = dataclasses.replace(config, outputs=outputs, target_mean=tuple(config.target_mean[r] for r in rows),
                                      target_std=tuple(config.target_std[r] for r in rows))
    weights = {**full["model"], "head.4.weight": full["model"]["head.4.weight"][rows],
               "head.4.bias": full["model"]["head.4.bias"][rows]}
    path = save_checkpoint({**full, "config": part_config.to_dict(), "model": weights}, tmp_path / "part.pt")
    assert STNetConfig.from_dict(load_checkpoint(path)["config"]) == part_config  # checkpoint round trip
    whole, part = predict_maps(trained["scan"], trained["checkpoint"]), predict_maps(trained["scan"], path)
    brain = trained["scan"].brain_mask
    for name in ("cbv", "cbf", "tmax"):
        if name in outputs:
            np.testing.assert_allclose(getattr(part, name), getattr(whole, name), rtol=1e-5, equal_nan=True)
            assert np.isfinite(getattr(part, name)[brain]).all()
        else:
            assert np.isnan(getattr(part, name)).all()
    if {"cbv", "cbf"} <= set(outputs):
        np.testing.assert_allclose(part.mtt, whole.mtt, rtol=1e-5, equal_nan=True)
    else:
        assert np.isnan(part.mtt).all()
    assert part.params["outputs"] == list(outputs) and whole.params["outputs"] == ["cbv", "cbf", "tmax"]


def test_a_checkpoint_from_before_outputs_existed_is_a_three_output_network(trained, tmp_path):
    payload = load_checkpoint(trained["checkpoint"])
    old_config = {k: v for k, v in payload["config"].items() if k != "outputs"}
    old = save_checkpoint({**payload, "config": old_config}, tmp_path / "old.pt")
    expected, got = predict_maps(trained["scan"], trained["checkpoint"]), predict_maps(trained["scan"], old)
    for name in ("cbv", "cbf", "mtt", "tmax"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
    assert train_module._same_config(old_config, STNetConfig.from_dict(payload["config"]))  # resumable


def test_the_aif_alignment_moves_only_what_it_can_time_and_records_why(trained, tmp_path):
    """Decision 0079's guards: a reference far above the scan's lag moves the AIF at most by the tail that
    training held; a signal-ratio network (whose inputs fall during the bolus) is never aligned; and the
    maps say which happened."""
    payload = load_checkpoint(trained["checkpoint"])
    scan = trained["scan"]
    late = save_checkpoint({**payload, "arrival": {**payload["arrival"], "lag_median_s": 60.0}}, tmp_path / "late.pt")
    capped = predict_maps(scan, late)
    held = payload["train_config"]["aif_shift_frames"] + payload["train_config"]["time_shift_frames"]
    assert capped.params["aif_alignment"] == "on" and capped.params["aif_advance_wanted_s"] > 30
    assert capped.params["aif_advance_s"] == pytest.approx(held * payload["config"]["dt_s"])
    as_found = predict_maps(scan, late, align_aif=False)
    assert as_found.params["aif_alignment"] == "off" and as_found.params["aif_advance_s"] == 0
    if held:  # Tmax is moved back by exactly the advance (the network saw the AIF that much earlier)
        assert not np.allclose(capped.tmax[scan.brain_mask], as_found.tmax[scan.brain_mask])
    config = {**payload["config"], "input_normalisation": "signal_ratio"}
    ratio = predict_maps(scan, save_checkpoint({**payload, "config": config, "arrival": payload["arrival"]},
                                               tmp_path / "ratio.pt"))
    assert ratio.params["aif_alignment"] == "no arrival reference" and ratio.params["aif_advance_s"] == 0


def test_a_bf16_table_gives_the_autocast_networks_outputs_and_gradients_bit_for_bit():
    # inference and GPU training store the series in bf16 where the network runs under bf16 autocast:
    # the first convolution rounds its input to bf16 anyway, so nothing may change but the bytes gathered
    from stnet_lib.network.inference import _forward
    from stnet_lib.network.patches import PatchTable
    from stnet_lib.network.stnet import STNet

    rng = np.random.default_rng(3)
    volume = torch.from_numpy(rng.uniform(0.2, 1.5, (12, 11, 2, 20)).astype(np.float32))
    torch.manual_seed(0)
    model = STNet(STNetConfig(n_frames=20, dropout=0.0)).eval().to(memory_format=torch.channels_last_3d)
    index = torch.from_numpy(np.argwhere(np.ones((12, 11, 2), bool))[::3])
    baseline, aif = torch.rand(len(index)), torch.rand(20)
    fp32, bf16 = PatchTable([volume]), PatchTable([volume]).to("cpu", torch.bfloat16)
    assert bf16.rows.dtype == torch.bfloat16 and bf16.rows.nbytes * 2 == fp32.rows.nbytes
    with torch.inference_mode():
        want = _forward(model, fp32, index, baseline, aif, bf16=True)
        got = _forward(model, bf16, index, baseline, aif, bf16=True)
        fp32_out = _forward(model, fp32, index, baseline, aif, bf16=False)
    assert torch.equal(got, want)
    assert not torch.equal(got, fp32_out)  # the bf16 path did run in bf16
    with torch.inference_mode():  # a bf16 table read in fp32 (predict_voxels with precision="fp32") runs, in fp32
        rounded = PatchTable([volume.bfloat16().float()])
        torch.testing.assert_close(_forward(model, bf16, index, baseline, aif, bf16=False),
                                   _forward(model, rounded, index, baseline, aif, bf16=False), rtol=0, atol=0)
    # training: the same loss and weight gradients from either table under autocast
    model.train()
    subject = torch.zeros(len(index), dtype=torch.long)
    reference = torch.stack([baseline[:, None].expand(-1, 20), aif.expand(len(index), -1)], dim=1)
    grads = []
    for table in (fp32, bf16):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(table.gather(subject, index), reference).float().square().mean()
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads))
