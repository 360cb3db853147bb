"""Stage 6 — what every report notebook starts from: the profile, the cohort, the folders, the methods.

``context(profile, ...)`` takes the notebook's parameters and returns a :class:`Context`; its
methods are the cached steps the notebooks share (the ST-Net checkpoint, every method's maps),
so that each notebook also runs on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..deconvolution import METHODS
from ..paths import DATA_DIR, REPORTS_DIR, RUNS_DIR
from ..profiles import TABLE_METHODS, Profile, get_profile
from .data import cohort_manifest
from .predictions import predict_subjects, stnet_checkpoint, train_stnet

__all__ = ["Context", "context"]

log = logging.getLogger(__name__)


@dataclass
class Context:
    """A notebook's settings: the profile, the cohort's manifest, the run and report folders, the device."""

    profile: Profile
    manifest: Path
    runs_dir: Path
    report_dir: Path
    device: str = "cpu"

    @property
    def baselines(self) -> tuple[str, ...]:
        """The profile's deconvolution baselines that are registered here."""
        return tuple(m for m in self.profile.baselines if m in METHODS)

    @property
    def missing(self) -> tuple[str, ...]:
        """Baselines of the profile that this installation lacks (said in the notebooks and tables)."""
        return tuple(m for m in self.profile.baselines if m not in METHODS)

    @property
    def methods(self) -> tuple[str, ...]:
        """ST-Net and every available baseline, the paper's methods first."""
        ordered = [m for m in TABLE_METHODS if m == "stnet" or m in self.baselines]
        return tuple(ordered + [m for m in self.baselines if m not in ordered])

    @property
    def table_methods(self) -> tuple[str, ...]:
        """The paper's methods that are available: ST-Net, TTV (Fang), oSVD."""
        return tuple(m for m in TABLE_METHODS if m in self.methods)

    def checkpoint(self, *, progress: bool = False) -> Path:
        """ST-Net's ``best.pt``, trained now unless a valid run is cached."""
        return train_stnet(self.manifest, self.runs_dir / "stnet", self.profile.train, device=self.device,
                           progress=progress)

    def options(self, method: str) -> dict:
        """Options of ``method`` for :func:`stnet_lib.pipeline.compute_maps` (the checkpoint for ST-Net)."""
        if method == "stnet":
            return {"checkpoint": stnet_checkpoint(self.runs_dir)}
        return dict(self.profile.method_options.get(method, {}))

    def maps(self, methods=None, *, progress: bool = False) -> pd.DataFrame:
        """Every test subject's maps of ``methods`` (default all), computed where missing; one row per subject × method."""
        methods = self.methods if methods is None else methods
        if "stnet" in methods:
            self.checkpoint()
        tables = [predict_subjects(self.manifest, m, self.runs_dir, device=self.device, options=self.options(m),
                                   progress=progress) for m in methods]
        return pd.concat(tables, ignore_index=True)


def context(profile: str, *, device: str = "cpu", data_dir=None, runs_dir=None, report_dir=None, seed: int = 0,
            manifest=None) -> Context:
    """The :class:`Context` of a notebook's parameters (``None`` folders default to ``data/``, ``runs/`` per profile).

    The synthetic cohort is simulated here where missing, unless ``manifest`` names another cohort.
    """
    settings = get_profile(profile, seed)
    data_dir = Path(data_dir) if data_dir else DATA_DIR / profile
    runs_dir = Path(runs_dir) if runs_dir else RUNS_DIR / profile
    report_dir = Path(report_dir) if report_dir else REPORTS_DIR / profile
    report_dir.mkdir(parents=True, exist_ok=True)
    return Context(settings, cohort_manifest(settings, data_dir, manifest), runs_dir, report_dir, device)
