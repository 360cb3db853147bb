"""Stage 3b — training data for ST-Net: subjects held in memory, voxels sampled per epoch.

Each subject's normalised series lives once in a :class:`PatchTable`; a sample is only a
(subject, x, y, z) index with its reference values, so patches are cut on the fly.

Sampling (after the authors' ``data/from_mat_to_npy.py``, ``reference/anchors_software.md`` §1.4):
hypoperfused voxels (the manifest's ``lesion_mask``, or reference Tmax > 6 s where a subject
has none) on an in-plane grid of stride ``s``, plus normal brain voxels drawn at random,
``r`` times as many. Departures: the grid offset (per subject) and the normal voxels are
redrawn every epoch from ``default_rng([seed, epoch])``, so that the network sees all the data
and a resumed run draws exactly what an uninterrupted one would; validation uses whole
subjects (``split == "val"``), not a random 20 % of pooled voxels (the authors' split leaks
neighbouring voxels of one patient into both sets).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ..constants import TMAX_THRESHOLD_S
from ..io import load_nifti, load_scan
from .._validation import StnetInputError
from .alignment import arrival_lag_s
from .inputs import NetworkInputs, scan_inputs
from .patches import PatchTable
from .stnet import TARGET_NAMES

__all__ = ["BOUNDARY_S", "Subject", "Cohort", "load_subjects", "sample_epoch"]

#: Tmax band [s] of the boundary sampling group: below the 6 s lesion threshold, above healthy tissue
#: (the issue's 3–8 s band; from 6 s on the voxels are already the lesion group).
BOUNDARY_S = (3.0, TMAX_THRESHOLD_S)

log = logging.getLogger(__name__)


@dataclass
class Subject:
    """One subject's network inputs, reference maps (x, y, z, 3) and hypoperfusion mask, and how long
    after its arterial curve its brain's mean tissue curve rises [s] (:func:`.alignment.arrival_lag_s`)."""

    subject_id: str
    inputs: NetworkInputs
    targets: np.ndarray
    lesion_mask: np.ndarray
    arrival_lag_s: float = float("nan")


class Cohort:
    """Subjects concatenated into flat tensors: a :class:`PatchTable` and one row per brain voxel.

    Attributes (tensors; ``n`` = usable brain voxels of all subjects)
    ----------
    table : PatchTable
    subject : (n,) long; coords : (n, 3) long; targets : (n, 3) float32 (CBV, CBF, Tmax)
    baseline, tissue_integral : (n,) float32 (∫C_t [mM·s]); lesion : (n,) bool (numpy, for sampling)
    aif_curves : (n_subjects, T); aif_integral_mM_s, k_av : (n_subjects,)
    """

    def __init__(self, subjects: list[Subject], patch_size: int = 7) -> None:
        if not subjects:
            raise StnetInputError("no subjects to train on: check the manifest's split column")
        self.subject_ids = [s.subject_id for s in subjects]
        self.table = PatchTable([torch.from_numpy(s.inputs.volume) for s in subjects], patch_size)
        rows = [self._rows(i, s) for i, s in enumerate(subjects)]
        self.subject, self.coords, self.targets, self.baseline, self.tissue_integral, lesion = (
            torch.from_numpy(np.concatenate(parts)) for parts in zip(*rows)
        )
        self.lesion = lesion.numpy()
        # host copies for the per-epoch sampling (the tensors may live on a GPU)
        self.subject_np, self.coords_np = self.subject.numpy().copy(), self.coords.numpy().copy()
        self.tmax_np = self.targets[:, 2].numpy().copy()  # true Tmax [s], for the boundary group
        self.aif_curves = torch.from_numpy(np.stack([s.inputs.aif_curve for s in subjects]))
        self.aif_integral_mM_s = torch.tensor([s.inputs.aif_integral_mM_s for s in subjects], dtype=torch.float32)
        self.k_av = torch.tensor([s.inputs.k_av for s in subjects], dtype=torch.float32)
        self.arrival_lag_s = np.array([s.arrival_lag_s for s in subjects])  # [s], for the checkpoint's reference

    @staticmethod
    def _rows(index: int, subject: Subject):
        usable = subject.inputs.brain_mask & np.isfinite(subject.targets).all(axis=-1)
        coords = np.argwhere(usable).astype(np.int64)
        n = len(coords)
        return (np.full(n, index, dtype=np.int64), coords, subject.targets[usable].astype(np.float32),
                subject.inputs.baseline[usable].astype(np.float32),
                subject.inputs.tissue_integral_mM_s[usable].astype(np.float32), subject.lesion_mask[usable])

    def __len__(self) -> int:
        return len(self.subject)

    def to(self, device, table_dtype: torch.dtype | None = None) -> Cohort:
        """Move every tensor to ``device`` (in place; returns self); ``table_dtype``: :meth:`PatchTable.to`'s."""
        self.table.to(device, table_dtype)
        for name in ("subject", "coords", "targets", "baseline", "tissue_integral", "aif_curves",
                     "aif_integral_mM_s", "k_av"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def batch(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Network inputs and loss terms of the voxel rows ``rows`` (long, (B,)).

        The patches (B, 1, 7, 7, T) are contiguous, which with one channel is also the channels-last
        3-D layout: a channels-last network reads them without a copy.
        """
        subject, coords = self.subject[rows], self.coords[rows]
        patches = self.table.gather(subject, coords)  # (B, 1, 7, 7, T)
        n_frames = patches.shape[-1]
        reference = torch.stack(
            [self.baseline[rows].unsqueeze(-1).expand(-1, n_frames), self.aif_curves[subject]], dim=1
        )  # (B, 2, T)
        return {"patches": patches, "reference": reference, "targets": self.targets[rows],
                "tissue_integral": self.tissue_integral[rows], "aif_integral": self.aif_integral_mM_s[subject],
                "k_av": self.k_av[subject]}


def _load_map(path, shape, what: str) -> np.ndarray:
    if path is None:
        raise StnetInputError(f"the manifest gives no {what} map: training needs reference cbv, cbf and tmax")
    data = np.asarray(load_nifti(path, f"reference {what} map").dataobj, dtype=np.float64)
    if data.shape[:3] != shape:
        raise StnetInputError(f"{what} map {path} has shape {data.shape}, the series {shape}")
    return data.reshape(shape)


def load_subjects(manifest, split: str, *, n_frames: int, dt_s: float,
                  normalisation: str = "concentration", vof_correction: bool = False,
                  workers: int | None = None) -> list[Subject]:
    """Read the subjects of one split of a loaded manifest (``load_manifest``) into memory.

    ``workers`` subjects are read at once on threads (decompression and the numpy work release
    the GIL; default: half the CPU count, at most 8): a paper-size subject takes ~3 s on one
    core, and the paper profile's 52 train and val subjects loaded in ~65 s with 8 threads on a
    16-core GPU machine. The order is the manifest's for any ``workers``.
    """
    rows = list(manifest[manifest["split"] == split].itertuples())
    workers = min(8, (os.cpu_count() or 2) // 2) if workers is None else workers

    def load(row) -> Subject:
        return _load_subject(row, split, n_frames=n_frames, dt_s=dt_s, normalisation=normalisation,
                             vof_correction=vof_correction)

    if workers <= 1 or len(rows) <= 1:
        return [load(row) for row in rows]
    with ThreadPoolExecutor(min(workers, len(rows))) as pool:
        return list(pool.map(load, rows))


def _load_subject(row, split: str, *, n_frames: int, dt_s: float, normalisation: str, vof_correction: bool) -> Subject:
    """One manifest row as a :class:`Subject` (normalised inputs, targets, lesion mask)."""
    tr_s = None if not np.isfinite(row.tr_s) else row.tr_s
    scan = load_scan(row.dsc, row.aif_mask, row.vof_mask, row.brain_mask, row.te_ms, tr_s, field_t=row.field_t)
    if vof_correction and scan.vof_mask is None:
        raise StnetInputError(f"subject {row.subject_id} has no vof_mask, but the others have: give every "
                              "training subject a VOF mask or none")
    inputs, _, _ = scan_inputs(scan, n_frames=n_frames, dt_s=dt_s, normalisation=normalisation,
                               vof_correction=vof_correction)  # the AIF/VOF found where the manifest has none
    shape = scan.signal.shape[:3]
    targets = np.stack([_load_map(getattr(row, name), shape, name) for name in TARGET_NAMES], axis=-1)
    if row.lesion_mask is not None:
        lesion = np.asarray(load_nifti(row.lesion_mask, "lesion mask").dataobj).reshape(shape) > 0.5
    else:
        lesion = np.nan_to_num(targets[..., 2], nan=0.0) > TMAX_THRESHOLD_S
    log.info("loaded %s (%s): %d brain voxels", row.subject_id, split, int(scan.brain_mask.sum()))
    lag_s = arrival_lag_s(inputs.volume, inputs.brain_mask, inputs.aif_curve, dt_s)
    return Subject(str(row.subject_id), inputs, targets, lesion & scan.brain_mask, lag_s)


def sample_epoch(cohort: Cohort, *, stride: int, ratio: float, rng: np.random.Generator,
                 random_offset: bool = True, boundary_fraction: float = 0.0,
                 boundary_s: tuple[float, float] = BOUNDARY_S) -> np.ndarray:
    """Row indices of one epoch: lesion voxels on a stride grid + ``ratio``× normal voxels, shuffled.

    With ``boundary_fraction`` > 0 that share of the normal draws comes from the *boundary
    group*: normal voxels whose true Tmax lies in ``boundary_s`` (a departure from the paper's two
    groups; docs/decisions/0072-boundary-sampling-and-tmax-scale.md). The paper's sampling draws
    them by chance only (about 1 % of an epoch), so the network sees little of the band where the
    6 s threshold is decided.

    Parameters
    ----------
    cohort : Cohort
    stride : int
        In-plane grid step for the hypoperfused voxels (1 takes them all).
    ratio : float
        Normal : lesion sample ratio.
    rng : numpy.random.Generator
    random_offset : bool
        Draw the grid offset per subject (training) or use offset 0 (a fixed validation set).
    boundary_fraction : float
        Share (0–1) of the normal samples drawn from the boundary group (0 = the paper's sampling).
    boundary_s : (float, float)
        Tmax band [s] of the boundary group (low inclusive; voxels above the lesion threshold are lesion).

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    subject, coords = cohort.subject_np, cohort.coords_np
    n_subjects = int(subject.max()) + 1 if len(subject) else 0
    offsets = rng.integers(0, stride, size=(n_subjects, 2)) if random_offset else np.zeros((n_subjects, 2), int)
    on_grid = ((coords[:, :2] - offsets[subject]) % stride == 0).all(axis=1)
    lesion_rows = np.flatnonzero(cohort.lesion & on_grid)
    normal_rows = np.flatnonzero(~cohort.lesion)
    if len(lesion_rows) == 0:  # no hypoperfusion anywhere: fall back to normal voxels on the grid
        chosen = np.flatnonzero(~cohort.lesion & on_grid)
    else:
        n_normal = min(int(round(ratio * len(lesion_rows))), len(normal_rows))
        chosen = np.concatenate([lesion_rows, _normal_draws(cohort, normal_rows, n_normal, rng, boundary_fraction,
                                                            boundary_s)])
    return rng.permutation(chosen)


def _normal_draws(cohort: Cohort, normal_rows: np.ndarray, n: int, rng: np.random.Generator, fraction: float,
                  band_s: tuple[float, float]) -> np.ndarray:
    """``n`` distinct normal rows, ``fraction`` of them (as far as there are) from the Tmax band ``band_s``."""
    if not 0.0 <= fraction <= 1.0:
        raise StnetInputError(f"boundary_fraction must be in [0, 1]; got {fraction}")
    if fraction == 0.0:
        return rng.choice(normal_rows, size=n, replace=False)
    tmax = cohort.tmax_np[normal_rows]
    in_band = (tmax >= band_s[0]) & (tmax < band_s[1])
    band, rest = normal_rows[in_band], normal_rows[~in_band]
    n_band = min(int(round(fraction * n)), len(band))
    n_rest = min(n - n_band, len(rest))
    return np.concatenate([rng.choice(band, size=n_band, replace=False), rng.choice(rest, size=n_rest, replace=False)])
