"""Every report notebook runs end to end with the smoke profile and writes its files (papermill)."""

import json

import pytest

from stnet_lib.paths import NOTEBOOKS_DIR
from stnet_lib.report import NOTEBOOKS, NotebookFailed, run_report

#: Files each notebook must leave in the report folder.
EXPECTED = {
    "validation": ["validation.md", "validation_osipi.csv", "validation_real_dsc.csv", "validation_real_dsc_maps.png"],
}


def test_notebooks_are_committed_without_outputs_and_with_a_parameters_cell():
    for name in NOTEBOOKS:
        notebook = json.loads((NOTEBOOKS_DIR / f"{name}.ipynb").read_text())
        code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
        assert all(not cell.get("outputs") and cell.get("execution_count") is None for cell in code), name
        tagged = [cell for cell in code if "parameters" in cell["metadata"].get("tags", [])]
        assert len(tagged) == 1 and "profile =" in "".join(tagged[0]["source"]), name


@pytest.mark.slow
def test_smoke_report_runs_every_notebook(tmp_path):
    out = run_report("smoke", "cpu", reports_dir=tmp_path)
    for name in NOTEBOOKS:
        assert (out / "notebooks" / f"{name}.ipynb").is_file()
        for filename in EXPECTED.get(name, []):
            assert (out / filename).stat().st_size > 0, filename


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
