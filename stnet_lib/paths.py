"""Absolute paths of the repository, derived from this file (never from the working directory)."""

import os
from pathlib import Path

__all__ = ["ROOT", "DATA_DIR", "REPORTS_DIR", "NOTEBOOKS_DIR", "RUNS_DIR", "SHARED_DATA_DIR"]

#: Repository root (the folder holding pyproject.toml).
ROOT = Path(__file__).resolve().parent.parent
#: Generated synthetic cohorts live here (ignored by git).
DATA_DIR = ROOT / "data"
#: Regenerated tables and figures, one folder per profile.
REPORTS_DIR = ROOT / "reports"
#: The papermill notebooks.
NOTEBOOKS_DIR = ROOT / "notebooks"
#: Training runs (checkpoints, learning curves; ignored by git).
RUNS_DIR = ROOT / "runs"
#: External validation data (OSIPI DRO, a real DSC slice): ``$STNET_SHARED_DATA`` or ../shared/data.
SHARED_DATA_DIR = Path(os.environ.get("STNET_SHARED_DATA", ROOT.parent / "shared" / "data"))
