"""Evaluation tables: rows equal the metric functions, the empty-mask policy is visible, summaries
and paired tests match scipy, and ``stnet evaluate`` writes its tables from a manifest."""

import argparse

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stnet_lib import metrics
from stnet_lib._validation import StnetInputError
from stnet_lib.commands import evaluate as evaluate_command
from stnet_lib.evaluation import (
    AGREEMENT_METRICS, RESULT_COLUMNS, SEGMENTATION_METRICS, EvaluationConfig, SubjectMaps,
    evaluate_manifest, evaluate_set, evaluate_subject,
)
from stnet_lib.experiments.evaluation_tables import format_table, to_markdown
from stnet_lib.manifest import MANIFEST_COLUMNS
from stnet_lib.statistics import paired_tests, summarize

SHAPE = (16, 14, 4)
SPACING = (1.5, 1.5, 5.0)


def _subject(rng, *, lesion=True):
    """Reference maps of a box brain with a hypoperfused block (Tmax 8–10 s) if ``lesion``."""
    brain = np.zeros(SHAPE, bool)
    brain[2:14, 2:12, :] = True
    cbf = rng.uniform(20.0, 70.0, SHAPE)
    cbv = rng.uniform(2.0, 5.0, SHAPE)
    tmax = rng.uniform(0.0, 3.0, SHAPE)
    if lesion:
        tmax[4:9, 4:9, 1:3] = rng.uniform(8.0, 10.0, (5, 5, 2))
    reference = {"cbv": cbv, "cbf": cbf, "mtt": 60 * cbv / cbf, "tmax": tmax}
    return {k: np.where(brain, v, np.nan) for k, v in reference.items()}, brain


def _noisy(reference, rng, sigma=0.1):
    return {k: v * (1 + rng.normal(0.0, sigma, v.shape)) for k, v in reference.items()}


def _value(table, map_, region, metric):
    row = table[(table["map"] == map_) & (table["region"] == region) & (table["metric"] == metric)]
    assert len(row) == 1
    return row.iloc[0]


def test_subject_rows_equal_the_metric_functions(rng):
    reference, brain = _subject(rng)
    estimate = _noisy(reference, rng)
    table = evaluate_subject(reference, estimate, brain_mask=brain, spacing_mm=SPACING,
                             subject_id="s1", method="m")
    assert tuple(table.columns) == RESULT_COLUMNS
    assert len(table) == 4 * 2 * len(AGREEMENT_METRICS) + len(SEGMENTATION_METRICS)
    hp = metrics.hypoperfusion_mask(reference["tmax"], mask=brain)
    span = np.nanmax(reference["cbf"]) - np.nanmin(reference["cbf"])
    row = _value(table, "cbf", "HP", "psnr")
    assert row["value"] == pytest.approx(metrics.psnr(reference["cbf"], estimate["cbf"], mask=hp, data_range=span))
    assert (row["status"], row["n_voxels"]) == ("ok", hp.sum())
    assert _value(table, "cbv", "WB", "ssim")["value"] == pytest.approx(
        metrics.ssim(reference["cbv"], estimate["cbv"], mask=brain, data_range=np.ptp(reference["cbv"][brain])))
    assert _value(table, "tmax", "WB", "auc")["value"] == pytest.approx(metrics.auc(hp, estimate["tmax"], mask=brain))
    assert _value(table, "tmax", "WB", "hd95_mm")["value"] == pytest.approx(
        metrics.hd95(hp, metrics.hypoperfusion_mask(estimate["tmax"], mask=brain), spacing=SPACING))
    assert set(table["status"]) == {"ok"}


def test_perfect_estimate(rng):
    reference, brain = _subject(rng)
    table = evaluate_subject(reference, reference, brain_mask=brain, spacing_mm=SPACING)
    values = table.set_index(["map", "region", "metric"])["value"]
    np.testing.assert_allclose(values.xs("ssim", level="metric"), 1.0)
    assert np.all(values.xs("psnr", level="metric") == np.inf)
    assert np.all(values.xs("nrmse", level="metric") == 0.0)
    for metric, expected in {"dice": 1.0, "iou": 1.0, "hd95_mm": 0.0, "auc": 1.0}.items():
        assert values[("tmax", "WB", metric)] == expected


def test_empty_masks_are_counted_not_dropped(rng):
    reference, brain = _subject(rng, lesion=False)  # no reference hypoperfusion
    estimate = dict(reference, tmax=np.where(brain, 7.0, np.nan))  # everything called hypoperfused
    table = evaluate_subject(reference, estimate, brain_mask=brain, spacing_mm=SPACING)
    hp_rows = table[table["region"] == "HP"]
    assert set(hp_rows["status"]) == {"empty_region"} and hp_rows["value"].isna().all()
    assert _value(table, "tmax", "WB", "dice")[["value", "status"]].tolist() == [0.0, "reference_empty"]
    diagonal = np.linalg.norm(np.array(SHAPE) * SPACING)
    assert _value(table, "tmax", "WB", "hd95_mm")["value"] == pytest.approx(diagonal)
    assert _value(table, "tmax", "WB", "auc")["status"] == "single_class"
    both = evaluate_subject(reference, reference, brain_mask=brain, spacing_mm=SPACING)
    assert _value(both, "tmax", "WB", "dice")["status"] == "both_empty"
    assert np.isnan(_value(both, "tmax", "WB", "iou")["value"])
    summary = summarize(pd.concat([table, both]))
    dice_row = summary[(summary["metric"] == "dice")].iloc[0]
    assert (dice_row["n"], dice_row["n_valid"]) == (2, 1)
    assert dice_row["statuses"] == "reference_empty=1; both_empty=1"


def test_constant_prediction_is_undefined_not_an_error(rng):
    reference, brain = _subject(rng)
    estimate = dict(reference, cbf=np.where(brain, 40.0, np.nan))
    table = evaluate_subject(reference, estimate, brain_mask=brain, spacing_mm=SPACING)
    assert _value(table, "cbf", "WB", "pcc")["status"] == "undefined"
    assert np.isfinite(_value(table, "cbf", "WB", "psnr")["value"])


def test_explicit_hp_mask_data_range_and_paper_convention(rng):
    reference, brain = _subject(rng)
    estimate = _noisy(reference, rng)
    hp = np.zeros(SHAPE, bool)
    hp[3:7, 3:7, :2] = True
    config = EvaluationConfig(convention="paper", data_range={"cbf": 100.0})
    table = evaluate_subject(reference, estimate, brain_mask=brain, spacing_mm=SPACING, hp_mask=hp, config=config)
    assert _value(table, "cbf", "HP", "ssim")["value"] == pytest.approx(
        metrics.ssim(reference["cbf"], estimate["cbf"], mask=hp, convention="paper"))
    assert set(table["convention"]) == {"paper"}
    standard = evaluate_subject(reference, estimate, brain_mask=brain, spacing_mm=SPACING,
                                config=EvaluationConfig(data_range={"cbf": 100.0}))
    assert _value(standard, "cbf", "WB", "psnr")["value"] == pytest.approx(
        metrics.psnr(reference["cbf"], estimate["cbf"], mask=brain, data_range=100.0))


def test_reference_without_tmax_gives_whole_brain_rows_only(rng):
    reference, brain = _subject(rng)
    reference.pop("tmax")
    table = evaluate_subject(reference, _noisy(reference, rng), brain_mask=brain, spacing_mm=SPACING)
    assert set(table["region"]) == {"WB"} and len(table) == 3 * len(AGREEMENT_METRICS)
    with pytest.raises(StnetInputError, match="the estimate maps lack 'cbf'"):
        evaluate_subject(reference, {"cbv": reference["cbv"]}, brain_mask=brain, spacing_mm=SPACING)


def test_summary_format_and_paired_tests_match_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.9, 0.03, 9), rng.normal(0.85, 0.04, 9)
    b[4] = np.nan  # one subject without a value: excluded from the pair count
    rows = [{"subject_id": f"s{i}", "method": m, "map": "cbf", "region": "WB", "metric": "ssim",
             "value": v, "status": "ok" if np.isfinite(v) else "undefined", "n_voxels": 10,
             "convention": "standard"} for m, values in (("A", a), ("B", b)) for i, v in enumerate(values)]
    results = pd.DataFrame(rows)
    summary = summarize(results).set_index("method")
    assert summary.loc["A", "formatted"] == f"{a.mean():.3f} ({a.std(ddof=1):.3f})"
    assert (summary.loc["B", "n_valid"], summary.loc["B", "statuses"]) == (8, "undefined=1")
    assert summary.loc["B", "formatted"].endswith(" [undefined=1]")
    test = paired_tests(results, "A", "B").iloc[0]
    keep = np.isfinite(b)
    assert (test["n_pairs"], test["n_excluded"]) == (8, 1)
    assert test["p_wilcoxon"] == pytest.approx(stats.wilcoxon(a[keep], b[keep]).pvalue)
    assert test["p_ttest"] == pytest.approx(stats.ttest_rel(a[keep], b[keep]).pvalue)
    table = format_table(summarize(results), tests=paired_tests(results, "A", "B"))
    assert list(table.columns) == ["region", "map", "metric", "A", "B", "p Wilcoxon (A vs B)", "p t-test (A vs B)"]
    markdown = to_markdown(table, title="T", notes=["convention: standard"])
    assert "| WB | cbf | SSIM |" in markdown and "- convention: standard" in markdown


def test_paired_tests_undefined_cases():
    rows = [{"subject_id": f"s{i}", "method": m, "map": "cbf", "region": "WB", "metric": "pcc",
             "value": 0.5, "status": "ok", "n_voxels": 1, "convention": "standard"}
            for m in ("A", "B") for i in range(5)]
    test = paired_tests(pd.DataFrame(rows), "A", "B").iloc[0]
    assert test["mean_difference"] == 0.0 and np.isnan(test["p_wilcoxon"]) and np.isnan(test["p_ttest"])
    with pytest.raises(StnetInputError, match="method 'C' is not in the results"):
        paired_tests(pd.DataFrame(rows), "A", "C")


def test_evaluate_set_names_the_subject_on_bad_input(rng):
    reference, brain = _subject(rng)
    estimate = _noisy(reference, rng)
    estimate["cbf"][5, 5, 1] = np.nan
    subject = SubjectMaps("s7", reference, {"osvd": estimate}, brain, SPACING)
    with pytest.raises(StnetInputError, match="subject 's7', method 'osvd': estimate has 1 NaN"):
        evaluate_set([subject])
    with pytest.raises(StnetInputError, match="does not match reference shape"):
        evaluate_subject(reference, {k: v[:-1] for k, v in reference.items()}, brain_mask=brain, spacing_mm=SPACING)


def test_undefined_mtt_is_scored_where_it_is_defined_and_counted(rng):
    # eq. 6: a voxel whose estimated CBF is ≤ 0 (noise only) has no MTT; the oracle is the metric
    # function on the brain without that voxel
    reference, brain = _subject(rng)
    estimate = _noisy(reference, rng)
    estimate["mtt"][5, 5, 1] = np.nan
    table = evaluate_subject(reference, estimate, brain_mask=brain, spacing_mm=SPACING)
    defined = brain.copy()
    defined[5, 5, 1] = False
    row = _value(table, "mtt", "WB", "pcc")
    assert (row["status"], row["n_voxels"]) == ("ok", brain.sum() - 1)
    assert row["value"] == pytest.approx(metrics.pcc(reference["mtt"], estimate["mtt"], mask=defined))
    assert _value(table, "cbf", "WB", "pcc")["n_voxels"] == brain.sum()


# --- manifest and command line ----------------------------------------------------------------

def _write_cohort(tmp_path, rng, n_subjects=3):
    affine = np.diag(list(SPACING) + [1.0])
    save = lambda data, path: nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), path)  # noqa: E731
    rows = []
    for i in range(n_subjects):
        subject_id = f"sub{i}"
        reference, brain = _subject(rng, lesion=i != 2)
        folder = tmp_path / "ref" / subject_id
        folder.mkdir(parents=True)
        row = {c.name: "" for c in MANIFEST_COLUMNS}
        for name, values in reference.items():
            save(values, folder / f"{name}.nii.gz")
            row[name] = folder / f"{name}.nii.gz"
        save(brain, folder / "brain.nii.gz")
        for method, sigma in (("good", 0.05), ("bad", 0.3)):
            (tmp_path / method / subject_id).mkdir(parents=True)
            for name, values in _noisy(reference, rng, sigma).items():
                save(values, tmp_path / method / subject_id / f"{name}.nii.gz")
        row.update(subject_id=subject_id, split="test", brain_mask=folder / "brain.nii.gz",
                   te_ms=30.0, has_lesion_label=i == 0)
        if i == 0:  # a lesion label smaller than the Tmax > 6 s area
            label = np.nan_to_num(reference["tmax"]) > 9.0
            save(label, folder / "lesion.nii.gz")
            row["lesion_mask"] = folder / "lesion.nii.gz"
        rows.append(row)
    return pd.DataFrame(rows)


def test_evaluate_manifest_reads_the_maps(tmp_path, rng):
    manifest = _write_cohort(tmp_path, rng)
    results = evaluate_manifest(manifest, {"good": tmp_path / "good", "bad": tmp_path / "bad"})
    assert sorted(results["subject_id"].unique()) == ["sub0", "sub1", "sub2"]
    assert len(results) == 2 * 3 * (40 + len(SEGMENTATION_METRICS))
    mean = results[results["metric"] == "ssim"].groupby("method")["value"].mean()
    assert mean["good"] > mean["bad"]
    labelled = evaluate_manifest(manifest, {"good": tmp_path / "good"}, segmentation_reference="lesion_mask")
    segmentation = labelled[labelled["metric"].isin(SEGMENTATION_METRICS)]
    assert set(segmentation["subject_id"]) == {"sub0"}  # the only subject with a lesion label
    by_tmax = results[(results["subject_id"] == "sub0") & (results["method"] == "good")]
    assert _value(segmentation, "tmax", "WB", "dice")["value"] < _value(by_tmax, "tmax", "WB", "dice")["value"]
    (tmp_path / "bad" / "sub1" / "tmax.nii.gz").unlink()
    with pytest.raises(StnetInputError, match="bad tmax map not found"):
        evaluate_manifest(manifest, {"bad": tmp_path / "bad"})


def test_stnet_evaluate_writes_the_tables(tmp_path, rng):
    manifest = _write_cohort(tmp_path, rng, n_subjects=2)
    manifest_path = tmp_path / "data_manifest.csv"
    series = nib.Nifti1Image(np.full(SHAPE + (3,), 100.0, np.float32), np.eye(4))  # read, never deconvolved
    series.header.set_zooms((1.0, 1.0, 1.0, 1.5))
    nib.save(series, tmp_path / "ref" / "sub0" / "dsc.nii.gz")
    manifest.assign(dsc="ref/sub0/dsc.nii.gz", aif_mask="ref/sub0/brain.nii.gz").to_csv(manifest_path, index=False)
    parser = argparse.ArgumentParser()
    evaluate_command.add_parser(parser.add_subparsers())
    out = tmp_path / "tables"
    args = parser.parse_args(["evaluate", "--manifest", str(manifest_path), "--pred", str(tmp_path / "good"),
                              "--pred", f"noisy={tmp_path / 'bad'}", "--out", str(out), "--data-range", "cbf=100"])
    assert evaluate_command.run(args) == 0
    per_subject = pd.read_csv(out / "per_subject.csv")
    assert set(per_subject["method"]) == {"good", "noisy"}
    assert pd.read_csv(out / "paired_tests.csv")["comparison"].eq("good vs noisy").all()
    text = (out / "tables.md").read_text()
    assert "convention: standard" in text and "cbf 100 ml/100g/min" in text and "p Wilcoxon (good vs noisy)" in text
    bad = parser.parse_args(["evaluate", "--manifest", str(manifest_path), "--pred", str(tmp_path / "good"),
                             "--pred", str(tmp_path / "good"), "--out", str(out)])
    with pytest.raises(StnetInputError, match="given twice"):
        evaluate_command.run(bad)
