"""ST-Net layers, shapes and patches (CPU shape tables; oracles: numpy slicing, hand arithmetic)."""

import numpy as np
import pytest
import torch

from stnet_lib.network.patches import PatchTable, extract_patches
from stnet_lib.network.stnet import STNet, STNetConfig

torch.set_num_threads(2)


@pytest.mark.parametrize(
    ("n_frames", "batch", "n_params"),
    [
        # 968,515 = the authors' network (reference/feasibility_cpu.md): FC1 has 64·50·256 + 256 weights
        (50, 3, 968_515),
        (30, 2, 968_515 - 64 * 20 * 256),
        (84, 1, 968_515 + 64 * 34 * 256),
    ],
)
def test_shapes_and_parameter_count(n_frames, batch, n_params):
    model = STNet(STNetConfig(n_frames=n_frames)).eval()
    patches, reference = torch.randn(batch, 1, 7, 7, n_frames), torch.randn(batch, 2, n_frames)
    assert model(patches, reference).shape == (batch, 3)
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert model.spatial(patches).shape == (batch, 64, 1, 1, n_frames)


def test_layer_list_matches_the_authors():
    model = STNet(STNetConfig())
    convs3d = [m for m in model.spatial if isinstance(m, torch.nn.Conv3d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs3d] == [
        (1, 8, (3, 3, 1), (1, 1, 0)), (8, 16, (3, 3, 1), (0, 0, 0)),
        (16, 32, (3, 3, 1), (0, 0, 0)), (32, 64, (3, 3, 1), (0, 0, 0))]
    assert model.merge[0].in_channels == 66
    assert [m.dilation[0] for m in model.wide if isinstance(m, torch.nn.Conv1d)] == [1, 3, 8, 25]
    assert [m.out_channels for m in model.local if isinstance(m, torch.nn.Conv1d)] == [64, 64, 64, 32]
    head = [type(m).__name__ for m in model.head]
    assert head == ["Dropout", "Linear", "LeakyReLU", "Dropout", "Linear"]


def test_channels_last_gives_the_same_numbers():
    torch.manual_seed(0)
    model = STNet(STNetConfig(n_frames=20)).eval()
    patches, reference = torch.randn(4, 1, 7, 7, 20), torch.randn(4, 2, 20)
    expected = model(patches, reference)
    fast = model.to(memory_format=torch.channels_last_3d)
    got = fast(patches.contiguous(memory_format=torch.channels_last_3d), reference)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_decode_inverts_encode_and_config_round_trips():
    config = STNetConfig(target_mean=(3.0, 40.0, 2.0), target_std=(1.0, 15.0, 3.0))
    model = STNet(config)
    physical = torch.tensor([[4.0, 55.0, 8.0]])
    assert torch.allclose(model.encode(physical), torch.tensor([[1.0, 1.0, 2.0]]))
    assert torch.allclose(model.decode(model.encode(physical)), physical)
    assert STNetConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(("kwargs", "match"), [({"patch_size": 5}, "patch_size must be 7"),
                                               ({"n_frames": 1}, "n_frames"),
                                               ({"target_std": (1.0, 0.0, 1.0)}, "target_std")])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        STNetConfig(**kwargs)


def test_patches_match_numpy_slicing_with_zero_padding(rng):
    volume = rng.normal(size=(6, 5, 3, 4)).astype(np.float32)
    index = np.array([[0, 0, 0], [3, 2, 1], [5, 4, 2], [2, 0, 1]])
    got = extract_patches(torch.from_numpy(volume), torch.from_numpy(index)).numpy()
    padded = np.pad(volume, ((3, 3), (3, 3), (0, 0), (0, 0)))  # zeros, the documented padding
    for n, (x, y, z) in enumerate(index):
        np.testing.assert_array_equal(got[n, 0], padded[x : x + 7, y : y + 7, z])
    assert got.shape == (4, 1, 7, 7, 4)


def test_patch_table_gathers_across_subjects(rng):
    volumes = [rng.normal(size=(4, 6, 2, 3)).astype(np.float32), rng.normal(size=(7, 3, 1, 3)).astype(np.float32)]
    table = PatchTable([torch.from_numpy(v) for v in volumes])
    subject, index = torch.tensor([1, 0, 1]), torch.tensor([[6, 2, 0], [1, 5, 1], [0, 0, 0]])
    got = table.gather(subject, index)
    for n in range(3):
        expected = extract_patches(torch.from_numpy(volumes[subject[n]]), index[n : n + 1])[0]
        torch.testing.assert_close(got[n], expected, rtol=0, atol=0)


# --- fewer outputs (the "one output against three" ablation of Fig. 3) --------------------------

@pytest.mark.parametrize("outputs", [("cbv",), ("cbf",), ("tmax",), ("cbv", "tmax")])
def test_a_network_of_fewer_outputs_has_one_head_unit_per_output(outputs):
    model = STNet(STNetConfig(n_frames=50, outputs=outputs)).eval()
    patches, reference = torch.randn(3, 1, 7, 7, 50), torch.randn(3, 2, 50)
    assert model(patches, reference).shape == (3, len(outputs))
    assert model.head[-1].out_features == len(outputs)
    # the authors' 968,515 parameters less (fc_hidden + 1) per missing output
    assert sum(p.numel() for p in model.parameters()) == 968_515 - (3 - len(outputs)) * 257
    assert model.config.target_mean == (0.0,) * len(outputs) and model.config.target_std == (1.0,) * len(outputs)


def test_a_single_output_decodes_with_its_own_statistics_and_round_trips():
    config = STNetConfig(outputs=("cbf",), target_mean=(40.0,), target_std=(15.0,))
    model = STNet(config)
    physical = torch.tensor([[55.0], [10.0]])
    assert torch.allclose(model.encode(physical), torch.tensor([[1.0], [-2.0]]))
    assert torch.allclose(model.decode(model.encode(physical)), physical)
    assert STNetConfig.from_dict(config.to_dict()) == config
    assert (config.output_index("cbf"), config.output_index("cbv")) == (0, None)
    assert STNetConfig().output_index("tmax") == 2


def test_a_config_stored_before_outputs_existed_is_a_three_output_network():
    stored = STNetConfig(target_mean=(3.0, 40.0, 2.0), target_std=(1.0, 15.0, 3.0)).to_dict()
    assert stored.pop("outputs") == ["cbv", "cbf", "tmax"]
    old = STNetConfig.from_dict(stored)
    assert old.outputs == ("cbv", "cbf", "tmax") and old.target_mean == (3.0, 40.0, 2.0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"outputs": ()}, "outputs must be a non-empty subset"),
    ({"outputs": ("mtt",)}, "outputs must be a non-empty subset"),
    ({"outputs": ("cbf", "cbv")}, "in that order"),
    ({"outputs": ("cbf", "cbf")}, "without repeats"),
    ({"outputs": ("cbf",), "target_mean": (3.0, 40.0, 2.0)}, "one value per output"),
    ({"target_std": (1.0, 2.0)}, "one value per output"),
])
def test_config_rejects_bad_outputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        STNetConfig(**kwargs)
