"""Hypoperfusion volumes against the truth and their Bland–Altman agreement (issue #15), on hand-counted volumes."""

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from stnet_lib._validation import StnetInputError
from stnet_lib.experiments.predictions import pred_dir
from stnet_lib.experiments.volumes import bland_altman, subject_volumes, volume_agreement, volume_table
from stnet_lib.manifest import write_manifest

VOXEL_ML = 2.0 * 2.0 * 5.0 / 1000  # small_scan's 2×2×5 mm voxels


def test_bland_altman_statistics_of_a_hand_computed_example():
    # differences -2, 2, -3, 4: bias 0.25; squared deviations 5.0625 + 3.0625 + 10.5625 + 14.0625 = 32.75
    stats = bland_altman([10.0, 20.0, 30.0, 44.0, np.nan], [12.0, 18.0, 33.0, 40.0, 7.0])
    sd = np.sqrt(32.75 / 3)  # 3.3040
    assert stats["n"] == 4 and stats["bias"] == pytest.approx(0.25)
    assert stats["sd"] == pytest.approx(sd) and sd == pytest.approx(3.30404, abs=1e-5)
    assert stats["loa_low"] == pytest.approx(0.25 - 1.96 * sd) and stats["loa_low"] == pytest.approx(-6.2259, abs=1e-4)
    assert stats["loa_high"] == pytest.approx(6.7259, abs=1e-4)
    one = bland_altman([3.0], [1.0])
    assert one["bias"] == 2.0 and np.isnan(one["sd"]) and np.isnan(one["loa_high"])
    with pytest.raises(StnetInputError, match="paired"):
        bland_altman([1.0, 2.0], [1.0])


def _save(path, data, affine):
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), path)
    return path


@pytest.fixture
def cohort(small_scan):
    """Subjects a, b (test) and c (train) on small_scan's 6×5×2 grid; brain = all but voxel (0, 0, 0).

    Reference Tmax: a has 12 voxels at 12 s and 6 at 8 s (18 > 6 s, 12 > 10 s); b has nothing
    above 6 s. oSVD's Tmax: a has 10 voxels at 11 s and 10 at 7 s; b has 4 at 7 s; ST-Net only
    has maps of a (12 at 12 s, 6 at 6 s exactly: not > 6 s).
    """
    tmp, affine = small_scan["tmp"], small_scan["affine"]
    shape = (6, 5, 2)
    truth = {"a": np.full(shape, 1.0), "b": np.full(shape, 2.0)}
    truth["a"].flat[1:13], truth["a"].flat[13:19] = 12.0, 8.0
    osvd = {"a": np.full(shape, 1.0), "b": np.full(shape, 1.0)}
    osvd["a"].flat[1:11], osvd["a"].flat[11:21] = 11.0, 7.0
    osvd["b"].flat[1:5] = 7.0
    stnet = {"a": np.full(shape, 1.0)}
    stnet["a"].flat[1:13], stnet["a"].flat[13:19] = 12.0, 6.0
    for method, maps in (("osvd", osvd), ("stnet", stnet)):
        for subject_id, tmax in maps.items():
            folder = pred_dir(tmp / "runs", method) / subject_id
            folder.mkdir(parents=True)
            tmax = tmax.copy()
            tmax[0, 0, 0] = 30.0  # outside the brain: never counted
            _save(folder / "tmax.nii.gz", tmax, affine)
    rows = [{"subject_id": sid, "split": split, "dsc": small_scan["dsc"], "brain_mask": small_scan["brain"],
             "aif_mask": small_scan["aif"],
             "tmax": _save(tmp / f"tmax-{sid}.nii.gz", truth.get(sid, truth["a"]), affine),
             "te_ms": small_scan["te_ms"], "tr_s": small_scan["tr_s"]}
            for sid, split in (("a", "test"), ("b", "test"), ("c", "train"))]
    return {"manifest": write_manifest(pd.DataFrame(rows), tmp / "data_manifest.csv"), "runs": tmp / "runs"}


def test_volumes_of_every_test_subject_and_method_beside_the_truth(cohort):
    volumes = subject_volumes(cohort["manifest"], cohort["runs"], ("stnet", "osvd"))
    assert set(volumes["subject_id"]) == {"a", "b"}  # c is a training subject
    got = volumes.set_index(["subject_id", "method", "quantity"])
    assert got.loc[("a", "osvd", "tmax_gt_6s_ml"), ["estimate", "truth"]].tolist() == pytest.approx(
        [20 * VOXEL_ML, 18 * VOXEL_ML])
    assert got.loc[("a", "osvd", "tmax_gt_10s_ml"), ["estimate", "truth"]].tolist() == pytest.approx(
        [10 * VOXEL_ML, 12 * VOXEL_ML])
    assert got.loc[("a", "osvd", "hir"), ["estimate", "truth"]].tolist() == pytest.approx([0.5, 12 / 18])
    assert got.loc[("a", "stnet", "tmax_gt_6s_ml"), "estimate"] == pytest.approx(12 * VOXEL_ML)  # 6 s is not > 6 s
    assert got.loc[("b", "osvd", "tmax_gt_6s_ml"), ["estimate", "truth"]].tolist() == pytest.approx([4 * VOXEL_ML, 0.0])
    assert np.isnan(got.loc[("b", "osvd", "hir"), "truth"]) and ("b", "stnet", "hir") not in got.index
    row = got.loc[("a", "osvd", "tmax_gt_6s_ml")]
    assert row["difference"] == pytest.approx(2 * VOXEL_ML) and row["mean"] == pytest.approx(19 * VOXEL_ML)


def test_agreement_and_the_per_subject_table(cohort):
    volumes = subject_volumes(cohort["manifest"], cohort["runs"], ("stnet", "osvd"))
    agreement = volume_agreement(volumes, ("stnet", "osvd")).set_index(["method", "quantity"])
    osvd = agreement.loc[("osvd", "tmax_gt_6s_ml")]
    differences = np.array([2.0, 4.0]) * VOXEL_ML
    assert osvd["n"] == 2 and osvd["bias"] == pytest.approx(differences.mean())
    assert osvd["sd"] == pytest.approx(differences.std(ddof=1))
    assert osvd["loa_high"] == pytest.approx(differences.mean() + 1.96 * differences.std(ddof=1))
    # b has no truth Tmax > 6 s, hence no HIR pair
    assert agreement.loc[("osvd", "hir"), ["n", "truth_mean"]].tolist() == [1, pytest.approx(12 / 18)]
    assert agreement.loc[("stnet", "tmax_gt_10s_ml"), "bias"] == 0.0
    table = volume_table(volumes, ("stnet", "osvd"))
    assert list(table.columns) == ["subject_id", "quantity", "truth", "ST-Net", "oSVD"]
    assert table["quantity"].tolist() == ["Tmax > 6 s [ml]"] * 2 + ["Tmax > 10 s [ml]"] * 2 + ["HIR"] * 2
    assert np.isnan(table.loc[1, "ST-Net"]) and table.loc[1, "oSVD"] == pytest.approx(4 * VOXEL_ML)


def test_maps_on_another_grid_are_refused(cohort, small_scan):
    folder = pred_dir(cohort["runs"], "osvd") / "a"
    _save(folder / "tmax.nii.gz", np.ones((6, 5, 3)), small_scan["affine"])
    with pytest.raises(StnetInputError, match="not on the grid of the reference Tmax map"):
        subject_volumes(cohort["manifest"], cohort["runs"], ("osvd",))
