"""A real DSC slice (moyamoya, Huang et al. 2021, MIT), mapped as a user's own scan is: no AIF drawn.

The automatic AIF (:mod:`stnet_lib.aif`) is found on it, and every SVD method gives finite,
physiological brain medians from that AIF.
"""

import json

import nibabel as nib
import numpy as np
import pytest

from conftest import shared_file
from stnet_lib.cli import main

#: TE is not recorded for this scan: 30 ms, typical of 3 T DSC (Boxerman et al. 2020 consensus).
TYPICAL_TE_MS = 30.0
#: Brain medians must fall in these physiological ranges (grey/white matter mixture, adult). Tmax may
#: be negative (issue #15): on this slice some voxels peak more than half a frame before the
#: automatic AIF.
RANGES = {"cbv": (1.0, 10.0), "cbf": (10.0, 100.0), "mtt": (2.0, 15.0), "tmax": (-1.0, 6.0)}

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def real_maps(tmp_path_factory):
    """``stnet maps`` of the real slice with every SVD method, no AIF mask given."""
    path = shared_file("real_dsc", "moyamoya_cerebellum_dsc.nii.gz")
    folder = tmp_path_factory.mktemp("real")
    for method in ("ssvd", "csvd", "osvd"):
        status = main(["maps", "--dsc", str(path), "--te-ms", str(TYPICAL_TE_MS), "--method", method,
                       "--out", str(folder / method)])
        assert status == 0
    return path, folder


def test_automatic_aif_is_earlier_and_deeper_than_the_brain(real_maps):
    path, folder = real_maps
    record = json.loads((folder / "osvd" / "maps.json").read_text())["params"]
    assert record["aif_source"] == "automatic" and record["frames_dropped"] == 1  # frame 0 is at 1.2× S0
    aif = np.asarray(nib.load(folder / "osvd" / "aif_mask.nii.gz").dataobj) > 0
    brain = np.asarray(nib.load(folder / "osvd" / "brain_mask.nii.gz").dataobj) > 0
    assert aif.sum() == record["aif"]["voxels"] >= 1
    signal = np.asarray(nib.load(path).dataobj, dtype=np.float64)[..., 1:]
    aif_curve, brain_curve = signal[aif].mean(axis=0), signal[brain].mean(axis=0)
    # the artery fills first: it reaches half its drop earlier (between frames; a saturated AIF's
    # minimum is a plateau on the noise floor, so its argmin says nothing at TR 2 s)
    assert _half_drop_frame(aif_curve) + 0.5 < _half_drop_frame(brain_curve)
    aif_drop = 1 - aif_curve.min() / aif_curve[:8].mean()
    brain_drop = 1 - brain_curve.min() / brain_curve[:8].mean()
    assert aif_drop > 2 * brain_drop


def _half_drop_frame(curve: np.ndarray, n_baseline: int = 8) -> float:
    """Frame (interpolated) at which a signal curve first falls half way from its baseline to its minimum."""
    level = 0.5 * (curve[:n_baseline].mean() + curve.min())
    after = int(np.flatnonzero(curve < level)[0])
    return after - 1 + (curve[after - 1] - level) / (curve[after - 1] - curve[after])


@pytest.mark.parametrize("method", ["ssvd", "csvd", "osvd"])
def test_maps_from_the_automatic_aif_are_physiological(real_maps, method):
    _, folder = real_maps
    brain = np.asarray(nib.load(folder / method / "brain_mask.nii.gz").dataobj) > 0
    for name, (low, high) in RANGES.items():
        values = nib.load(folder / method / f"{name}.nii.gz").get_fdata()[brain]
        assert np.isfinite(values).mean() > 0.99, name
        assert low <= np.nanmedian(values) <= high, (name, np.nanmedian(values))
