"""The cohort on disk: determinism, resumability, atomic subjects, manifest, split, lesion volumes, command."""

import argparse
import hashlib
import json

import nibabel as nib
import numpy as np
import pytest

from stnet_lib.commands import simulate as simulate_command
from stnet_lib.manifest import load_manifest
from stnet_lib.profiles import PROFILES
from stnet_lib.simulation import cohort
from stnet_lib.simulation.cohort import root_manifest_table, simulate_cohort, subject_plan
from stnet_lib.simulation.lesion import draw_lesion
from stnet_lib.simulation.statistics import RECIPE_RANGES

#: The built-in profiles' cohorts.
COHORTS = {name: profile.cohort for name, profile in PROFILES.items()}


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def smoke_cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    table = simulate_cohort(COHORTS["smoke"], out, progress=False)
    return out, table


def test_manifest_is_valid_and_matches_the_files(smoke_cohort, caplog):
    out, table = smoke_cohort
    manifest = load_manifest(out / "data_manifest.csv")
    assert "unknown column" not in caplog.text  # every column the simulator writes is known to the loader
    assert len(manifest) == COHORTS["smoke"].n_subjects == len(table)
    for row in manifest.itertuples():
        image = nib.load(row.dsc)
        assert image.shape == COHORTS["smoke"].shape + (50,)
        assert image.header.get_zooms()[3] == pytest.approx(row.tr_s, abs=1e-6)
        record = json.loads((row.dsc.parent / "subject.json").read_text())
        assert record["acquisition"]["te_ms"] == pytest.approx(row.te_ms)
        assert "Louis Collins" in record["mni_notice"]
        lesion = np.asarray(nib.load(row.lesion_mask).dataobj) > 0
        tmax = np.asarray(nib.load(row.tmax).dataobj)
        np.testing.assert_array_equal(lesion, np.nan_to_num(tmax) > 6.0)
    assert (out / "MNI152_NOTICE.txt").read_text().startswith("Anatomy derived from the MNI ICBM152")
    assert manifest["has_lesion_label"].sum() == 4 and (manifest["split"] == "test").sum() == 2


def test_same_seed_gives_identical_files_and_a_rerun_keeps_complete_subjects(smoke_cohort, tmp_path):
    out, _ = smoke_cohort
    simulate_cohort(COHORTS["smoke"], tmp_path, limit=2, progress=False)
    for name in ("dsc.nii.gz", "tmax.nii.gz", "cbf.nii.gz"):
        assert _digest(tmp_path / "sub-002" / name) == _digest(out / "sub-002" / name)
    kept = (tmp_path / "sub-001" / "dsc.nii.gz").stat().st_mtime_ns
    broken = tmp_path / "sub-002" / "cbf.nii.gz"
    broken.write_bytes(broken.read_bytes()[:100])  # a damaged file
    (tmp_path / ".tmp-sub-003").mkdir()  # left by an interrupted run
    simulate_cohort(COHORTS["smoke"], tmp_path, limit=2, progress=False)
    assert (tmp_path / "sub-001" / "dsc.nii.gz").stat().st_mtime_ns == kept
    assert _digest(broken) == _digest(out / "sub-002" / "cbf.nii.gz")
    assert not list(tmp_path.glob(".tmp-*"))
    assert cohort.subject_is_complete(tmp_path / "sub-002", verify=True)


def test_subjects_simulated_in_parallel_processes_are_identical(smoke_cohort, tmp_path):
    """``jobs`` only changes where subjects are simulated: the files are byte-identical."""
    out, manifest = smoke_cohort
    table = simulate_cohort(COHORTS["smoke"], tmp_path, limit=3, progress=False, jobs=2)
    assert list(table["subject_id"]) == list(manifest["subject_id"][:3])
    for subject_id in table["subject_id"]:
        for name in ("dsc.nii.gz", "tmax.nii.gz", "cbf.nii.gz", "aif_mask.nii.gz"):
            assert _digest(tmp_path / subject_id / name) == _digest(out / subject_id / name), (subject_id, name)
    assert not list(tmp_path.glob(".tmp-*"))


def test_an_interrupted_run_leaves_no_half_written_subject(tmp_path, monkeypatch):
    calls = []
    real = cohort.write_subject

    def failing(subject, folder, **kwargs):
        calls.append(folder.name)
        if len(calls) == 2:
            folder.mkdir(parents=True)
            (folder / "dsc.nii.gz").write_bytes(b"partial")
            raise KeyboardInterrupt
        return real(subject, folder, **kwargs)

    monkeypatch.setattr(cohort, "write_subject", failing)
    with pytest.raises(KeyboardInterrupt):
        simulate_cohort(COHORTS["smoke"], tmp_path, limit=3, progress=False)
    assert calls == [".tmp-sub-001", ".tmp-sub-002"]
    assert (tmp_path / "sub-001" / "complete.json").is_file() and not (tmp_path / "sub-002").exists()
    monkeypatch.setattr(cohort, "write_subject", real)
    simulate_cohort(COHORTS["smoke"], tmp_path, limit=3, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["sub-001", "sub-002", "sub-003"]


def test_paper_profile_reproduces_the_papers_split():
    plan = subject_plan(COHORTS["paper"])
    plan = plan[~plan["plain_aif"]]  # the training variants of decision 0077 come after the paper's subjects
    assert len(plan) == 138 and plan["has_lesion_label"].sum() == 70
    train_val = plan[plan["split"].isin(["train", "val"])]
    test = plan[plan["split"] == "test"]
    assert len(train_val) == 52 and train_val["has_lesion_label"].all() and train_val["has_lesion"].all()
    assert len(test) == 86 and test["has_lesion_label"].sum() == 18
    assert 0.1 <= 1 - plan["has_lesion"].mean() <= 0.2  # no-lesion subjects (recipe §7)
    assert COHORTS["paper"].shape == (256, 256, 20) and COHORTS["paper"].n_frames == 50


def test_root_manifest_predicts_the_acquisition_of_the_simulated_subjects(smoke_cohort, tmp_path):
    out, table = smoke_cohort
    root = root_manifest_table(tmp_path / "data", tmp_path, COHORTS.values())
    assert len(root) == sum(p.n_total for p in COHORTS.values())
    smoke = root[root["profile"] == "smoke"].reset_index(drop=True)
    np.testing.assert_allclose(smoke["tr_s"], table["tr_s"])
    np.testing.assert_allclose(smoke["te_ms"], table["te_ms"])
    assert smoke["dsc"].iloc[0] == tmp_path / "data" / "smoke" / "sub-001" / "dsc.nii.gz"


def test_lesion_volumes_follow_the_recipe():
    """Targets: Tmax > 6 s median ≈ 95 ml (15–250), core median ≈ 25–30 ml, HIR median ≈ 0.4 (§4.2, §7)."""
    rng = np.random.default_rng(0)
    lesions = [draw_lesion(rng) for _ in range(400)]
    hypo = np.array([lesion.hypoperfusion_ml for lesion in lesions])
    core = hypo * np.array([lesion.core_fraction for lesion in lesions])
    assert RECIPE_RANGES["hypoperfusion_ml_median"][0] < np.median(hypo) < RECIPE_RANGES["hypoperfusion_ml_median"][1]
    assert RECIPE_RANGES["core_ml_median"][0] < np.median(core) < RECIPE_RANGES["core_ml_median"][1]
    assert hypo.min() >= 15 and hypo.max() <= 250 and core.max() <= 150
    assert 0.3 < np.median([lesion.hir for lesion in lesions]) < 0.5


def test_simulated_lesions_reach_their_target_volumes(smoke_cohort):
    out, table = smoke_cohort
    for row in table[table["has_lesion"]].itertuples():
        record = json.loads((out / row.subject_id / "subject.json").read_text())
        target = record["lesion_levels"]["target_volumes_ml"]
        voxel_ml = np.prod(COHORTS["smoke"].voxel_mm) / 1000
        assert row.hypoperfusion_ml == pytest.approx(target["hypoperfusion_ml"], abs=3 * voxel_ml + 0.1 * target["hypoperfusion_ml"])
        assert row.core_ml == pytest.approx(target["core_ml"], abs=2 * voxel_ml)
    assert table.loc[~table["has_lesion"], "hypoperfusion_ml"].eq(0).all()


def test_simulate_command_writes_a_cohort_and_rejects_a_bad_limit(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    simulate_command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["simulate", "--profile", "smoke", "--out", str(tmp_path), "--limit", "1", "--rapid-like"])
    assert simulate_command.run(args) == 0
    manifest = load_manifest(tmp_path / "data_manifest.csv")
    assert manifest["subject_id"].tolist() == ["sub-001"]
    assert "wrote 1 subjects" in capsys.readouterr().out
    rapid = np.asarray(nib.load(tmp_path / manifest["rapid_tmax"].iloc[0]).dataobj)
    truth = np.asarray(nib.load(manifest["tmax"].iloc[0]).dataobj)
    brain = np.isfinite(truth)
    np.testing.assert_array_equal(np.isfinite(rapid), brain)
    assert 0 < np.median(rapid[brain] - truth[brain]) < 2.5  # SVD's Tmax lags the truth by about a frame
    bad = parser.parse_args(["simulate", "--profile", "smoke", "--out", str(tmp_path), "--limit", "0"])
    with pytest.raises(ValueError, match="--limit must be a positive number"):
        simulate_command.run(bad)
    bad = parser.parse_args(["simulate", "--profile", "smoke", "--out", str(tmp_path), "--jobs", "0"])
    with pytest.raises(ValueError, match="--jobs must be a positive number"):
        simulate_command.run(bad)


def test_cohort_notebook_helpers(smoke_cohort):
    from stnet_lib.experiments import cohort_plots as plots

    out, _ = smoke_cohort
    manifest = load_manifest(out / "data_manifest.csv")
    statistics = plots.cohort_statistics_table(manifest).set_index("quantity")
    assert statistics.loc[["gm_cbf", "wm_cbf", "gm_cbv", "wm_cbv", "snr_measured / snr"], "all_in_range"].all()
    subject = plots.load_subject(out / "sub-004")
    curves = plots.region_curves(subject)
    peaks = curves.groupby("region")["concentration_mM"].max()
    assert {"AIF", "VOF", "GM", "WM", "penumbra", "core", "true C_a"} <= set(peaks.index)
    assert peaks["true C_a"] > peaks["AIF"] > 10 * peaks["GM"] and peaks["GM"] > peaks["core"]
    # non-steady first frames (1.1-1.3x S0) are left out of S0 and shown as no concentration, not a negative one
    tissue = curves[curves["region"].isin(["GM", "WM"])]
    assert tissue["concentration_mM"].min() > -0.1 * peaks[["GM", "WM"]].min()
    simulated = subject["record"]["n_non_steady_frames"]
    assert tissue[tissue["region"] == "GM"]["concentration_mM"].isna().sum() == simulated
    from test_figures import check_figure  # the rules every committed figure follows, here on a real subject

    for figure in (plots.plot_subject(subject), plots.plot_region_curves(curves), plots.plot_cohort_distributions(manifest)):
        assert check_figure(figure) == []


def test_cohort_realism_table_puts_the_cohort_beside_the_real_slice(smoke_cohort):
    """One row per realism statistic: the cohort's median and range (same function, same mask rules) and
    the real slice's value where ../shared/data is present."""
    from conftest import SHARED_DATA_DIR
    from stnet_lib.experiments.realism import REALISM_STATISTICS, cohort_realism_table

    out, _ = smoke_cohort
    real = SHARED_DATA_DIR / "real_dsc" / "moyamoya_cerebellum_dsc.nii.gz"
    table = cohort_realism_table(load_manifest(out / "data_manifest.csv"), real if real.is_file() else None)
    assert table["statistic"].tolist() == list(REALISM_STATISTICS.values())
    assert (table["subjects"] == COHORTS["smoke"].n_subjects).all()
    assert (table["cohort min"] <= table["cohort median"]).all() and (table["cohort median"] <= table["cohort max"]).all()
    first_frame = table.set_index("statistic").loc[REALISM_STATISTICS["first_frame_ratio"]]
    assert 1.0 <= first_frame["cohort median"] <= 1.3
    if real.is_file():
        assert first_frame["real slice"] == pytest.approx(1.214, abs=0.01)


def test_the_training_variants_come_after_the_papers_subjects_and_the_cohort_tables_leave_them_out():
    from stnet_lib.manifest import physiological_subjects

    profile = COHORTS["quick"]
    plan = subject_plan(profile)
    variants = plan[plan["plain_aif"]]
    assert len(plan) == profile.n_subjects + profile.n_train_variants and profile.n_train_variants > 0
    assert variants["index"].tolist() == list(range(profile.n_subjects, profile.n_total))  # the paper's keep their seeds
    assert (variants["split"] == "train").all() and variants["has_lesion"].all()
    assert variants["wide_mtt"].sum() == (profile.n_train_variants + 1) // 2 and not plan[~plan["plain_aif"]]["wide_mtt"].any()
    assert (plan["split"] == "train").sum() == profile.n_train + profile.n_train_variants
    assert not subject_plan(COHORTS["smoke"])["plain_aif"].any()
    as_read = plan.astype({"wide_mtt": str, "plain_aif": str})  # "True"/"False", as from a CSV
    assert len(physiological_subjects(as_read)) == profile.n_subjects
    config = cohort.subject_config(profile, True, plain_aif=True, wide_mtt=True)
    assert not config.realism.aif_plateau and config.realism.large_vessels and config.mtt_range_s == (2.0, 25.0)
