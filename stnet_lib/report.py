"""``python -m stnet_lib.report``: execute the notebooks with papermill, in order, into ``reports/<profile>/``.

Each notebook gets the parameters ``profile``, ``device``, ``data_dir``, ``report_dir`` and
``seed``. The notebooks write into a staging copy of the profile's report folder, which replaces
the folder only when every notebook succeeded: a failure names the notebook and the cell, keeps
the failed executed notebook for inspection, and leaves the earlier reports as they were.
Expensive steps (cohort, training) cache their artefacts under ``data/`` and ``runs/`` and are not
redone while valid.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from .paths import DATA_DIR, NOTEBOOKS_DIR, REPORTS_DIR, RUNS_DIR

__all__ = ["NOTEBOOKS", "PROFILES", "run_report", "main"]

log = logging.getLogger(__name__)

#: Notebooks in execution order: each may use what the ones before it cached.
NOTEBOOKS = ("validation",)
PROFILES = ("smoke", "quick", "paper")


class NotebookFailed(RuntimeError):
    """A notebook raised: the message names the notebook, the cell and the error."""


def _execute(name: str, parameters: dict, executed: Path) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(NOTEBOOKS_DIR / f"{name}.ipynb", executed, parameters=parameters,
                                   cwd=str(NOTEBOOKS_DIR), kernel_name="python3", progress_bar=False)
    except PapermillExecutionError as error:
        raise NotebookFailed(
            f"notebook {name}.ipynb failed in cell {error.cell_index} (execution count {error.exec_count}): "
            f"{error.ename}: {error.evalue}".splitlines()[0] + f" — executed copy: {executed}"
        ) from None


def run_report(profile: str = "quick", device: str = "cpu", *, notebooks=NOTEBOOKS, seed: int = 0,
               reports_dir: Path = REPORTS_DIR) -> Path:
    """Execute ``notebooks`` for ``profile``; return ``reports_dir/profile`` (replaced only on success)."""
    final = Path(reports_dir) / profile
    staging = final.with_name(f".{profile}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    if final.exists():
        shutil.copytree(final, staging)
    (staging / "notebooks").mkdir(parents=True, exist_ok=True)
    parameters = {"profile": profile, "device": device, "data_dir": str(DATA_DIR / profile),
                  "runs_dir": str(RUNS_DIR / profile), "report_dir": str(staging), "seed": seed}
    for name in notebooks:
        start = time.perf_counter()
        print(f"[{profile}] {name} ...", flush=True)
        try:
            _execute(name, parameters, staging / "notebooks" / f"{name}.ipynb")
        except NotebookFailed:
            failed = final.with_name(f"{profile}.failed")
            shutil.rmtree(failed, ignore_errors=True)
            os.replace(staging, failed)
            raise
        print(f"[{profile}] {name} done in {time.perf_counter() - start:.0f} s", flush=True)
    old = final.with_name(f".{profile}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(final.with_name(f"{profile}.failed"), ignore_errors=True)
    return final


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stnet_lib.report", description="Regenerate reports/<profile>/.")
    parser.add_argument("--profile", default="quick", choices=PROFILES)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--only", nargs="+", choices=NOTEBOOKS, help="run only these notebooks")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        out = run_report(args.profile, args.device, notebooks=args.only or NOTEBOOKS, seed=args.seed)
    except NotebookFailed as error:
        print(f"stnet report: {error}", file=sys.stderr)
        return 1
    print(f"reports written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
