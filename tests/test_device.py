"""The device choice, made in one place (:func:`stnet_lib.device.resolve_device`) for deconvolution and ST-Net."""

import pytest
import torch

from stnet_lib import deconvolution
from stnet_lib.device import resolve_device
from stnet_lib.network import inference, train


def test_auto_is_cuda_exactly_when_cuda_is_available(monkeypatch):
    for available, expected in ((True, "cuda"), (False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
        assert resolve_device("auto") == torch.device(expected)
        assert resolve_device() == torch.device(expected)


@pytest.mark.parametrize("device", ["cpu", "cuda:1", torch.device("cpu")])
def test_a_named_device_is_taken_as_it_is(device):
    assert resolve_device(device) == torch.device(device)


def test_deconvolution_and_the_network_use_the_same_function():
    assert deconvolution.resolve_device is resolve_device
    assert inference.resolve_device is resolve_device and train.resolve_device is resolve_device


def test_an_unknown_device_name_is_refused_by_torch():
    with pytest.raises(RuntimeError, match="device"):
        resolve_device("gpu")
