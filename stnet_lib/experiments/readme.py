"""Stage 6 — ``reports/<profile>/README.md``: our results beside the paper's, the conventions, the
profile and what differs from the paper. Written by ``stnet report`` after the
notebooks, from the tables they saved (a table not produced is said to be missing).
"""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

import pandas as pd

from .. import __version__, paper
from ..deconvolution import METHODS
from ..network.cohort import BOUNDARY_S
from ..paths import ROOT
from ..profiles import Profile
from ..reporting import markdown_table, save_markdown
from .results_block import noise_sentence

__all__ = ["write_readme", "paper_departures", "DECISIONS_DIR"]

#: One file per decision (what, why, the measurement); those that depart from the paper say so.
DECISIONS_DIR = ROOT / "docs" / "decisions"
_DEPARTURE = "Departure from the paper: "


def paper_departures(folder: Path = DECISIONS_DIR) -> list[str]:
    """What differs from the paper, whatever the profile: one item per decision file that departs from it.

    Each is the paragraph of ``folder/NNNN-name.md`` that starts with ``Departure from the paper:``,
    followed by the file's path, in the files' order.
    """
    items = []
    for path in sorted(Path(folder).glob("[0-9][0-9][0-9][0-9]-*.md")):
        for paragraph in path.read_text(encoding="utf-8").split("\n\n"):
            if paragraph.startswith(_DEPARTURE):
                text = " ".join(paragraph[len(_DEPARTURE):].split())
                name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
                items.append(f"{text} (`{name}`)")
    return items


_TIMING_COLUMNS = ("method", "device", "runs", "seconds_per_10k_voxels", "paper_seconds_per_10k_voxels")


def _git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _table(report_dir: Path, name: str, what: str, floatfmt: str = ".3f", columns=None) -> str:
    path = report_dir / f"{name}.csv"
    if not path.is_file():
        return f"*{what}: not produced in this run (`{name}.csv` missing).*\n"
    try:
        table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        table = pd.DataFrame()
    if table.empty:  # e.g. Table 1 of a cohort without labelled test subjects
        return f"*{what}: no rows for this cohort (see `{name}.md`).*\n"
    table = table[[c for c in columns if c in table]] if columns else table
    return markdown_table(table, floatfmt=floatfmt)


def _noise_table(report_dir: Path) -> str:
    """``baselines_noise.csv`` as one row per method, each error listed over the SNRs (highest first)."""
    path = report_dir / "baselines_noise.csv"
    if not path.is_file():
        return "*The noise study: not produced in this run (`baselines_noise.csv` missing).*\n"
    table = pd.read_csv(path)
    snrs = sorted(table["snr"].unique(), reverse=True)
    columns = {"cbf_rmse": "CBF RMSE against the truth", "noise_cbf_rmse": "CBF change caused by the noise",
               "tmax_mae_s": "Tmax MAE [s]"}
    rows = []
    for method, group in table.groupby("method", sort=False):
        group = group.set_index("snr").loc[snrs]
        rows.append({"method": method, **{f"{label} (SNR {' / '.join(f'{v:g}' for v in snrs)})":
                                          " / ".join(f"{v:.1f}" for v in group[column]) for column, label in
                                          columns.items()}})
    return markdown_table(pd.DataFrame(rows))


def _noise_summary(report_dir: Path, profile: Profile) -> str:
    """The noise study's ratios, from the same ``baselines_noise.csv`` as the table and the figure."""
    path = report_dir / "baselines_noise.csv"
    return noise_sentence(pd.read_csv(path), profile) if path.is_file() else ""


def _schedule(train) -> str:
    schedule = getattr(train, "lr_schedule", "constant")
    return "" if schedule == "constant" else f" ({schedule} decay to {getattr(train, 'lr_min', 0):g})"


def _augmentation(train) -> str:
    parts = []
    if getattr(train, "time_shift_frames", 0):
        parts.append(f"patch and AIF shifted together by up to ±{train.time_shift_frames} frames")
    if getattr(train, "aif_shift_frames", 0):
        parts.append(f"the AIF alone moved up to {train.aif_shift_frames} frames earlier, Tmax target raised by as much")
    if getattr(train, "aif_delay_frames", 0):
        parts.append(f"or up to {train.aif_delay_frames} frames later, Tmax target lowered by as much (below zero)")
    if getattr(train, "boundary_fraction", 0):
        low, high = BOUNDARY_S
        parts.append(f"{train.boundary_fraction:.0%} of the normal samples from Tmax {low:g}–{high:g} s (boundary group)")
    if getattr(train, "tmax_scale", "sampled") == "healthy":
        parts.append("Tmax standardised by its spread in healthy tissue")
    return f"; augmentation (departures, see `TrainConfig`): {'; '.join(parts)}" if parts else ""


def _profile_lines(profile: Profile, device: str, manifest) -> list[str]:
    c, t, a = profile.cohort, profile.train, profile.ablations
    cohort = (f"your manifest `{manifest}`" if manifest else
              f"synthetic, {c.n_subjects} subjects on a {'×'.join(map(str, c.shape))} grid "
              f"({'×'.join(f'{v:g}' for v in c.voxel_mm)} mm, {c.n_frames} frames): {c.n_train} train, {c.n_val} val, "
              f"{c.n_test_labelled + c.n_test_unlabelled} test ({c.n_test_labelled} labelled), seed {c.seed}"
              + (f"; and {c.n_train_variants} training variants (arterial curve without plateau or recirculation, "
                 f"every other one with MTT {c.wide_mtt_range_s[0]:g}–{c.wide_mtt_range_s[1]:g} s independent of CBV; "
                 f"decision 0077)" if c.n_train_variants else ""))
    return [
        f"- Profile `{profile.name}`: {profile.description}. Device: `{device}`.",
        f"- Cohort: {cohort}.",
        f"- ST-Net training: Adam, lr {t.lr:g}{_schedule(t)}, batch {t.batch_size}, at most {t.epochs} epochs, early stop after "
        f"{t.patience} epochs without improvement, stride {t.stride}, normal:lesion {t.ratio:g}:1, "
        f"physics weight {t.physics_weight:g}, seed {t.seed}{_augmentation(t)}. The paper used lr 1e-4, batch 512, "
        "≤ 400 epochs, patience 50, stride 3 and 2:1, and no augmentation.",
        f"- Fig. 3 ablations: strides {list(a.strides)}, ratios {list(a.ratios)}, learning rates "
        f"{list(a.learning_rates)}, physics weights {list(a.physics_weights)}, outputs {list(a.outputs)} (one "
        "output against three: single-output networks, those without CBV trained without the physics term). "
        f"Every run sees {a.samples:,} training samples, so these are short runs with an equal budget, not "
        "trainings to convergence.",
        f"- Noise study: subjects of seeds {profile.noise_study.seeds[0]}–{profile.noise_study.seeds[-1]} "
        f"({len(profile.noise_study.seeds)}), SNR {', '.join(f'{v:g}' for v in profile.noise_study.snrs)}, "
        f"{'×'.join(map(str, profile.noise_study.shape))} voxels of "
        f"{'×'.join(f'{v:g}' for v in profile.noise_study.voxel_mm)} mm.",
        f"- Baselines: {', '.join(m for m in profile.baselines if m in METHODS)}"
        + (f"; options {profile.method_options}" if profile.method_options else "")
        + "".join(f"; {m} is not available in this installation" for m in profile.baselines if m not in METHODS) + ".",
    ]


def _run_times(seconds: dict) -> list[str]:
    if not seconds:
        return []
    table = pd.DataFrame({"notebook": [*seconds, "total"], "seconds": [*seconds.values(), sum(seconds.values())]})
    return ["## Run time", "",
            f"Wall-clock seconds of this run on {_machine()}. Cached steps (cohort, training, maps) take "
            "seconds when they are still valid.", "", markdown_table(table, floatfmt=".0f")]


def _machine() -> str:
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} CPU cores (load average {load:.1f} at the end)"


def write_readme(report_dir, profile: Profile, *, device: str = "cpu", manifest=None, notebooks=(),
                 seconds: dict | None = None) -> Path:
    """Write ``report_dir/README.md`` from the tables the notebooks saved there (and the notebooks' run times)."""
    report_dir = Path(report_dir)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Results: profile `{profile.name}`",
        "",
        f"Regenerated by `make report PROFILE={profile.name} DEVICE={device}` on {now}, with stnet {__version__} at "
        f"git {_git_revision()}. Executed notebooks are in `notebooks/`. Paper: {paper.CITATION}.",
        "",
        "## Our results beside the paper's",
        "",
        f"### Table 1: hypoperfusion segmentation (Tmax > 6 s) on the labelled test subjects "
        f"(paper: {paper.TABLE1_N_SUBJECTS} patients)",
        "",
        _table(report_dir, "table1", "Table 1"),
        "The ROC-optimal threshold minimises |TPR − (1 − FPR)| for each subject. The column gives its mean. The paper's "
        f"value is {paper.ROC_OPTIMAL_THRESHOLD_S} s, against the clinical 6 s. Paired tests are in `table1_tests.md`.",
        "",
        f"### Table 2: whole-brain agreement with the reference (paper: {paper.TABLE2_N_SUBJECTS} test patients)",
        "",
        _table(report_dir, "table2_beside_paper", "Table 2 beside the paper"),
        "The paper's numbers use the authors' convention: per-slice min–max normalisation, then 1-D SSIM and PSNR on "
        "the brain voxels. The full Table 2 is `table2.md` (standard convention: masked 2-D SSIM, explicit data "
        "range) and `table2_paper_convention.md`. Both cover WB and HP for every map and include paired p-values.",
        "",
        f"### Timing: seconds per 10,000 brain voxels (paper: {paper.TIMING_DEVICE}, batch {paper.TIMING_BATCH})",
        "",
        _table(report_dir, "timing", "Timing", columns=_TIMING_COLUMNS),
        "",
        "### The baselines under noise (not in the paper)",
        "",
        _noise_table(report_dir),
        f"Unseen synthetic subjects ({len(profile.noise_study.seeds)}; TTV's weights were chosen on others) with "
        "Rician noise on the tissue curves, every method at its default settings, errors pooled over the brain "
        "voxels (`baselines_noise.md`, `baselines_noise.png`). The CBF change caused by the noise compares each "
        "method with itself on the noise-free series: it is the error that TTV's regularisation exists to remove. "
        "Against the truth, most of the error at high SNR is a bias shared by every method (the residue's peak "
        "sampled at TR, dispersion, the measured AIF's partial-volume flattening; "
        "`docs/decisions/0021-ttv-shared-bias-and-rejected-alternatives.md`). " + _noise_summary(report_dir, profile)
        + " TTV's gain depends on the voxel size (`docs/decisions/0022-noise-study-on-the-papers-voxel-size.md`).",
        "",
        "## Conventions",
        "",
        "- Units: CBV in ml/100g, CBF in ml/100g/min, MTT and Tmax in s. Maps are NaN outside the brain mask.",
        "- WB is the brain mask. HP is the reference Tmax > 6 s inside the brain. Values are mean (std) over test "
        "subjects (ddof = 1); `[status=k]` counts subjects whose value was excluded or substituted "
        "(`stnet_lib/evaluation.py`).",
        "- Paired tests compare ST-Net with each other method on the same subjects, with the Wilcoxon signed-rank "
        "test and the paired t-test (Benjamini–Hochberg adjusted values are in the CSVs). With few test "
        "subjects, p-values cannot be small.",
        "- Segmentation: Dice, IoU and HD95 [mm] use Tmax > 6 s. The AUC scores each subject's Tmax inside the brain.",
        "",
        "## Profile and settings",
        "",
        *_profile_lines(profile, device, manifest),
        "",
        "## What differs from the paper",
        "",
        *([f"- {item}" for item in paper_departures()]
          or [f"- *The decision files ({DECISIONS_DIR}) are missing: see the repository's docs/decisions/.*"]),
        "",
        "## Files",
        "",
        "Each notebook writes its tables (`.md` and `.csv`) and figures (`.png`) here: "
        + ", ".join(f"`{name}`" for name in notebooks) + ".",
        "",
        *_run_times(seconds or {}),
    ]
    return save_markdown("\n".join(lines), report_dir / "README.md")
