"""environment.yml agrees with pyproject.toml, the source of truth for dependencies."""

import tomllib

import yaml

from stnet_lib.paths import ROOT


def test_environment_yml_lists_exactly_pyprojects_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    expected = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert set(pip_section) == expected
    assert len(pip_section) == len(expected)
    python = next(item for item in environment["dependencies"] if isinstance(item, str) and item.startswith("python"))
    assert python.removeprefix("python") == project["requires-python"]


def test_bounded_ranges_for_libraries_whose_behaviour_changed():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name in ("scipy", "scikit-image", "scikit-learn"):
        spec = next(d for d in project["dependencies"] if d.startswith(name + ">"))
        assert ">=" in spec and "<" in spec.split(",")[1], spec
