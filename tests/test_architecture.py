"""The layering: an algorithm package imports nothing above it (issue #18).

Every ``import`` and ``from … import`` of every module of an algorithm package is read with
:mod:`ast` (imports inside functions and ``if`` blocks included) and resolved to a module of
``stnet_lib``; none may be a layer above (file I/O, the pipeline, studies, the report, the CLI).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import stnet_lib

PACKAGE_DIR = Path(stnet_lib.__file__).parent
#: The algorithm packages (a package folder or a single module).
ALGORITHM_PACKAGES = ("signal", "deconvolution", "network", "maps", "metrics", "simulation", "masking")
#: Layers above them: file I/O, the curve-to-maps driver, scoring and tables, studies, the report, the CLI.
ABOVE = frozenset({"io", "pipeline", "experiments", "report", "reporting", "plotting", "profiles", "evaluation",
                   "commands", "cli"})
#: Imports of ``io`` that the network package still makes (file helpers and the ``Scan`` record; io.py and
#: these files belong to other work). Each entry must still exist: remove it when the import goes.
KNOWN_EXCEPTIONS = frozenset({("network/checkpoint.py", "io"), ("network/cohort.py", "io"),
                              ("network/inference.py", "io"), ("network/train.py", "io")})


def _module_name(path: Path) -> str:
    """``stnet_lib.x.y`` of a file under the package folder (``__init__`` is its package)."""
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Absolute names of everything ``source`` (the text of ``module``) imports, wherever the import is.

    ``from . import x`` counts as importing ``<package>.x`` (x may be a module).
    """
    package = module if is_package else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def layers_above(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """The layers of :data:`ABOVE` that ``source`` imports (``stnet_lib.<layer>`` or below it)."""
    layers = set()
    for name in imported_modules(source, module, is_package=is_package):
        parts = name.split(".")
        if len(parts) > 1 and parts[0] == "stnet_lib" and parts[1] in ABOVE:
            layers.add(parts[1])
    return layers


def _algorithm_files() -> list[Path]:
    files = []
    for name in ALGORITHM_PACKAGES:
        folder = PACKAGE_DIR / name
        files += sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE_DIR / f"{name}.py"]
    return files


def _violations() -> set[tuple[str, str]]:
    found = set()
    for path in _algorithm_files():
        layers = layers_above(path.read_text(), _module_name(path), is_package=path.name == "__init__.py")
        found.update((path.relative_to(PACKAGE_DIR).as_posix(), layer) for layer in layers)
    return found


def test_every_algorithm_package_is_found():
    files = {path.relative_to(PACKAGE_DIR).as_posix() for path in _algorithm_files()}
    assert all(path.is_file() for path in _algorithm_files())
    assert {"signal.py", "maps.py", "masking.py", "deconvolution/__init__.py", "network/stnet.py",
            "simulation/subject.py", "metrics/image.py"} <= files


def test_algorithm_packages_import_nothing_above_them():
    found = _violations()
    assert found - KNOWN_EXCEPTIONS == set(), "algorithm modules importing a layer above them"
    assert KNOWN_EXCEPTIONS - found == set(), "these imports are gone: remove them from KNOWN_EXCEPTIONS"


@pytest.mark.parametrize(("source", "module", "expected"), [
    ("from ..io import Scan", "stnet_lib.deconvolution.svd", {"io"}),
    ("def f():\n    from ...pipeline import compute_maps\n", "stnet_lib.deconvolution.x.y", {"pipeline"}),
    ("if True:\n    import stnet_lib.experiments.noise_study", "stnet_lib.maps", {"experiments"}),
    ("from .. import report, constants", "stnet_lib.simulation.cohort", {"report"}),
    ("from stnet_lib.commands import maps", "stnet_lib.signal", {"commands"}),
    ("from ..maps import cbf_eq5\nfrom .svd import csvd\nimport numpy", "stnet_lib.deconvolution.ttv", set()),
])
def test_the_check_sees_imports_anywhere_and_resolves_relative_ones(source, module, expected):
    assert layers_above(source, module) == expected


def test_a_package_init_resolves_single_dot_imports_to_its_own_modules():
    assert imported_modules("from . import svd", "stnet_lib.deconvolution", is_package=True) >= {
        "stnet_lib.deconvolution.svd"}
    assert layers_above("from .. import io", "stnet_lib.deconvolution", is_package=True) == {"io"}


def test_bench_scripts_import_nothing_from_the_tests():
    """A bench script runs from a checkout without the test helpers on its path (issue #18)."""
    offenders = [path.name for path in sorted((PACKAGE_DIR.parent / "bench").glob("*.py"))
                 if '/ "tests"' in path.read_text() or "tests/" in _path_inserts(path.read_text())]
    assert offenders == []


def _path_inserts(source: str) -> str:
    """The text of every ``sys.path.insert``/``append`` call of ``source``."""
    return " ".join(ast.unparse(node) for node in ast.walk(ast.parse(source))
                    if isinstance(node, ast.Call) and ast.unparse(node.func) in ("sys.path.insert", "sys.path.append"))
