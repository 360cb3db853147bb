"""The real slice (../shared/data/real_dsc) mapped by every method with no mask drawn by hand.

``stnet maps`` with no ``--aif-mask`` and no ``--brain-mask``: the non-steady first frame is
dropped, the brain mask, AIF and VOF are computed, and every method (ST-Net with a tiny network
trained on the tests' synthetic cohort) gives finite maps whose brain medians are physiological.
TE is not recorded for this scan: 30 ms, as the validation study assumes (``TYPICAL_TE_MS``).
"""

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import shared_file
from stnet_lib.cli import main
from stnet_lib.experiments.validation import TYPICAL_TE_MS
from stnet_lib.network import train_from_manifest
from stnet_synthetic import write_cohort
from stnet_synthetic_config import TINY_TRAIN

torch.set_num_threads(2)

#: Brain medians taken as plausible for this slice (cerebellum and temporal lobes of an adult with
#: moyamoya disease): CBV 1–10 ml/100g spans grey/white-matter mixtures from white matter's lower to
#: grey matter's upper values; CBF 8–100 ml/100g/min likewise (measured 31–43 for every method with
#: the AIF of at least 10 curves, decision 0050; 25–39 with 5 curves after decisions 0074 and 0075;
#: before them oSVD's per-sample oscillation index truncated hard at this scan's TR of 2 s and an
#: automatic VOF's k_AV of 0.80 was applied: 10.2); MTT 2–15 s from normal
#: (3–5 s) to a strongly delayed transit; Tmax 0–10 s from normal to the most delayed tissue still perfused.
RANGES = {"cbv": (1.0, 10.0), "cbf": (8.0, 100.0), "mtt": (2.0, 15.0), "tmax": (0.0, 10.0)}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """One epoch of ST-Net on the tests' synthetic cohort (30 frames of 1.5 s; the real slice's 49
    steady frames of 2 s cover that span)."""
    folder = tmp_path_factory.mktemp("stnet")
    manifest = write_cohort(folder / "cohort", np.random.default_rng(5))
    return train_from_manifest(manifest, folder / "run", TINY_TRAIN.__class__(epochs=1, batch_size=64, stride=1),
                               progress=False)


@pytest.mark.shared_data
@pytest.mark.parametrize("method", ["ssvd", "csvd", "osvd", "ttv", "stnet"])
def test_every_method_maps_the_real_slice_without_a_drawn_mask(method, tiny_checkpoint, tmp_path, capsys):
    path = shared_file("real_dsc", "moyamoya_cerebellum_dsc.nii.gz")
    out = tmp_path / method
    extra = ["--checkpoint", str(tiny_checkpoint)] if method == "stnet" else []
    status = main(["maps", "--dsc", str(path), "--te-ms", str(TYPICAL_TE_MS), "--field-t", "1.5", "--method", method,
                   "--out", str(out), *extra])
    assert status == 0, capsys.readouterr().err
    brain = nib.load(out / "brain_mask.nii.gz").get_fdata() > 0.5
    for name, (low, high) in RANGES.items():
        values = nib.load(out / f"{name}.nii.gz").get_fdata()[brain]
        assert np.isfinite(values).mean() > 0.99, name
        assert low <= np.median(values[np.isfinite(values)]) <= high, (name, np.median(values))
    params = json.loads((out / "maps.json").read_text())["params"]
    assert params["frames_dropped"] == 1 and params["frames_in"] == 50
    assert params["aif_source"] == "automatic" and params["aif"]["voxels"] >= 1
    assert {"brain", "aif"} <= set(params["computed_masks"])
    assert len(params["aif"]["signal"]) == len(params["time_s"]) == 49
    aif = nib.load(out / "aif_mask.nii.gz").get_fdata() > 0.5
    assert aif.sum() == params["aif"]["voxels"] and (out / "aif_qc.png").stat().st_size > 10_000
