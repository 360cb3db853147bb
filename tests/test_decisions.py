"""docs/decisions/: one file per decision, every link to one resolves, and the report states the departures."""

import re

from stnet_lib.experiments import readme
from stnet_lib.paths import ROOT
from stnet_lib.profiles import PROFILES

DECISION_FILES = sorted(readme.DECISIONS_DIR.glob("[0-9][0-9][0-9][0-9]-*.md"))
#: Every mention of a decision file in code, tests, bench scripts and the README.
SOURCES = [*sorted((ROOT / "stnet_lib").rglob("*.py")), *sorted((ROOT / "tests").glob("*.py")),
           *sorted((ROOT / "bench").glob("*.py")), ROOT / "README.md", *DECISION_FILES]


def test_each_decision_file_is_numbered_once_and_opens_with_its_number():
    assert len(DECISION_FILES) >= 11
    numbers = [path.name[:4] for path in DECISION_FILES]
    assert sorted(n for n in set(numbers) if numbers.count(n) > 1) == []
    for path in DECISION_FILES:
        assert path.read_text(encoding="utf-8").startswith(f"# {path.name[:4]}: "), path.name


def test_every_decision_file_named_in_the_repository_exists():
    cited = {name for path in SOURCES
             for name in re.findall(r"docs/decisions/([0-9]{4}-[a-z0-9-]+\.md)", path.read_text(encoding="utf-8"))}
    assert len(cited) >= 4
    assert {name for name in cited if not (readme.DECISIONS_DIR / name).is_file()} == set()


def test_departures_are_the_paragraphs_that_say_so_with_their_file(tmp_path):
    (tmp_path / "0002-b.md").write_text("# 0002: B\n\nDeparture from the paper: **B.** Two\nlines.\n\n## What\n")
    (tmp_path / "0001-a.md").write_text("# 0001: A\n\nNot a departure: **A.** Same as the paper.\n")
    (tmp_path / "notes.md").write_text("Departure from the paper: not a decision file.\n")
    assert readme.paper_departures(tmp_path) == [f"**B.** Two lines. (`{tmp_path / '0002-b.md'}`)"]


def test_the_report_readme_lists_every_departure_with_its_decision_file(tmp_path):
    departures = readme.paper_departures()
    assert len(departures) >= 7
    text = readme.write_readme(tmp_path, PROFILES["smoke"], notebooks=("table1",)).read_text()
    section = text.split("## What differs from the paper\n", 1)[1].split("\n## ", 1)[0]
    assert [line[2:] for line in section.strip().splitlines()] == departures
    assert "- **Physics loss.** Eq. 9 is implemented as written" in section
    assert "(`docs/decisions/0026-physics-loss-as-written.md`)" in section


def test_without_the_decision_files_the_readme_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(readme, "DECISIONS_DIR", tmp_path / "absent")
    monkeypatch.setattr(readme.paper_departures, "__defaults__", (tmp_path / "absent",))
    text = readme.write_readme(tmp_path, PROFILES["smoke"], notebooks=("table1",)).read_text()
    assert "The decision files" in text and "are missing" in text
