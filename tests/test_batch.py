"""Cohort mapping (issue #15): every subject mapped once, resumable after an interruption, equal to an
uninterrupted run."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from curves import tissue_curves
from stnet_lib import batch
from stnet_lib._validation import StnetInputError
from stnet_lib.manifest import load_manifest
from stnet_lib.signal import concentration_to_delta_r2, delta_r2_to_signal

SHAPE, N_FRAMES, TR_S, TE_MS = (8, 6, 2), 40, 1.5, 30.0
AFFINE = np.diag([2.0, 2.0, 5.0, 1.0])


def write_subject(folder, scale: float, delay_s: float):
    """A 8×6×2×40 scan (left CBF 60·scale / CBV 4, right 25·scale / 2, a delayed patch), AIF at voxel (0, 0, 0)."""
    folder.mkdir(parents=True)
    cbf = np.where(np.arange(SHAPE[0])[:, None, None] < 4, 60.0, 25.0) * scale * np.ones(SHAPE)
    cbv = np.where(np.arange(SHAPE[0])[:, None, None] < 4, 4.0, 2.0) * np.ones(SHAPE)
    c_aif, c_tissue = tissue_curves(cbf.ravel(), cbv.ravel(), tr_s=TR_S, n_frames=N_FRAMES)
    _, late = tissue_curves(cbf.ravel(), cbv.ravel(), delay_s=delay_s, tr_s=TR_S, n_frames=N_FRAMES)
    patch = np.zeros(SHAPE, bool)
    patch[5:7, 2:4] = True
    c_tissue[patch.ravel()] = late[patch.ravel()]
    delta_r2 = concentration_to_delta_r2(c_tissue, kind="tissue").reshape(SHAPE + (N_FRAMES,))
    delta_r2[0, 0, 0] = concentration_to_delta_r2(c_aif, kind="arterial")
    image = nib.Nifti1Image(delta_r2_to_signal(delta_r2, 500.0, TE_MS).astype(np.float32), AFFINE)
    image.header.set_zooms((2.0, 2.0, 5.0, TR_S))
    nib.save(image, folder / "dsc.nii.gz")
    aif, brain = np.zeros(SHAPE, np.uint8), np.ones(SHAPE, np.uint8)
    aif[0, 0, 0], brain[0, 0, 0] = 1, 0
    nib.save(nib.Nifti1Image(aif, AFFINE), folder / "aif.nii.gz")
    nib.save(nib.Nifti1Image(brain, AFFINE), folder / "brain.nii.gz")
    return {"dsc": folder / "dsc.nii.gz", "aif_mask": folder / "aif.nii.gz", "brain_mask": folder / "brain.nii.gz"}


@pytest.fixture()
def manifest(tmp_path):
    rows = []
    for index, (scale, delay_s) in enumerate(((1.0, 8.0), (0.8, 9.0), (1.2, 0.0))):
        paths = write_subject(tmp_path / "data" / f"sub-{index}", scale, delay_s)
        rows.append({"subject_id": f"sub-{index}", "split": "test", **{k: str(v) for k, v in paths.items()},
                     "te_ms": TE_MS, "tr_s": TR_S, "field_t": 1.5})
    path = tmp_path / "data" / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def outputs(folder):
    """Everything a run wrote, comparable: NIfTI arrays, JSON contents, the CSV and the QC PNG's bytes."""
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        if name.endswith(".nii.gz"):
            found[name] = np.asarray(nib.load(path).dataobj)
        elif name.endswith(".json"):
            found[name] = json.loads(path.read_text())
        else:
            found[name] = path.read_bytes()
    return found


def assert_same(first: dict, second: dict):
    assert sorted(first) == sorted(second)
    for name, value in first.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, second[name], err_msg=name)
        else:
            assert value == second[name], name


def test_a_cohort_is_mapped_into_one_folder_per_subject_with_a_summary_table(manifest, tmp_path):
    out = tmp_path / "out"
    status = batch.map_cohort(manifest, out, method="csvd")
    assert status["status"].tolist() == ["done"] * 3
    for subject in ("sub-0", "sub-1", "sub-2"):
        names = {p.name for p in (out / subject).iterdir()}
        assert {"cbv.nii.gz", "cbf.nii.gz", "mtt.nii.gz", "tmax.nii.gz", "maps.json", "summary.json", "rcbf.nii.gz",
                "rcbv.nii.gz", "qc.png", batch.DONE_MARKER} <= names
    table = pd.read_csv(out / batch.SUMMARY_TABLE)
    assert table["subject_id"].tolist() == ["sub-0", "sub-1", "sub-2"] and set(table["method"]) == {"csvd"}
    assert table.loc[2, "tmax_gt_6s_ml"] == 0.0 and table.loc[0, "tmax_gt_6s_ml"] > 0  # the delayed patch
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left
    again = batch.map_cohort(manifest, out, method="csvd")
    assert again["status"].tolist() == ["skipped"] * 3


@pytest.mark.parametrize("where", ["before the move", "after the move, before the marker"])
def test_an_interrupted_run_resumes_to_the_outputs_of_an_uninterrupted_one(manifest, tmp_path, monkeypatch, where):
    reference = tmp_path / "reference"
    batch.map_cohort(manifest, reference, method="csvd")
    out = tmp_path / "out"
    real_move, calls = batch._move_into_place, []

    def interrupted(staging, target):
        calls.append(target.name)
        if len(calls) == 2:  # the second subject: its files are all written in staging
            if where != "before the move":
                real_move(staging, target)
            raise KeyboardInterrupt  # the user's Ctrl-C or the scheduler's kill, not a subject's failure
        real_move(staging, target)

    monkeypatch.setattr(batch, "_move_into_place", interrupted)
    with pytest.raises(KeyboardInterrupt):
        batch.map_cohort(manifest, out, method="csvd")
    assert (out / "sub-0" / batch.DONE_MARKER).is_file() and not (out / "sub-1" / batch.DONE_MARKER).exists()
    monkeypatch.setattr(batch, "_move_into_place", real_move)
    status = batch.map_cohort(manifest, out, method="csvd")
    assert status["status"].tolist() == ["skipped", "done", "done"]
    assert_same(outputs(reference), outputs(out))


def test_changed_inputs_or_parameters_map_a_subject_again(manifest, tmp_path):
    out = tmp_path / "out"
    batch.map_cohort(manifest, out, method="csvd", qc=False)
    first = (out / "sub-1" / "cbf.nii.gz").stat().st_mtime_ns
    dsc = tmp_path / "data" / "sub-1" / "dsc.nii.gz"
    image = nib.load(dsc)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj) * 1.01, image.affine, image.header), dsc)
    assert batch.map_cohort(manifest, out, method="csvd", qc=False)["status"].tolist() == ["skipped", "done", "skipped"]
    assert (out / "sub-1" / "cbf.nii.gz").stat().st_mtime_ns != first
    status = batch.map_cohort(manifest, out, method="csvd", qc=False, options={"threshold": 0.2})
    assert status["status"].tolist() == ["done"] * 3
    dsc.touch()  # a new modification time, the same content: hashed again, still the same
    assert batch.map_cohort(manifest, out, method="csvd", qc=False, options={"threshold": 0.2})["status"].tolist() == [
        "skipped"] * 3


def test_one_subject_at_a_time_and_a_failing_subject_does_not_stop_the_others(manifest, tmp_path):
    out = tmp_path / "out"
    status = batch.map_cohort(manifest, out, method="csvd", subject="sub-2", qc=False)
    assert status["subject_id"].tolist() == ["sub-2"] and status["status"].tolist() == ["done"]
    assert pd.read_csv(out / batch.SUMMARY_TABLE)["subject_id"].tolist() == ["sub-2"]
    with pytest.raises(StnetInputError, match="not in the manifest"):
        batch.map_cohort(manifest, out, subject="sub-9")
    rows = load_manifest(manifest)
    (tmp_path / "data" / "sub-0" / "dsc.nii.gz").write_bytes(b"not a NIfTI")  # broken after the manifest was read
    status = batch.map_cohort(rows, out, method="csvd", qc=False)
    assert status["status"].tolist() == ["failed", "done", "skipped"]
    assert not (out / "sub-0").exists()
    with pytest.raises(StnetInputError, match="jobs"):
        batch.map_cohort(rows, out, jobs=0)


def test_parallel_processes_give_the_same_outputs(manifest, tmp_path):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    batch.map_cohort(manifest, serial, method="csvd", qc=False)
    status = batch.map_cohort(manifest, parallel, method="csvd", qc=False, jobs=2)
    assert status["status"].tolist() == ["done"] * 3
    assert_same(outputs(serial), outputs(parallel))
