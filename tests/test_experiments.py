"""The report notebooks' library: cached maps and trainings, tables beside the paper, ablations, timing, README."""

import dataclasses
import os

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from stnet_lib import paper
from stnet_lib._validation import StnetInputError
from stnet_lib.evaluation import EvaluationConfig, evaluate_manifest, evaluate_subject
from stnet_lib.deconvolution import METHODS
from stnet_lib.experiments import ablations, context, predictions, readme, subjects, tables, timing
from stnet_lib.experiments.data import held_out_subjects, subject_scan
from stnet_lib.io import load_scan
from stnet_lib.manifest import load_manifest, write_manifest
from stnet_lib.network.checkpoint import save_checkpoint
from stnet_lib.network.inference import predict_maps
from stnet_lib.network.stnet import STNet, STNetConfig
from stnet_lib.network.train import TrainConfig
from stnet_lib.pipeline import compute_maps
from stnet_lib.profiles import PROFILES


@pytest.fixture
def cohort(small_scan):
    """Two test subjects (the same 6×5×2×40 scan), labelled, with reference maps: Tmax 8 s on the right half."""
    folder = small_scan["tmp"]
    affine = small_scan["affine"]
    tmax = np.where(np.arange(6)[:, None, None] >= 3, 8.0, 1.0) * np.ones((6, 5, 2))
    maps = {"cbf": small_scan["cbf"], "cbv": small_scan["cbv"], "tmax": tmax}
    maps["mtt"] = 60 * maps["cbv"] / maps["cbf"]
    maps["lesion"] = (tmax > 6).astype(np.uint8)
    for name, data in maps.items():
        nib.save(nib.Nifti1Image(data.astype(np.float32 if name != "lesion" else np.uint8), affine), folder / f"{name}.nii.gz")
    rows = [{"subject_id": sid, "split": "test", "dsc": small_scan["dsc"], "brain_mask": small_scan["brain"],
             "aif_mask": small_scan["aif"], "lesion_mask": folder / "lesion.nii.gz",
             **{m: folder / f"{m}.nii.gz" for m in ("cbv", "cbf", "mtt", "tmax")},
             "te_ms": small_scan["te_ms"], "tr_s": small_scan["tr_s"], "has_lesion_label": True} for sid in ("a", "b")]
    path = write_manifest(pd.DataFrame(rows), folder / "data_manifest.csv")
    return {"manifest": path, "runs": folder / "runs", **small_scan}


def _random_checkpoint(path, n_frames=40, dt_s=1.5, outputs=("cbv", "cbf", "tmax")):
    torch.manual_seed(0)
    stats = {"cbv": (3.0, 1.0), "cbf": (40.0, 10.0), "tmax": (2.0, 1.0)}
    config = STNetConfig(n_frames=n_frames, dt_s=dt_s, outputs=outputs, target_mean=tuple(stats[m][0] for m in outputs),
                         target_std=tuple(stats[m][1] for m in outputs))
    weights = {k: v.detach().clone() for k, v in STNet(config).state_dict().items()}
    return save_checkpoint({"config": config.to_dict(), "model": weights}, path)


def test_a_cohort_of_ones_own_is_used_as_it_is_and_nothing_is_simulated(cohort, tmp_path):
    ctx = context("smoke", data_dir=tmp_path / "data", runs_dir=cohort["runs"], report_dir=tmp_path / "report",
                  manifest=cohort["manifest"])
    assert ctx.manifest == cohort["manifest"] and not (tmp_path / "data").exists()
    assert ctx.methods[0] == "stnet" and ctx.table_methods == tuple(m for m in ("stnet", "ttv", "osvd") if m in ctx.methods)
    assert set(ctx.baselines) | set(ctx.missing) == set(PROFILES["smoke"].baselines)
    assert set(ctx.missing) == {m for m in PROFILES["smoke"].baselines if m not in METHODS}
    assert ctx.options("stnet") == {"checkpoint": cohort["runs"] / "stnet" / "best.pt"}


# --- maps of the test subjects, cached -------------------------------------------------------

def test_maps_are_those_of_compute_maps_and_are_reused_until_an_input_or_option_changes(cohort):
    first = predictions.predict_subjects(cohort["manifest"], "csvd", cohort["runs"])
    assert list(first["status"]) == ["computed", "computed"]
    expected = compute_maps(load_scan(cohort["dsc"], cohort["aif"], brain_mask=cohort["brain"], te_ms=30.0), "csvd")
    saved = subjects.load_maps(cohort["runs"] / "pred" / "csvd" / "a")
    np.testing.assert_allclose(saved["cbf"], expected.cbf, rtol=1e-6, equal_nan=True)  # float32 on disk
    assert list(predictions.predict_subjects(cohort["manifest"], "csvd", cohort["runs"])["status"]) == ["cached"] * 2
    again = predictions.predict_subjects(cohort["manifest"], "csvd", cohort["runs"], options={"threshold": 0.2})
    assert list(again["status"]) == ["computed"] * 2
    stat = os.stat(cohort["dsc"])
    os.utime(cohort["dsc"], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert list(predictions.predict_subjects(cohort["manifest"], "csvd", cohort["runs"],
                                             options={"threshold": 0.2})["status"]) == ["computed"] * 2


def test_the_time_grid_is_covered_by_every_series(cohort, tmp_path):
    table = load_manifest(cohort["manifest"])
    short = tmp_path / "short.nii.gz"
    image = nib.load(cohort["dsc"])
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[..., :30], image.affine, image.header), short)
    table.loc[1, "dsc"], table.loc[1, "tr_s"] = short, 1.37
    path = write_manifest(table, tmp_path / "m.csv")
    # fewest frames 30; shortest span min(39·1.5, 29·1.37) = 39.73 s over 29 intervals = 1.37 → 1.3 s
    assert predictions.time_grid(path) == (30, 1.3)


def test_training_is_reused_while_valid_and_redone_when_the_settings_change(cohort, monkeypatch):
    calls = []

    def fake_train(manifest, out, cfg, *, model_config, resume, device, progress):
        calls.append(cfg)
        (out / "best.pt").write_text("weights")
        return out / "best.pt"

    monkeypatch.setattr(predictions, "train_from_manifest", fake_train)
    run = cohort["runs"] / "stnet"
    cfg = TrainConfig(epochs=1)
    assert predictions.train_stnet(cohort["manifest"], run, cfg) == run / "best.pt"
    predictions.train_stnet(cohort["manifest"], run, cfg)
    assert len(calls) == 1 and predictions.training_record(run)["complete"]
    (run / "stale.txt").write_text("from the old run")
    predictions.train_stnet(cohort["manifest"], run, TrainConfig(epochs=2))
    assert len(calls) == 2 and not (run / "stale.txt").exists()


# --- tables ------------------------------------------------------------------------------------

def test_evaluation_is_cached_and_equals_evaluate_manifest(cohort, monkeypatch):
    for method in ("ssvd", "csvd"):
        predictions.predict_subjects(cohort["manifest"], method, cohort["runs"])
    config = EvaluationConfig(convention="paper")  # the standard 2-D SSIM needs slices of 7×7 voxels
    cached = tables.evaluate_cached(cohort["manifest"], cohort["runs"], ["ssvd", "csvd"], config=config)
    direct = evaluate_manifest(load_manifest(cohort["manifest"]), predictions.pred_dirs(cohort["runs"], ["ssvd", "csvd"]),
                               config=config)
    assert len(cached) == len(direct) > 0
    np.testing.assert_allclose(cached["value"], direct["value"], equal_nan=True)
    monkeypatch.setattr(tables, "evaluate_manifest", lambda *a, **k: pytest.fail("the cache was not used"))
    again = tables.evaluate_cached(cohort["manifest"], cohort["runs"], ["ssvd", "csvd"], config=config)
    pd.testing.assert_frame_equal(again, cached)


def _results(values):
    """Per-subject rows: method → list of values over subjects, for WB SSIM of CBV."""
    return pd.DataFrame([{"subject_id": str(i), "method": m, "map": "cbv", "region": "WB", "metric": "ssim",
                          "value": v, "status": "ok", "n_voxels": 10, "convention": "paper"}
                         for m, vs in values.items() for i, v in enumerate(vs)])


def test_table2_beside_paper_sets_our_means_beside_the_papers():
    ours = _results({"stnet": [0.9, 0.7], "osvd": [0.5, 0.6]})
    table = tables.table2_beside_paper(ours, ours.assign(convention="standard"), ["stnet", "osvd"])
    row = table[(table["map"] == "CBV") & (table["metric"] == "SSIM")].iloc[0]
    assert row["paper ST-Net (n=86)"] == paper.TABLE2_WB["cbv"]["ssim"] == 0.952
    assert row["ST-Net (paper convention)"] == pytest.approx(0.8)
    assert row["oSVD (paper convention)"] == pytest.approx(0.55)
    assert np.isnan(table[(table["map"] == "CBF") & (table["metric"] == "SSIM")].iloc[0]["oSVD (paper convention)"])


def test_table1_gives_mean_std_beside_the_papers_row():
    rows = [{"subject_id": str(i), "method": "stnet", "map": "tmax", "region": "WB", "metric": "dice", "value": v,
             "status": "ok", "n_voxels": 10, "convention": "standard"} for i, v in enumerate([0.8, 0.9, 1.0])]
    table = tables.table1(pd.DataFrame(rows), ["stnet", "ttv"])
    ours, theirs = table.iloc[0], table.iloc[1]
    assert (ours["source"], ours["subjects"], ours["Dice"]) == ("ours", 3, "0.900 (0.100)")
    assert (theirs["source"], theirs["Dice"], theirs["ROC-optimal threshold [s]"]) == ("paper", "0.859", "6.484")
    assert len(table) == 2  # no TTV results: neither its row nor the paper's


def test_table2_has_one_column_per_method_and_paired_p_values():
    ours = _results({"stnet": [0.9, 0.7, 0.8, 0.95], "osvd": [0.5, 0.6, 0.55, 0.4]})
    table, tests = tables.table2(ours, ["stnet", "osvd"])
    assert list(table.columns[3:5]) == ["ST-Net", "oSVD"]
    assert table.iloc[0]["ST-Net"] == "0.838 (0.111)"
    assert tests["n_pairs"].iloc[0] == 4 and tests["comparison"].iloc[0] == "ST-Net vs oSVD"


# --- one subject ---------------------------------------------------------------------------------

def test_the_shown_slice_and_voxel_are_those_of_the_lesion():
    tmax = np.zeros((4, 4, 3))
    brain = np.ones_like(tmax, dtype=bool)
    tmax[1:3, 1:3, 2] = 9.0
    tmax[0, 0, 1] = 12.0
    assert subjects.hp_slice(tmax, brain) == 2
    assert subjects.worst_voxel(tmax, brain) == (0, 0, 1)
    brain[0, 0, 1] = False
    assert subjects.worst_voxel(tmax, brain) in {(1, 1, 2), (1, 2, 2), (2, 1, 2), (2, 2, 2)}
    assert subjects.worst_voxel(tmax, brain, slice_index=1) != (0, 0, 1)  # outside the brain now
    assert subjects.worst_voxel(tmax, np.ones_like(brain), slice_index=1) == (0, 0, 1)
    assert subjects.hp_slice(np.zeros((4, 4, 3)), brain) == 1  # no lesion: the middle slice


def test_a_voxel_curve_is_that_voxels_concentration_and_outside_the_brain_is_refused(cohort):
    scan = subject_scan(held_out_subjects(cohort["manifest"]).iloc[0])
    time_s, curves = subjects.scan_curves(scan, [(5, 4, 1)])
    assert time_s[1] == pytest.approx(1.5) and set(curves) == {"AIF", "brain mean", "voxel (5, 4, 1)"}
    assert curves["voxel (5, 4, 1)"].max() > 0
    with pytest.raises(StnetInputError, match=r"voxel \(0, 0, 0\) is outside the brain mask"):
        subjects.scan_curves(scan, [(0, 0, 0)])
    scan.signal = scan.signal.copy()
    scan.signal[..., 0] *= 1.25  # a first frame not yet at steady state: dropped, and the times say so
    time_s, curves = subjects.scan_curves(scan, [(5, 4, 1)])
    assert all(curve.shape == time_s.shape for curve in curves.values())
    assert time_s[0] == pytest.approx(scan.tr_s) and time_s.size == scan.signal.shape[-1] - 1


# --- ablations ------------------------------------------------------------------------------------

def test_ablation_scores_are_the_hp_rows_of_a_whole_brain_evaluation_and_are_cached(cohort, monkeypatch):
    plan = dataclasses.replace(PROFILES["smoke"].ablations, strides=(3,), ratios=(2.0,), physics_weights=(0.1,),
                               n_subjects=1, outputs=("all",))
    profile = dataclasses.replace(PROFILES["smoke"], ablations=plan, evaluation=EvaluationConfig(convention="paper"))
    (run,), _ = ablations.ablation_runs(profile)
    checkpoint = _random_checkpoint(cohort["runs"] / "ablations" / run.name / "best.pt")
    scores = ablations.score_ablations(cohort["manifest"], cohort["runs"], profile)
    scan = subject_scan(held_out_subjects(cohort["manifest"]).iloc[0])
    reference = subjects.reference_maps(load_manifest(cohort["manifest"]).iloc[0].to_dict())
    whole = evaluate_subject({m: reference[m] for m in ("cbv", "cbf", "tmax")}, predict_maps(scan, checkpoint),
                             brain_mask=scan.brain_mask, spacing_mm=scan.zooms_mm,
                             config=dataclasses.replace(profile.evaluation, maps=("cbv", "cbf", "tmax")))
    whole = whole[whole["region"] == "HP"]
    assert set(scores["region"]) == {"HP"} and len(scores) == len(whole) == 15
    np.testing.assert_allclose(scores["value"], whole["value"], rtol=1e-6)
    monkeypatch.setattr(ablations, "predict_maps", lambda *a, **k: pytest.fail("the cache was not used"))
    pd.testing.assert_frame_equal(ablations.score_ablations(cohort["manifest"], cohort["runs"], profile), scores)


def test_a_single_output_run_is_scored_on_its_own_map_only(cohort):
    plan = dataclasses.replace(PROFILES["smoke"].ablations, strides=(3,), ratios=(2.0,), physics_weights=(0.1,),
                               n_subjects=1, outputs=("all", "cbf"))
    profile = dataclasses.replace(PROFILES["smoke"], ablations=plan, evaluation=EvaluationConfig(convention="paper"))
    base, single = ablations.ablation_runs(profile)[0]
    assert (base.outputs, single.outputs, single.config.physics_weight) == (("cbv", "cbf", "tmax"), ("cbf",), 0.0)
    _random_checkpoint(cohort["runs"] / "ablations" / base.name / "best.pt")
    checkpoint = _random_checkpoint(cohort["runs"] / "ablations" / single.name / "best.pt", outputs=("cbf",))
    scores = ablations.score_ablations(cohort["manifest"], cohort["runs"], profile)
    assert len(scores[scores["run"] == base.name]) == 15
    mine = scores[scores["run"] == single.name]
    assert set(mine["map"]) == {"cbf"} and len(mine) == 5
    scan = subject_scan(held_out_subjects(cohort["manifest"]).iloc[0])
    reference = subjects.reference_maps(load_manifest(cohort["manifest"]).iloc[0].to_dict())
    whole = evaluate_subject({"cbf": reference["cbf"], "tmax": reference["tmax"]}, predict_maps(scan, checkpoint),
                             brain_mask=scan.brain_mask, spacing_mm=scan.zooms_mm, evaluate_segmentation=False,
                             config=dataclasses.replace(profile.evaluation, maps=("cbf",)))
    np.testing.assert_allclose(mine["value"], whole[whole["region"] == "HP"]["value"], rtol=1e-6)


def test_ablation_training_gives_each_run_its_outputs_and_the_same_sample_budget(cohort, monkeypatch):
    train = PROFILES["smoke"].train
    plan = dataclasses.replace(PROFILES["smoke"].ablations, strides=(train.stride,), ratios=(train.ratio,),
                               learning_rates=(train.lr,), physics_weights=(train.physics_weight,),
                               outputs=("all", "cbv", "tmax"), samples=40)
    profile = dataclasses.replace(PROFILES["smoke"], ablations=plan)
    calls = []

    def fake_fit(train_cohort, val_cohort, model_config, cfg, out, **kwargs):
        calls.append((model_config.outputs, model_config.target_mean, cfg.physics_weight, cfg.epochs))
        (out / "best.pt").write_text("weights")
        return out / "best.pt"

    monkeypatch.setattr(ablations, "_cohorts", lambda *args: ("train", "val"))
    monkeypatch.setattr(ablations, "sample_epoch", lambda cohort, **kwargs: np.arange(8))  # 8 samples per epoch
    monkeypatch.setattr(ablations, "fit", fake_fit)
    table = ablations.train_ablations(cohort["manifest"], cohort["runs"], profile)
    assert list(table["outputs"]) == ["cbv+cbf+tmax", "cbv", "tmax"] and list(table["epochs"]) == [5, 5, 5]
    w = train.physics_weight
    assert calls == [(("cbv", "cbf", "tmax"), (0.0,) * 3, w, 5), (("cbv",), (0.0,), w, 5), (("tmax",), (0.0,), 0.0, 5)]
    again = ablations.train_ablations(cohort["manifest"], cohort["runs"], profile)
    assert list(again["status"]) == ["cached"] * 3 and len(calls) == 3


def test_one_output_against_three_is_compared_per_map():
    from stnet_lib.plotting import plot_output_ablation

    scores = pd.DataFrame({"run": ["base"] * 4 + ["cbv1"] * 2 + ["cbf1"] * 2,
                           "map": ["cbv", "cbv", "cbf", "cbf", "cbv", "cbv", "cbf", "cbf"], "metric": "ssim",
                           "value": [0.5, 0.7, 0.6, 0.8, 0.4, 0.4, 0.9, 0.7], "subject_id": ["a", "b"] * 4})
    points = pd.DataFrame({"axis": ["stride", "outputs", "outputs", "outputs"], "value": [3, "all", "cbv", "cbf"],
                           "run": ["base", "base", "cbv1", "cbf1"]})
    summary = ablations.ablation_summary(scores, points)
    outputs = summary[summary["axis"] == "outputs"]
    assert list(outputs["value"]) == ["three outputs", "three outputs", "one output", "one output"]
    assert list(outputs["map"]) == ["cbf", "cbv", "cbv", "cbf"]  # a single-output run has its own map only
    table = ablations.output_comparison(summary)
    assert list(table["map"]) == ["cbv", "cbf"] and set(table["metric"]) == {"ssim"}
    assert table["three outputs"].tolist() == pytest.approx([0.6, 0.7])
    assert table["one output"].tolist() == pytest.approx([0.4, 0.8])
    assert table["one − three"].tolist() == pytest.approx([-0.2, 0.1]) and table["subjects"].tolist() == [2, 2]
    assert table["one output std"].tolist() == pytest.approx([0.0, np.std([0.9, 0.7], ddof=1)])
    figure = plot_output_ablation(summary, metrics=("ssim",))
    assert len(figure.axes[0].patches) == 2 * 3  # two bars per map (Tmax's are empty here)


def test_ablation_summary_averages_each_runs_subjects():
    scores = pd.DataFrame({"run": ["r1", "r1", "r2"], "map": "cbv", "metric": "ssim", "value": [0.5, 0.7, 0.9],
                           "subject_id": ["a", "b", "a"]})
    points = pd.DataFrame({"axis": ["stride", "stride", "ratio"], "value": [1, 3, 2.0], "run": ["r1", "r2", "r2"]})
    summary = ablations.ablation_summary(scores, points)
    assert summary["mean"].tolist() == pytest.approx([0.6, 0.9, 0.9])
    assert summary["n_valid"].tolist() == [2, 1, 1]


# --- timing and README -------------------------------------------------------------------------

def test_timing_is_per_10000_brain_voxels_and_names_the_device(cohort):
    table = timing.time_methods(cohort["manifest"], ["ssvd"], repeats=2)
    row = table.iloc[0]
    assert row["n_voxels"] == 59 and row["runs"] == 2
    assert row["seconds_per_10k_voxels"] == pytest.approx(row["seconds"] * 10_000 / 59)
    assert row["device"].startswith("CPU") and np.isnan(row["paper_seconds_per_10k_voxels"])
    checkpoint = _random_checkpoint(cohort["tmp"] / "random.pt")
    stnet = timing.time_methods(cohort["manifest"], ["stnet"], repeats=1, options={"stnet": {"checkpoint": checkpoint}})
    assert stnet.iloc[0]["paper_seconds_per_10k_voxels"] == paper.SECONDS_PER_10K_VOXELS["stnet"] == 0.77


def test_the_readme_sets_our_tables_beside_the_papers_and_says_what_is_missing(tmp_path):
    pd.DataFrame({"method": ["ST-Net", "ST-Net"], "source": ["ours", "paper"], "Dice": ["0.5 (0.1)", "0.859"]}).to_csv(
        tmp_path / "table1.csv", index=False)
    text = readme.write_readme(tmp_path, PROFILES["smoke"], notebooks=("table1",)).read_text()
    assert "| ST-Net | paper | 0.859 |" in text
    assert "`table2_beside_paper.csv` missing" in text and "`timing.csv` missing" in text
    assert "Profile `smoke`" in text and "exact truth" in text
    assert "`baselines_noise.csv` missing" in text


def test_the_readme_lists_each_methods_errors_over_the_snrs(tmp_path):
    """The noise study's long table (SNR × method) becomes one row per method, highest SNR first."""
    pd.DataFrame({"snr": [5.0, 20.0, 5.0, 20.0], "method": ["ssvd", "ssvd", "ttv", "ttv"],
                  "cbf_rmse": [17.85, 13.87, 14.4, 10.38], "cbf_bias": 0.0, "tmax_mae_s": [6.9, 1.35, 2.56, 1.57],
                  "noise_cbf_rmse": [19.8, 4.08, 10.71, 2.54]}).to_csv(tmp_path / "baselines_noise.csv", index=False)
    text = readme.write_readme(tmp_path, PROFILES["smoke"], notebooks=("baselines",)).read_text()
    assert "| ttv | 10.4 / 14.4 | 2.5 / 10.7 | 1.6 / 2.6 |" in text
    assert "CBF RMSE against the truth (SNR 20 / 5)" in text


def test_clicking_a_voxel_of_the_explorer_shows_that_voxels_curves():
    from matplotlib.backend_bases import MouseEvent

    from stnet_lib.plotting import plot_voxel_explorer

    image = np.zeros((6, 5, 2))
    asked = []

    def curves_of(voxel):
        if voxel[0] == 0:
            raise StnetInputError("outside the brain")
        asked.append(voxel)
        return {"voxel": np.arange(4.0)}

    figure = plot_voxel_explorer(image, curves_of, (3, 2, 1), time_s=np.arange(4.0))
    left = figure.axes[0]
    for x, y_shown in ((4, 1), (0, 0)):  # shown row 1 of the rot90 slice is y = 5 - 1 - 1 = 3
        px, py = left.transData.transform((x, y_shown))
        figure.canvas.callbacks.process("button_press_event", MouseEvent("button_press_event", figure.canvas, px, py, 1))
    assert asked == [(3, 2, 1), (4, 3, 1)]


def test_code_key_follows_the_source_that_made_a_result(tmp_path):
    """Caches are keyed on the code: editing a file under a part changes its key, other parts keep theirs."""
    import shutil

    from stnet_lib.experiments.data import PHYSICS_CODE, _PACKAGE_DIR, code_key

    copy = tmp_path / "stnet_lib"
    shutil.copytree(_PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    physics, metrics = code_key(*PHYSICS_CODE, package_dir=copy), code_key("metrics", package_dir=copy)
    assert physics == code_key(*PHYSICS_CODE) and physics != metrics
    ttv = copy / "deconvolution" / "ttv.py"
    ttv.write_text(ttv.read_text().replace("weight_temporal: float = ", "weight_temporal: float = 2 * "))
    assert code_key(*PHYSICS_CODE, package_dir=copy) != physics
    assert code_key("metrics", package_dir=copy) == metrics


def _imported_modules(entry: str) -> set[str]:
    """Every library file (path relative to ``stnet_lib/``; a package as its folder) that ``entry``
    imports, directly or through others, by its relative imports."""
    import ast

    from stnet_lib.experiments.data import _PACKAGE_DIR

    def resolve(path, node):
        base = path.parent
        for _ in range(node.level - 1):
            base = base.parent
        for part in (node.module or "").split(".") if node.module else []:
            base = base / part
        return base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"

    seen, todo = set(), [_PACKAGE_DIR / entry]
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                todo.append(resolve(path, node))
    return {p.relative_to(_PACKAGE_DIR).as_posix() for p in seen}


@pytest.mark.parametrize(("entry", "key"), [("pipeline.py", "PHYSICS_CODE"), ("network/inference.py", "NETWORK_CODE")])
def test_a_cache_key_covers_every_file_the_cached_step_runs(entry, key):
    """A map cached under a code key must be redone when any file it was computed with changes (e.g.
    the automatic AIF or the curve preparation): every library file ``entry`` imports is under a
    part of the key (``__init__`` files and the input checks aside; the pipeline's ST-Net branch
    is keyed by both keys together, ``predictions._run_key``)."""
    from stnet_lib.experiments import data

    parts = getattr(data, key) + (("network",) if key == "PHYSICS_CODE" else ())
    exempt = {"__init__.py", "_validation.py", "_files.py"}
    missing = [f for f in _imported_modules(entry)
               if f.split("/")[-1] not in exempt and not any(f == p or f.startswith(p.rstrip("/") + "/") for p in parts)]
    assert missing == [], f"{key} misses {missing}"


def test_ablations_are_scored_on_reference_tmax_subjects_when_no_test_subject_is_labelled(tmp_path):
    """A cohort of one's own without lesion labels: the test subjects with a reference Tmax; none: a clear error."""
    from stnet_synthetic import write_cohort

    from stnet_lib._validation import StnetInputError
    from stnet_lib.experiments.ablations import _scored_subjects
    from stnet_lib.manifest import load_manifest, write_manifest

    manifest = write_cohort(tmp_path / "site", np.random.default_rng(2))
    assert list(_scored_subjects(manifest, None)["subject_id"]) == ["sub-03"]  # no has_lesion_label column
    table = load_manifest(manifest).drop(columns=["cbv", "cbf", "mtt", "tmax"])
    bare = write_manifest(table, tmp_path / "site" / "bare.csv")
    with pytest.raises(StnetInputError, match="reference Tmax"):
        _scored_subjects(bare, None)


def test_the_report_readme_says_when_a_table_has_no_rows(tmp_path):
    from stnet_lib.experiments.readme import _table

    (tmp_path / "table1.csv").write_text("\n")  # what an empty DataFrame's to_csv writes
    assert "no rows for this cohort" in _table(tmp_path, "table1", "Table 1")
    pd.DataFrame({"a": [1.0]}).to_csv(tmp_path / "table2.csv", index=False)
    assert "1.000" in _table(tmp_path, "table2", "Table 2")
