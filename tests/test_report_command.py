"""``stnet report`` (and ``make report``) runs the report of a profile: arguments, bad input, a failed notebook."""

import shutil
import subprocess
from pathlib import Path

import pytest

from stnet_lib import cli
from stnet_lib.commands import report as report_command
from stnet_lib.report import NOTEBOOKS, NotebookFailed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def calls(monkeypatch):
    """The calls that ``stnet report`` makes to :func:`stnet_lib.report.run_report` (which is not run)."""
    seen = []

    def fake_run_report(profile, device, **options):
        seen.append({"profile": profile, "device": device, **options})
        return Path("reports") / profile

    monkeypatch.setattr(report_command, "run_report", fake_run_report)
    return seen


def test_report_is_a_stnet_command_with_the_profiles_as_choices(calls, capsys):
    assert "report" in cli.COMMANDS
    assert cli.main(["report"]) == 0
    assert calls == [{"profile": "quick", "device": "cpu", "notebooks": NOTEBOOKS, "seed": 0, "manifest": None}]
    assert cli.main(["report", "--profile", "smoke", "--device", "cuda", "--only", "table1", "fig2", "--seed", "3"]) == 0
    assert calls[1] == {"profile": "smoke", "device": "cuda", "notebooks": ["table1", "fig2"], "seed": 3,
                        "manifest": None}
    assert "reports written to reports/smoke" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", "--profile", "fast"])
    assert exit_info.value.code == 2 and len(calls) == 2


def test_a_missing_manifest_exits_with_status_2_before_any_notebook(calls, tmp_path, capsys):
    assert cli.main(["report", "--manifest", str(tmp_path / "absent.csv")]) == 2
    assert calls == []
    assert capsys.readouterr().err.strip().endswith("is not a file: give the path of a data_manifest.csv")
    manifest = tmp_path / "data_manifest.csv"
    manifest.write_text("subject_id\n")
    assert cli.main(["report", "--manifest", str(manifest)]) == 0
    assert calls[0]["manifest"] == manifest


def test_a_failed_notebook_exits_with_status_1_and_names_it(monkeypatch, capsys):
    def failing(*args, **kwargs):
        raise NotebookFailed("notebook fig2.ipynb failed in cell 4 (execution count 3): ValueError: boom")

    monkeypatch.setattr(report_command, "run_report", failing)
    assert cli.main(["report", "--only", "fig2"]) == 1
    assert capsys.readouterr().err.startswith("stnet report: notebook fig2.ipynb failed in cell 4")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_report_calls_stnet_report():
    commands = subprocess.run(["make", "-n", "report", "PROFILE=smoke", "DEVICE=auto", "MANIFEST=m.csv"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout
    assert ".venv/bin/stnet report --profile smoke --device auto --manifest m.csv" in commands
