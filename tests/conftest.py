"""Shared fixtures: a seeded rng, the external validation data, a small NIfTI scan on disk."""

import sys
from pathlib import Path

import matplotlib
import nibabel as nib
import numpy as np
import pytest

matplotlib.use("Agg")
sys.path.insert(0, str(Path(__file__).parent))  # tests/curves.py: the independent forward model

from curves import gamma_variate, tissue_curves  # noqa: E402

from stnet_lib.paths import SHARED_DATA_DIR  # noqa: E402
from stnet_lib.signal import concentration_to_delta_r2, delta_r2_to_signal  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(20211101)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def shared_file(*parts) -> Path:
    """A file of ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA_DIR.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"external validation data absent: {path} (set STNET_SHARED_DATA to its folder)")
    return path


@pytest.fixture
def small_scan(tmp_path):
    """A 6×5×2×40 DSC scan on disk (TR 1.5 s, TE 30 ms) with known CBF/CBV, its AIF and brain masks.

    Left half CBF 60 / CBV 4 (grey-matter-like), right half CBF 25 / CBV 2, no delay; S0 = 500;
    voxel (0, 0, 0) is the artery. Returns a dict of paths and the truth.
    """
    shape, n_frames, tr_s, te_ms = (6, 5, 2), 40, 1.5, 30.0
    cbf = np.where(np.arange(shape[0])[:, None, None] < 3, 60.0, 25.0) * np.ones(shape)
    cbv = np.where(cbf > 30, 4.0, 2.0)
    c_aif, c_tissue = tissue_curves(cbf.ravel(), cbv.ravel(), tr_s=tr_s, n_frames=n_frames)
    delta_r2 = concentration_to_delta_r2(c_tissue, kind="tissue").reshape(shape + (n_frames,))
    delta_r2[0, 0, 0] = concentration_to_delta_r2(c_aif, kind="arterial")
    signal = delta_r2_to_signal(delta_r2, 500.0, te_ms)
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    paths = {"dsc": tmp_path / "dsc.nii.gz", "aif": tmp_path / "aif.nii.gz", "brain": tmp_path / "brain.nii.gz"}
    image = nib.Nifti1Image(signal.astype(np.float32), affine)
    image.header.set_zooms((2.0, 2.0, 5.0, tr_s))
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, paths["dsc"])
    aif = np.zeros(shape, np.uint8)
    aif[0, 0, 0] = 1
    brain = np.ones(shape, np.uint8)
    brain[0, 0, 0] = 0
    nib.save(nib.Nifti1Image(aif, affine), paths["aif"])
    nib.save(nib.Nifti1Image(brain, affine), paths["brain"])
    return {**paths, "cbf": cbf, "cbv": cbv, "affine": affine, "te_ms": te_ms, "tr_s": tr_s, "tmp": tmp_path}


__all__ = ["gamma_variate", "tissue_curves", "shared_file"]
