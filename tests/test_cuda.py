"""The GPU paths agree with the CPU (skipped where no CUDA device is visible, as in CI).

Every method runs the same torch code on both devices; these tests pin what differs there:
float32/float64 kernels of cuFFT and cuBLAS, bf16 autocast in ST-Net's training and inference,
and the cohort held on the device during training. Run on a lent GPU with
``pytest tests/test_cuda.py``.
"""

import numpy as np
import pytest
import torch

from stnet_lib import compute_maps, load_scan
from stnet_lib.deconvolution import deconvolve
from stnet_lib.network import predict_maps, train_from_manifest
from stnet_lib.network.checkpoint import load_checkpoint
from curves import tissue_curves
from stnet_synthetic import TE_MS, TR_S, write_cohort
from stnet_synthetic_config import TINY_TRAIN

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible (CPU-only machine)")


@pytest.mark.parametrize("method", ["ssvd", "csvd", "osvd"])
def test_svd_methods_give_the_cpus_maps(method):
    """float64 throughout: the devices agree to rounding."""
    rng = np.random.default_rng(0)
    c_aif, c_tissue = tissue_curves(rng.uniform(20, 70, 500), rng.uniform(2, 5, 500), delay_s=1.0, tr_s=1.5,
                                    n_frames=50)
    c_tissue = c_tissue + rng.normal(0, 0.02 * c_tissue.max(), c_tissue.shape)
    cpu = deconvolve(c_tissue, c_aif, 1.5, method=method, device="cpu")
    gpu = deconvolve(c_tissue, c_aif, 1.5, method=method, device="cuda")
    for name in ("cbv", "cbf", "mtt", "tmax"):
        np.testing.assert_allclose(getattr(gpu, name), getattr(cpu, name), rtol=1e-6, atol=1e-9, err_msg=name)


def test_ttv_gives_the_cpus_maps_to_float32_rounding():
    rng = np.random.default_rng(1)
    shape = (12, 12, 3)
    cbf = rng.uniform(20, 70, shape)
    cbv = rng.uniform(2, 5, shape)
    c_aif, curves = tissue_curves(cbf.ravel(), cbv.ravel(), delay_s=1.0, tr_s=1.5, n_frames=50)
    c_tissue = curves.reshape(shape + (50,)) + rng.normal(0, 0.02 * curves.max(), shape + (50,))
    cpu = deconvolve(c_tissue, c_aif, 1.5, method="ttv", device="cpu")
    gpu = deconvolve(c_tissue, c_aif, 1.5, method="ttv", device="cuda")
    relative = np.abs(gpu.cbf - cpu.cbf) / np.abs(cpu.cbf).max()
    assert np.median(relative) < 1e-4 and relative.max() < 1e-2, (np.median(relative), relative.max())
    np.testing.assert_allclose(gpu.cbv, cpu.cbv, rtol=1e-6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cuda")
    manifest = write_cohort(folder / "cohort", np.random.default_rng(5))
    best = train_from_manifest(manifest, folder / "run", TINY_TRAIN, device="cuda", progress=False)
    sub = folder / "cohort" / "sub-03"
    scan = load_scan(sub / "dsc.nii.gz", sub / "aif_mask.nii.gz", None, sub / "brain_mask.nii.gz", TE_MS, TR_S)
    return {"checkpoint": best, "scan": scan, "folder": folder}


def test_training_on_the_gpu_learns(trained):
    """bf16 autocast, cohort on the device: the supervised loss falls and the weights are finite."""
    import csv

    with open(trained["folder"] / "run" / "learning_curve.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[-1]["train_supervised"]) < float(rows[0]["train_supervised"])
    payload = load_checkpoint(trained["checkpoint"])
    assert all(torch.isfinite(w).all() for w in payload["model"].values())


def test_gpu_inference_matches_the_cpus_within_bf16_rounding(trained):
    cpu = predict_maps(trained["scan"], trained["checkpoint"], device="cpu")
    gpu = compute_maps(trained["scan"], method="stnet", checkpoint=trained["checkpoint"], device="cuda")
    brain = trained["scan"].brain_mask
    for name in ("cbv", "cbf", "tmax"):
        a, b = getattr(cpu, name)[brain], getattr(gpu, name)[brain]
        assert np.isfinite(b).all(), name
        assert np.abs(b - a).max() <= 0.03 * np.abs(a).max() + 1e-6, (name, np.abs(b - a).max(), np.abs(a).max())
        if np.ptp(a) > 1e-3 * np.abs(a).max():  # a map the tiny network did not leave flat
            assert np.corrcoef(a, b)[0, 1] > 0.99, name


def test_inputs_prepared_on_the_gpu_equal_the_numpy_ones(trained):
    from stnet_lib.network.inputs import prepare_inputs

    scan = trained["scan"]
    grid = dict(te_ms=scan.te_ms, tr_s=scan.tr_s, n_frames=30, dt_s=1.2)
    reference = prepare_inputs(scan.signal, scan.brain_mask, scan.aif_mask, **grid)
    gpu = prepare_inputs(scan.signal, scan.brain_mask, scan.aif_mask, device="cuda", **grid)
    assert gpu.volume.is_cuda
    np.testing.assert_allclose(gpu.volume.cpu().numpy(), reference.volume, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gpu.tissue_integral_mM_s, reference.tissue_integral_mM_s, rtol=1e-5, atol=1e-6)
