"""Every report notebook runs end to end with the smoke profile and writes its files (papermill);
the committed notebooks are the files JupyterLab would save, and declare only what they use."""

import ast
import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from stnet_lib import paper
from stnet_lib.paths import NOTEBOOKS_DIR, RUNS_DIR
from stnet_lib.report import LAB_NOTEBOOKS, NOTEBOOKS, NotebookFailed, run_report

#: Files each notebook must leave in the report folder.
EXPECTED = {
    "cohort": ["cohort_split.md", "cohort_acquisition.md", "cohort_statistics.md", "cohort_subject.png"],
    "train": ["train_summary.md", "train_learning_curve.png", "train_inference.csv", "train_uncertainty.md",
              "train_uncertainty.png"],
    "baselines": ["baselines.md", "baselines_maps.png", "baselines_noise.md", "baselines_noise.png"],
    "table2": ["table2.md", "table2.csv", "table2_beside_paper.md", "table2_paper_convention.md",
               "table2_all_methods.md", "table2_tests.csv"],
    "table1": ["table1.md", "table1.csv", "table1_tests.md", "table1_thresholds.csv", "volumes.md", "volumes_agreement.md",
               "volumes_bland_altman.png"],
    "fig2": ["fig2_maps.png", "fig2_masks.png", "fig2_agreement.png", "fig2_segmentation.png"],
    "fig3": ["fig3.md", "fig3.csv", "fig3_runs.md", "fig3_sampling.png", "fig3_training.png", "fig3_outputs.md",
             "fig3_outputs.png"],
    "timing": ["timing.md", "timing.csv", "timing.png"],
    "validation": ["validation.md", "validation_osipi.csv", "validation_real_dsc.csv", "validation_real_dsc_maps.png",
                   "validation_real_dsc_aif.png", "validation_real_dsc_agreement.csv", "validation_generalisation.md",
                   "validation_osipi_tmax_delay.csv", "validation_osipi_tmax_delay.png",
                   "validation_real_dsc_tmax_consistency.csv", "validation_real_dsc_tmax_readings.csv",
                   "validation_real_dsc_tmax_tradeoff.csv", "validation_osipi_implied_tmax.csv"],
}


def _declared_and_used(path) -> tuple[list[str], set[str]]:
    """The names the parameters cell assigns, and every name the other code cells read."""
    from IPython.core.inputtransformer2 import TransformerManager

    notebook = nbformat.read(path, as_version=4)
    declared, used = [], set()
    for cell in (c for c in notebook.cells if c.cell_type == "code"):
        tree = ast.parse(TransformerManager().transform_cell(cell.source))
        if "parameters" in cell.metadata.get("tags", []):
            declared += [target.id for node in tree.body if isinstance(node, ast.Assign) for target in node.targets]
        else:
            used |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return declared, used


def test_every_report_notebook_has_its_expected_files_listed():
    assert set(EXPECTED) == set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS + LAB_NOTEBOOKS)
def test_a_notebook_declares_the_parameters_it_uses_and_only_those(name):
    notebook = json.loads((NOTEBOOKS_DIR / f"{name}.ipynb").read_text())
    tagged = [c for c in notebook["cells"] if c["cell_type"] == "code" and "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, name
    declared, used = _declared_and_used(NOTEBOOKS_DIR / f"{name}.ipynb")
    assert declared and not set(declared) - used, f"{name} declares parameters it never reads: {set(declared) - used}"


def test_the_parameter_check_finds_an_unused_parameter(tmp_path):
    notebook = nbformat.read(NOTEBOOKS_DIR / "validation.ipynb", as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += "\nunused_knob = 0  # read nowhere"
    nbformat.write(notebook, tmp_path / "validation.ipynb")
    declared, used = _declared_and_used(tmp_path / "validation.ipynb")
    assert "unused_knob" in declared and "unused_knob" not in used and "report_dir" in used


@pytest.fixture(scope="module")
def kernel_info():
    """What the venv's ``python3`` kernel tells JupyterLab: its kernelspec and its language_info."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import start_new_kernel

    spec = KernelSpecManager().get_kernel_spec("python3")
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        language_info = client.kernel_info(reply=True, timeout=60)["content"]["language_info"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return {"name": "python3", "display_name": spec.display_name, "language": spec.language}, language_info


@pytest.mark.parametrize("name", NOTEBOOKS + LAB_NOTEBOOKS)
def test_a_notebook_is_committed_as_jupyterlab_saves_it(name, kernel_info):
    """Opening a notebook in JupyterLab leaves it unmodified: it already has the kernelspec and the
    language_info that JupyterLab sets from the kernel (all but the Python version, which is the
    committing venv's), no outputs, and the JSON layout of Jupyter's save (nbformat's)."""
    path = NOTEBOOKS_DIR / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    kernelspec, language_info = kernel_info
    assert set(notebook.metadata) == {"kernelspec", "language_info"}, name
    assert notebook.metadata.kernelspec == kernelspec, name
    assert {**notebook.metadata.language_info, "version": None} == {**language_info, "version": None}, name
    assert re.fullmatch(r"3\.1[12]\.\d+", notebook.metadata.language_info["version"]), name
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), name
    assert (notebook.nbformat, notebook.nbformat_minor) == (4, 5) and all("id" in cell for cell in notebook.cells)
    assert path.read_text() == nbformat.writes(notebook) + "\n", f"{name}: not in the layout Jupyter saves"


def test_the_runner_passes_a_notebook_only_the_parameters_it_declares(tmp_path, monkeypatch):
    import papermill

    seen = {}
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda source, executed, parameters, **kwargs: seen.update({source.stem: parameters}))
    run_report("smoke", "cpu", notebooks=("validation", "cohort"), reports_dir=tmp_path, manifest=tmp_path / "m.csv")
    assert set(seen["validation"]) == {"profile", "device", "data_dir", "runs_dir", "report_dir", "seed"}
    assert set(seen["cohort"]) == {"profile", "data_dir", "report_dir", "manifest"}


def test_smoke_report_runs_every_notebook(tmp_path):
    """Every notebook end to end on the smoke profile. One of the longest tests of the default run (18 % of a
    loaded one), and in it: no cheaper test executes the notebooks, so it is not marked slow."""
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
                                   parameters={"profile": "smoke", "runs_dir": str(RUNS_DIR / "smoke")},
                                   kernel_name="python3", progress_bar=False)


def test_a_failing_notebook_is_named_and_earlier_reports_stay(tmp_path, monkeypatch):
    earlier = tmp_path / "smoke"
    earlier.mkdir()
    (earlier / "validation.md").write_text("earlier report")
    broken = tmp_path / "notebooks"
    broken.mkdir()
    source = json.loads((NOTEBOOKS_DIR / "validation.ipynb").read_text())
    source["cells"].insert(2, {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
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


def test_explore_on_a_scan_of_ones_own_neither_simulates_nor_trains(small_scan, tmp_path):
    """With ``dsc_path`` the explore notebook loads that scan and runs the classical methods on it (no
    ST-Net without a checkpoint); no cohort folder or run folder is created."""
    import papermill

    folders = {"data_dir": str(tmp_path / "no-cohort"), "runs_dir": str(tmp_path / "no-runs")}
    executed = papermill.execute_notebook(
        NOTEBOOKS_DIR / "explore.ipynb", tmp_path / "explore.ipynb", cwd=str(NOTEBOOKS_DIR), kernel_name="python3",
        parameters={"dsc_path": str(small_scan["dsc"]), "aif_mask": str(small_scan["aif"]),
                    "brain_mask": str(small_scan["brain"]), "te_ms": small_scan["te_ms"], "tr_s": small_scan["tr_s"],
                    "methods": ["osvd", "ttv"], **folders}, progress_bar=False)
    printed = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "dsc.nii.gz (your scan)" in printed and "methods ['osvd', 'ttv']" in printed
    assert not any(Path(folder).exists() for folder in folders.values())
