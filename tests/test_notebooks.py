"""Every report notebook runs end to end with the smoke profile and writes its files (papermill)."""

import json

import pandas as pd
import pytest

from stnet_lib import paper
from stnet_lib.paths import NOTEBOOKS_DIR, RUNS_DIR
from stnet_lib.report import LAB_NOTEBOOKS, NOTEBOOKS, NotebookFailed, run_report

#: Files each notebook must leave in the report folder.
EXPECTED = {
    "cohort": ["cohort_split.md", "cohort_acquisition.md", "cohort_statistics.md", "cohort_subject.png"],
    "train": ["train_summary.md", "train_learning_curve.png", "train_inference.csv"],
    "baselines": ["baselines.md", "baselines_maps.png", "baselines_noise.md", "baselines_noise.png"],
    "table2": ["table2.md", "table2.csv", "table2_beside_paper.md", "table2_paper_convention.md",
               "table2_all_methods.md", "table2_tests.csv"],
    "table1": ["table1.md", "table1.csv", "table1_tests.md", "table1_thresholds.csv"],
    "fig2": ["fig2_maps.png", "fig2_masks.png", "fig2_agreement.png", "fig2_segmentation.png"],
    "fig3": ["fig3.md", "fig3.csv", "fig3_runs.md", "fig3_sampling.png", "fig3_training.png", "fig3_outputs.md",
             "fig3_outputs.png"],
    "timing": ["timing.md", "timing.csv", "timing.png"],
    "validation": ["validation.md", "validation_osipi.csv", "validation_real_dsc.csv", "validation_real_dsc_maps.png"],
}
PARAMETERS = ("profile", "device", "data_dir", "runs_dir", "report_dir", "seed")


def test_every_report_notebook_has_its_expected_files_listed():
    assert set(EXPECTED) == set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS + LAB_NOTEBOOKS)
def test_notebooks_are_committed_without_outputs_and_with_a_parameters_cell(name):
    notebook = json.loads((NOTEBOOKS_DIR / f"{name}.ipynb").read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in code), name
    tagged = [cell for cell in code if "parameters" in cell["metadata"].get("tags", [])]
    assert len(tagged) == 1, name
    source = "".join(tagged[0]["source"])
    assert all(f"\n{p} =" in f"\n{source}" for p in PARAMETERS), name


@pytest.mark.slow
def test_smoke_report_runs_every_notebook(tmp_path):
    import papermill

    out = run_report("smoke", "cpu", reports_dir=tmp_path)
    for name in NOTEBOOKS:
        assert (out / "notebooks" / f"{name}.ipynb").is_file()
        for filename in EXPECTED[name]:
            assert (out / filename).stat().st_size > 0, filename
    table1 = pd.read_csv(out / "table1.csv")
    paper_row = table1[(table1["method"] == "ST-Net") & (table1["source"] == "paper")].iloc[0]
    assert float(paper_row["Dice"]) == paper.TABLE1["stnet"]["dice"]
    readme = (out / "README.md").read_text()
    assert "Profile `smoke`" in readme and "| ST-Net | paper | 18 |" in readme
    for name in LAB_NOTEBOOKS:  # not part of the report, but CI runs them too
        papermill.execute_notebook(NOTEBOOKS_DIR / f"{name}.ipynb", tmp_path / f"{name}.ipynb", cwd=str(NOTEBOOKS_DIR),
                                   parameters={"profile": "smoke", "runs_dir": str(RUNS_DIR / "smoke"),
                                               "report_dir": str(tmp_path / "lab")},
                                   kernel_name="python3", progress_bar=False)


def test_a_failing_notebook_is_named_and_earlier_reports_stay(tmp_path, monkeypatch):
    earlier = tmp_path / "smoke"
    earlier.mkdir()
    (earlier / "validation.md").write_text("earlier report")
    broken = tmp_path / "notebooks"
    broken.mkdir()
    source = json.loads((NOTEBOOKS_DIR / "validation.ipynb").read_text())
    source["cells"].insert(3, {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                               "id": "boom", "source": "raise ValueError('boom')"})
    (broken / "validation.ipynb").write_text(json.dumps(source))
    monkeypatch.setattr("stnet_lib.report.NOTEBOOKS_DIR", broken)
    with pytest.raises(NotebookFailed, match=r"validation.ipynb failed in cell \d+ .*ValueError: boom"):
        run_report("smoke", "cpu", notebooks=("validation",), reports_dir=tmp_path)
    assert (earlier / "validation.md").read_text() == "earlier report"
    assert (tmp_path / "smoke.failed" / "notebooks" / "validation.ipynb").is_file()


def test_a_cohort_of_ones_own_gets_its_own_report_and_run_folders(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("stnet_lib.report._execute", lambda name, parameters, executed: seen.append(parameters))
    manifest = tmp_path / "hospital" / "data_manifest.csv"
    out = run_report("quick", "cpu", notebooks=("table1",), reports_dir=tmp_path / "reports", manifest=manifest)
    assert out == tmp_path / "reports" / "quick-hospital"
    assert seen[0]["manifest"] == str(manifest.resolve()) and seen[0]["runs_dir"].endswith("quick-hospital")
    assert "your manifest" in (out / "README.md").read_text()


@pytest.mark.slow
def test_cohort_notebook_describes_a_cohort_of_ones_own_without_simulating(tmp_path):
    """With ``manifest`` the cohort notebook reads that cohort (headers, masks, curves) and simulates nothing."""
    import numpy as np
    import papermill
    from stnet_synthetic import write_cohort

    from stnet_lib.experiments.cohort_summary import acquisition_table

    manifest = write_cohort(tmp_path / "hospital", np.random.default_rng(5))
    data_dir, report = tmp_path / "no-simulation-here", tmp_path / "report"
    papermill.execute_notebook(NOTEBOOKS_DIR / "cohort.ipynb", tmp_path / "cohort.ipynb", cwd=str(NOTEBOOKS_DIR),
                               parameters={"profile": "smoke", "data_dir": str(data_dir), "report_dir": str(report),
                                           "manifest": str(manifest)}, progress_bar=False)
    assert not data_dir.exists()
    for filename in ("cohort_acquisition.md", "cohort_split.md", "cohort_curves.png"):
        assert (report / filename).stat().st_size > 0, filename
    assert not (report / "cohort_statistics.md").exists()
    table = acquisition_table(manifest)
    assert list(table["split"]) == ["train", "train", "val", "test"]
    assert (table["frames"] > 1).all() and table["masks"].str.contains("brain").all()
    assert (table["reference"] == "cbv, cbf, mtt, tmax").all()
