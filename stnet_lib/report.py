"""The report: execute the notebooks with papermill, in order, into ``reports/<profile>/`` (``stnet report``).

Each notebook gets those of the parameters ``profile``, ``device``, ``data_dir``, ``runs_dir``,
``report_dir`` and ``seed`` (and ``manifest`` when a cohort of one's own is given) that its
parameters cell declares. The notebooks
write into a staging copy of the profile's report folder, which replaces the folder only when
every notebook succeeded: a failure names the notebook and the cell, keeps the failed executed
notebook for inspection, and leaves the earlier reports as they were. After the notebooks,
``README.md`` sets the results beside the paper's. Expensive steps (cohort, training, maps,
ablations) cache their artefacts under ``data/`` and ``runs/`` and are not redone while valid.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from .paths import DATA_DIR, NOTEBOOKS_DIR, REPORTS_DIR, RUNS_DIR

__all__ = ["NOTEBOOKS", "LAB_NOTEBOOKS", "NotebookFailed", "run_report"]

log = logging.getLogger(__name__)

#: Notebooks in execution order: each may use what the ones before it cached (each also runs alone).
NOTEBOOKS = ("cohort", "train", "baselines", "table2", "table1", "fig2", "fig3", "timing", "validation")
#: Notebooks for researchers in JupyterLab (``make lab``), not part of the report; CI executes them too.
LAB_NOTEBOOKS = ("explore",)


class NotebookFailed(RuntimeError):
    """A notebook raised: the message names the notebook, the cell and the error."""


def _execute(name: str, parameters: dict, executed: Path) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    declared = papermill.inspect_notebook(NOTEBOOKS_DIR / f"{name}.ipynb")  # its parameters cell
    parameters = {key: value for key, value in parameters.items() if key in declared}
    try:
        papermill.execute_notebook(NOTEBOOKS_DIR / f"{name}.ipynb", executed, parameters=parameters,
                                   cwd=str(NOTEBOOKS_DIR), kernel_name="python3", progress_bar=False)
    except PapermillExecutionError as error:
        raise NotebookFailed(
            f"notebook {name}.ipynb failed in cell {error.cell_index} (execution count {error.exec_count}): "
            f"{error.ename}: {error.evalue}".splitlines()[0] + f" — executed copy: {executed}"
        ) from None
    except Exception as error:  # the kernel died (killed, out of memory) or timed out: nbclient's own errors
        raise NotebookFailed(f"notebook {name}.ipynb stopped: {type(error).__name__}: {error}".splitlines()[0]
                             + f" — executed copy: {executed}") from error


def run_report(profile: str = "quick", device: str = "cpu", *, notebooks=NOTEBOOKS, seed: int = 0,
               reports_dir: Path = REPORTS_DIR, manifest=None) -> Path:
    """Execute ``notebooks`` for ``profile``; return the report folder (replaced only on success).

    The folder is ``reports_dir/<profile>``; with ``manifest`` (a ``data_manifest.csv`` of one's
    own cohort) it is ``reports_dir/<profile>-<the manifest's folder name>``, and the runs go to
    ``runs/`` under the same name, so that they never mix with the synthetic cohort's.
    """
    from .experiments.readme import write_readme
    from .profiles import get_profile

    tag = profile if manifest is None else f"{profile}-{Path(manifest).resolve().parent.name}"
    final = Path(reports_dir) / tag
    staging = final.with_name(f".{tag}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    if final.exists():
        shutil.copytree(final, staging)
    (staging / "notebooks").mkdir(parents=True, exist_ok=True)
    parameters = {"profile": profile, "device": device, "data_dir": str(DATA_DIR / profile),
                  "runs_dir": str(RUNS_DIR / tag), "report_dir": str(staging), "seed": seed}
    if manifest is not None:
        parameters["manifest"] = str(Path(manifest).resolve())
    begin, seconds = time.perf_counter(), {}
    for name in notebooks:
        start = time.perf_counter()
        print(f"[{tag}] {name} ...", flush=True)
        try:
            _execute(name, parameters, staging / "notebooks" / f"{name}.ipynb")
        except NotebookFailed as error:
            failed = final.with_name(f"{tag}.failed")
            shutil.rmtree(failed, ignore_errors=True)
            os.replace(staging, failed)
            raise NotebookFailed(str(error).replace(str(staging), str(failed))) from error.__cause__
        seconds[name] = time.perf_counter() - start
        print(f"[{tag}] {name} done in {seconds[name]:.0f} s", flush=True)
    executed = [n for n in (*NOTEBOOKS, *notebooks) if (staging / "notebooks" / f"{n}.ipynb").is_file()]
    write_readme(staging, get_profile(profile, seed), device=device, manifest=manifest,
                 notebooks=tuple(dict.fromkeys(executed)), seconds=seconds)
    print(f"[{tag}] all done in {time.perf_counter() - begin:.0f} s", flush=True)
    old = final.with_name(f".{tag}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(final.with_name(f"{tag}.failed"), ignore_errors=True)
    if tag == "quick" and Path(reports_dir) == REPORTS_DIR:
        from .experiments.results_block import update_readme
        from .paths import ROOT

        update_readme(ROOT / "README.md", final, get_profile(profile, seed))  # its numbers: these CSVs'
    return final
