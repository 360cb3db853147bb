"""Stage 1 (synthetic data): the synthetic stroke cohort of a profile, written to disk resumably.

A profile (:class:`CohortProfile`; the built-in ones are the ``cohort`` of
:data:`stnet_lib.profiles.PROFILES`, passed in) fixes the cohort size, grid and split; subject ``i`` is
simulated from ``numpy.random.default_rng([seed, i])``, so every subject is reproducible on its
own and a re-run regenerates only what is missing. Each subject is written into
``<out>/.tmp-<id>`` and renamed to ``<out>/<id>`` once complete; ``complete.json`` (file sizes,
SHA-256, a fingerprint of the generating configuration) is what marks a subject valid.
``<out>/data_manifest.csv`` indexes the cohort (``stnet_lib.manifest``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import zlib
import multiprocessing
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import __version__
from ..manifest import write_manifest
from .anatomy import MNI_NOTICE
from .reference import rapid_like_maps
from .statistics import subject_statistics
from .realism import Realism
from .subject import Subject, SubjectConfig, draw_acquisition, make_subject
from .._files import sha256_file as _sha256

__all__ = ["CohortProfile", "SIMULATION_VERSION", "subject_plan", "sidecar", "write_subject",
           "subject_is_complete", "simulate_cohort", "cohort_table", "root_manifest_table"]

log = logging.getLogger(__name__)

#: Bumped whenever the simulator's output changes for a given seed (invalidates old subjects).
SIMULATION_VERSION = 2  # 2: the realism features of issue #16 (decision 0040)
#: Mask files; ``vessel_mask`` holds labels (1 artery, 2 vein), ``wmh_mask`` white-matter disease.
MASK_FILES = {"brain_mask": "brain", "aif_mask": "aif", "vof_mask": "vof", "lesion_mask": "lesion", "core_mask": "core",
              "vessel_mask": "vessel", "wmh_mask": "wmh"}
MAP_FILES = ("cbv", "cbf", "mtt", "tmax", "delay", "dispersion")
#: Tissue fractions; ``pvessel`` is the large-vessel blood volume fraction.
TISSUE_FILES = {"gm": "pgm", "wm": "pwm", "csf": "pcsf", "vessel": "pvessel"}
RAPID_NAMES = ("cbv", "cbf", "mtt", "tmax", "lesion_mask")


@dataclass(frozen=True)
class CohortProfile:
    """Size, grid and split of a synthetic cohort.

    The split follows the paper: every train/val subject has a lesion label; the test set has
    ``n_test_labelled`` labelled subjects and ``n_test_unlabelled`` others, of which
    ``n_no_lesion`` have no lesion at all.
    """

    name: str
    shape: tuple[int, int, int]  # grid (x, y, z)
    voxel_mm: tuple[float, float, float]  # voxel size [mm]
    n_train: int
    n_val: int
    n_test_labelled: int
    n_test_unlabelled: int
    n_no_lesion: int
    seed: int
    n_frames: int = 50
    realism: Realism = Realism()  # realism features (issue #16); Realism.none(): the simulator before
    #: extra training subjects after the paper's split (indices n_subjects, n_subjects + 1, …; the paper's
    #: subjects keep their seeds), none of them physiological: every one has an arterial curve without the
    #: steady-state plateau and the late recirculation (``Realism.aif_plateau`` off), and every other one
    #: (the first, third, …) a healthy MTT log-uniform over ``wide_mtt_range_s``, independent of CBV. They
    #: teach ST-Net to read CBF from the curves rather than from this simulator's plateau and MTT prior
    #: (decision 0077); validation and test subjects are never variants.
    n_train_variants: int = 0
    wide_mtt_range_s: tuple[float, float] = (2.0, 25.0)

    @property
    def n_subjects(self) -> int:
        """Size of the paper's split (the training variants not counted)."""
        return self.n_train + self.n_val + self.n_test_labelled + self.n_test_unlabelled

    @property
    def n_total(self) -> int:
        """Subjects simulated: the paper's split and the training variants."""
        return self.n_subjects + self.n_train_variants


def subject_plan(profile: CohortProfile, seed: int | None = None) -> pd.DataFrame:
    """One row per subject: ``subject_id``, ``index``, ``split``, ``has_lesion``, ``has_lesion_label``, ``wide_mtt``,
    ``plain_aif``."""
    rows = []
    labelled = profile.n_train + profile.n_val + profile.n_test_labelled
    for index in range(profile.n_total):
        variant = index >= profile.n_subjects
        split = ("train" if variant or index < profile.n_train
                 else "val" if index < profile.n_train + profile.n_val else "test")
        rows.append({"subject_id": f"sub-{index + 1:03d}", "index": index, "split": split,
                     "has_lesion": variant or index < profile.n_subjects - profile.n_no_lesion,
                     "has_lesion_label": variant or index < labelled,
                     "wide_mtt": variant and (index - profile.n_subjects) % 2 == 0, "plain_aif": variant})
    plan = pd.DataFrame(rows)
    plan.attrs["seed"] = profile.seed if seed is None else seed
    return plan


def subject_config(profile: CohortProfile, has_lesion: bool, noise: bool = True, wide_mtt: bool = False,
                   plain_aif: bool = False) -> SubjectConfig:
    """The :class:`SubjectConfig` of one subject of ``profile`` (``wide_mtt``, ``plain_aif``: the training
    variants of decision 0077)."""
    realism = profile.realism.without("aif_plateau") if plain_aif else profile.realism
    return SubjectConfig(shape=profile.shape, voxel_mm=profile.voxel_mm, n_frames=profile.n_frames,
                         has_lesion=has_lesion, noise=noise, realism=realism,
                         mtt_range_s=tuple(profile.wide_mtt_range_s) if wide_mtt else None)


def _fingerprint(config: SubjectConfig, seed: int, index: int, rapid_like: bool = False) -> str:
    text = json.dumps({"config": dataclasses.asdict(config), "seed": seed, "index": index,
                       "version": SIMULATION_VERSION, **({"rapid_like": True} if rapid_like else {})}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _save(data: np.ndarray, affine: np.ndarray, path: Path, *, tr_s: float | None = None) -> None:
    """Write a .nii.gz; the 4th zoom is TR [s] for a series.

    The file is compressed in blocks of 16 MiB on two threads (zlib releases the GIL), written
    as consecutive gzip members, which gzip readers (Python's, nibabel's, zlib's) read as one
    stream. Level 1, nibabel's own default.
    """
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    if tr_s is not None:
        image.header.set_zooms(image.header.get_zooms()[:3] + (tr_s,))
    raw = memoryview(image.to_bytes())
    blocks = [raw[start : start + _GZIP_BLOCK] for start in range(0, len(raw), _GZIP_BLOCK)]
    with ThreadPoolExecutor(2) as pool:
        members = list(pool.map(_gzip_member, blocks))
    with open(path, "wb") as handle:
        for member in members:
            handle.write(member)


_GZIP_BLOCK = 16 << 20


def _gzip_member(block) -> bytes:
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    return compressor.compress(block) + compressor.flush()


def _series(subject: Subject, noise: bool) -> np.ndarray:
    """int16 magnitude (as scanners store it) for noisy series; float32 for noise-free ones."""
    if not noise:
        return subject.signal.astype(np.float32)
    out = np.empty(subject.signal.shape, np.int16)
    for index in range(out.shape[0]):
        out[index] = np.clip(np.rint(subject.signal[index]), 0, np.iinfo(np.int16).max)
    return out


def write_subject(subject: Subject, folder: Path, *, noise: bool = True, fingerprint: str = "",
                  rapid_like: bool = False) -> dict:
    """Write a subject's files into ``folder`` (created) and return its ``complete.json`` record.

    ``rapid_like`` adds ``rapid_{cbv,cbf,mtt,tmax,lesion_mask}.nii.gz`` (:mod:`.reference`).
    """
    folder.mkdir(parents=True)
    if rapid_like:
        for name, volume in rapid_like_maps(subject).items():
            _save(volume.astype(np.uint8 if name.endswith("mask") else np.float32), subject.affine, folder / f"rapid_{name}.nii.gz")
    _save(_series(subject, noise), subject.affine, folder / "dsc.nii.gz", tr_s=subject.tr_s)
    (folder / "dsc.json").write_text(json.dumps(sidecar(subject), indent=1))
    for name, key in MASK_FILES.items():
        _save(subject.masks[key].astype(np.uint8), subject.affine, folder / f"{name}.nii.gz")
    for name in MAP_FILES:
        _save(subject.truth[name].astype(np.float32), subject.affine, folder / f"{name}.nii.gz")
    for key, name in TISSUE_FILES.items():
        _save(subject.tissue[key].astype(np.float32), subject.affine, folder / f"{name}.nii.gz")
    summary = subject_summary(subject)
    record = {**subject.params, "summary": summary, "c_aif_mM": np.round(subject.c_aif, 6).tolist(),
              "c_vof_mM": np.round(subject.c_vof, 6).tolist(), "stnet_version": __version__}
    (folder / "subject.json").write_text(json.dumps(record, indent=1))
    files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(folder.iterdir())}
    complete = {"fingerprint": fingerprint, "files": files, "summary": summary,
                "te_ms": subject.te_ms, "tr_s": subject.tr_s, "field_t": subject.field_t,
                "shape": list(subject.signal.shape)}
    (folder / "complete.json").write_text(json.dumps(complete, indent=1))
    return complete


def sidecar(subject: Subject) -> dict:
    """The series' BIDS sidecar (``dsc.json`` beside ``dsc.nii.gz``): EchoTime [s], RepetitionTime [s],
    MagneticFieldStrength [T] and SliceTiming [s] (each slice's acquisition time within TR; all 0
    without slice timing)."""
    timing = subject.slice_timing_s if subject.slice_timing_s is not None else np.zeros(subject.signal.shape[2])
    return {"EchoTime": round(subject.te_ms / 1000.0, 7), "RepetitionTime": subject.tr_s, "MagneticFieldStrength": subject.field_t,
            "SliceTiming": [round(float(t), 6) for t in timing]}


def subject_summary(subject: Subject) -> dict:
    """Volumes [ml] and scalars that the manifest and the cohort notebook report."""
    voxel_ml = float(np.prod(subject.params["config"]["voxel_mm"])) / 1000.0
    lesion, core = subject.masks["lesion"], subject.masks["core"]
    return {**subject_statistics(subject), "snr": round(subject.snr, 3), "n_baseline_frames": subject.params["n_baseline_frames"],
            "hypoperfusion_ml": round(float(lesion.sum()) * voxel_ml, 3),
            "tmax10_ml": round(float((np.nan_to_num(subject.truth["tmax"]) > 10).sum()) * voxel_ml, 3),
            "core_ml": round(float(core.sum()) * voxel_ml, 3),
            "brain_ml": round(float(subject.masks["brain"].sum()) * voxel_ml, 3),
            "vessel_ml": round(float((subject.masks["vessel"] > 0).sum()) * voxel_ml, 3),
            "wmh_ml": round(float(subject.masks["wmh"].sum()) * voxel_ml, 3),
            "older": bool(subject.params["realism"]["older"]), "n_non_steady_frames": subject.params["n_non_steady_frames"]}


def subject_is_complete(folder: Path, fingerprint: str | None = None, *, verify: bool = False) -> bool:
    """True if ``folder`` holds a complete subject (sizes, and checksums when ``verify``)."""
    marker = folder / "complete.json"
    try:
        complete = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if fingerprint is not None and complete.get("fingerprint") != fingerprint:
        return False
    for name, info in complete.get("files", {}).items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != info["bytes"]:
            return False
        if verify and _sha256(path) != info["sha256"]:
            return False
    return bool(complete.get("files"))


def simulate_cohort(profile: CohortProfile, out: Path, *, seed: int | None = None, noise: bool = True,
                    verify: bool = False, limit: int | None = None, progress: bool = True,
                    rapid_like: bool = False, jobs: int = 1) -> pd.DataFrame:
    """Simulate (or complete) the cohort of ``profile`` in ``out``; write and return its manifest.

    Parameters
    ----------
    profile : CohortProfile
    out : Path
        Cohort folder; subjects already complete and valid are kept.
    seed : int, optional
        Overrides the profile's seed.
    noise : bool
        False writes noise-free float32 series (for checks).
    verify : bool
        Check every kept subject's SHA-256 checksums, not only its file sizes.
    limit : int, optional
        Simulate only the first ``limit`` subjects (the manifest lists those).
    progress : bool
        Show a progress bar (one step per subject).
    rapid_like : bool
        Also write the "RAPID-like" reference maps (fixed oSVD on the noise-free curves), listed in
        the manifest as ``rapid_cbv`` … ``rapid_lesion_mask``.
    jobs : int
        Subjects simulated at once, each in its own process (for many-core machines: a paper-size
        subject takes ~4 s on 2 cores). Every subject draws from its own generator, so the files
        are identical for any ``jobs``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".tmp-*"):
        shutil.rmtree(stale)
    (out / "MNI152_NOTICE.txt").write_text(MNI_NOTICE + "\n")
    plan = subject_plan(profile, seed)
    plan = plan.iloc[:limit] if limit is not None else plan
    todo = []
    for row in plan.itertuples():
        config = subject_config(profile, row.has_lesion, noise, row.wide_mtt, row.plain_aif)
        fingerprint = _fingerprint(config, plan.attrs["seed"], row.index, rapid_like)
        if not subject_is_complete(out / row.subject_id, fingerprint, verify=verify):
            todo.append((config, (plan.attrs["seed"], row.index), out, row.subject_id, noise, fingerprint, rapid_like))
    bar = tqdm(total=len(plan), initial=len(plan) - len(todo), desc=f"simulate {profile.name}", unit="subject",
               disable=not progress)
    with bar:
        if jobs > 1 and len(todo) > 1:
            _simulate_in_processes(todo, jobs, bar)
        else:
            _simulate_in_order(todo, bar)
    table = cohort_table(plan, out, profile.name)
    write_manifest(table, out / "data_manifest.csv")
    return table


def _simulate_in_order(todo: list[tuple], bar) -> None:
    """One process: subject i is written on a thread while subject i + 1 is simulated."""
    pending = None
    with ThreadPoolExecutor(1) as writer:
        for config, seed_index, out, subject_id, noise, fingerprint, rapid_like in todo:
            subject = make_subject(config, np.random.default_rng(list(seed_index)))
            if pending is not None:
                pending.result()
                bar.update()
            pending = writer.submit(_commit, subject, out, subject_id, noise, fingerprint, rapid_like)
        if pending is not None:
            pending.result()
            bar.update()


def _simulate_in_processes(todo: list[tuple], jobs: int, bar) -> None:
    """``jobs`` worker processes (spawned: no forked torch or BLAS thread state), one subject each."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=context) as pool:
        futures = [pool.submit(_simulate_and_commit, *task) for task in todo]
        try:
            for future in as_completed(futures):
                future.result()
                bar.update()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _simulate_and_commit(config: SubjectConfig, seed_index: tuple[int, int], out: Path, subject_id: str, noise: bool,
                         fingerprint: str, rapid_like: bool) -> None:
    """Worker of :func:`_simulate_in_processes`: one subject, simulated and written whole."""
    subject = make_subject(config, np.random.default_rng(list(seed_index)))
    _commit(subject, out, subject_id, noise, fingerprint, rapid_like)


def _commit(subject: Subject, out: Path, subject_id: str, noise: bool, fingerprint: str, rapid_like: bool) -> None:
    """Write into ``.tmp-<id>`` and rename to ``<id>``: a subject folder is whole or absent."""
    tmp, folder = out / f".tmp-{subject_id}", out / subject_id
    write_subject(subject, tmp, noise=noise, fingerprint=fingerprint, rapid_like=rapid_like)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


def _row(plan_row, folder: Path, te_ms: float, tr_s: float, field_t: float, base: Path) -> dict:
    """A manifest row; ``base`` is the manifest's folder (extra path columns are written relative to it)."""
    row = {"subject_id": plan_row.subject_id, "split": plan_row.split, "dsc": folder / "dsc.nii.gz"}
    row.update({name: folder / f"{name}.nii.gz" for name in ("brain_mask", "aif_mask", "vof_mask", "lesion_mask")})
    row.update({name: folder / f"{name}.nii.gz" for name in ("cbv", "cbf", "mtt", "tmax")})
    row.update({"te_ms": te_ms, "tr_s": tr_s, "field_t": field_t, "has_lesion_label": bool(plan_row.has_lesion_label),
                "core_mask": os.path.relpath(folder / "core_mask.nii.gz", base), "has_lesion": bool(plan_row.has_lesion),
                "wide_mtt": bool(plan_row.wide_mtt), "plain_aif": bool(plan_row.plain_aif)})
    return row


def cohort_table(plan: pd.DataFrame, out: Path, profile_name: str) -> pd.DataFrame:
    """Manifest rows of the subjects in ``plan`` written in ``out`` (from their complete.json)."""
    rows = []
    for plan_row in plan.itertuples():
        folder = Path(out) / plan_row.subject_id
        complete = json.loads((folder / "complete.json").read_text())
        row = _row(plan_row, folder, complete["te_ms"], complete["tr_s"], complete["field_t"], Path(out))
        row.update(complete["summary"])
        row.update({"profile": profile_name, "dsc_sha256": complete["files"]["dsc.nii.gz"]["sha256"]})
        row.update({f"rapid_{name}": f"{plan_row.subject_id}/rapid_{name}.nii.gz" for name in RAPID_NAMES
                    if f"rapid_{name}.nii.gz" in complete["files"]})
        rows.append(row)
    return pd.DataFrame(rows)


def root_manifest_table(data_dir: Path, root: Path, profiles: Iterable[CohortProfile]) -> pd.DataFrame:
    """Manifest rows of the cohorts ``profiles`` as generated under ``data_dir/<name>``, without simulating.

    ``root`` is the folder the manifest will be written in (the repository root).
    TE, TR and field come from each subject's acquisition stream, which is drawn first and
    independently of everything else (:func:`~stnet_lib.simulation.subject.make_subject`).
    """
    rows = []
    for profile in profiles:
        name = profile.name
        plan = subject_plan(profile)
        for plan_row in plan.itertuples():
            acq = draw_acquisition(np.random.default_rng([plan.attrs["seed"], plan_row.index]).spawn(5)[0])
            folder = Path(data_dir) / name / plan_row.subject_id
            row = _row(plan_row, folder, acq["te_ms"], acq["tr_s"], acq["field_t"], Path(root))
            row.update({"snr": acq["snr"], "profile": name, "subject_id": f"{name}/{plan_row.subject_id}"})
            rows.append(row)
    return pd.DataFrame(rows)
