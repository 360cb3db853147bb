"""A small synthetic cohort on which ST-Net must learn, and one network trained on it per session.

Independent of ``stnet_lib.simulation``: each subject is a 12×12×2 series of 30 frames (TR 1.5 s,
TE 30 ms, S0 500, Gaussian noise σ 4) with CBF, MTT and the bolus delay drawn as independent
smooth fields, so that CBV (= CBF·MTT/60), CBF and Tmax (= the delay of the exponential residue)
vary independently; the arterial curve (voxel (0, 0, 0), a gamma variate whose arrival and peak
change from subject to subject) is rendered through the quadratic blood relaxivity. Training
goes through the library's own path (``train_from_manifest``: NIfTI files, manifest, curve
preparation), so that anything that differs between training and inference shows.
"""

from __future__ import annotations

import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch
from scipy.ndimage import gaussian_filter

from curves import FINE_DT_S, gamma_variate
from stnet_synthetic import write_subject
from stnet_lib.constants import K_H, RHO_G_PER_ML
from stnet_lib.manifest import write_manifest
from stnet_lib.network import STNetConfig, TrainConfig, train_from_manifest
from stnet_lib.signal import concentration_to_delta_r2, delta_r2_to_signal

SHAPE, N_FRAMES, TR_S, TE_MS, S0, NOISE_SD = (12, 12, 2), 30, 1.5, 30.0, 500.0, 4.0
#: Splits of the cohort, in subject order.
SPLITS = ("train",) * 16 + ("val",) * 6 + ("test",) * 6
#: A narrower ST-Net than the paper's (same layers and wiring), so that it learns within seconds.
LEARNING_MODEL = STNetConfig(n_frames=N_FRAMES, dt_s=TR_S, spatial_channels=(4, 8, 16, 32), temporal_channels=32,
                             pathway_out_channels=16, fc_hidden=64)
LEARNING_TRAIN = TrainConfig(epochs=18, patience=18, lr=3e-3, lr_schedule="cosine", lr_min=1e-4, batch_size=64,
                             stride=1, ratio=1.0, seed=11, eval_batch_size=512, time_shift_frames=2)


def _field(rng, low: float, high: float, sigma: float) -> np.ndarray:
    field = gaussian_filter(rng.normal(size=SHAPE[:2]), sigma, mode="wrap")
    field = (field - field.min()) / (np.ptp(field) + 1e-12)
    return np.repeat((low + (high - low) * field)[..., None], SHAPE[2], axis=2)


def make_subject(rng: np.random.Generator) -> dict:
    """Signal (x, y, z, t), masks and truth maps of one subject."""
    cbf = _field(rng, 15.0, 70.0, 2.0)
    mtt = _field(rng, 2.5, 8.0, 2.5)
    delay = np.round(_field(rng, 0.0, 8.0, 3.0) / 0.25) * 0.25
    cbv = cbf * mtt / 60.0
    fine_t = np.arange(0, N_FRAMES * TR_S, FINE_DT_S)
    c_aif_fine = gamma_variate(fine_t, t0_s=rng.uniform(6, 12), beta_s=rng.uniform(1.2, 2.0),
                               peak_mM=rng.uniform(4, 8))
    frames = np.arange(N_FRAMES) * TR_S
    residue = np.exp(-fine_t[None, :] / mtt.reshape(-1, 1))
    n_fft = 2 * fine_t.size
    conv = np.fft.irfft(np.fft.rfft(c_aif_fine, n_fft) * np.fft.rfft(residue, n_fft, axis=-1), n_fft, axis=-1)
    c_fine = (RHO_G_PER_ML / K_H) * (cbf.reshape(-1, 1) / 6000.0) * conv[:, : fine_t.size] * FINE_DT_S
    c_tissue = np.stack([np.interp(frames - d, fine_t, c, left=0.0) for c, d in zip(c_fine, delay.ravel())])
    delta_r2 = concentration_to_delta_r2(c_tissue.reshape(SHAPE + (N_FRAMES,)), kind="tissue")
    delta_r2[0, 0, :] = concentration_to_delta_r2(np.interp(frames, fine_t, c_aif_fine), kind="arterial")
    signal = delta_r2_to_signal(delta_r2, S0, TE_MS) + rng.normal(0, NOISE_SD, SHAPE + (N_FRAMES,))
    brain = np.ones(SHAPE, bool)
    brain[0, 0, :] = False
    return {"signal": signal.astype(np.float32), "brain": brain, "aif": ~brain, "cbv": cbv, "cbf": cbf,
            "mtt": mtt, "tmax": delay, "lesion": (delay > 4.0) & brain}


def write_cohort(folder: Path, seed: int = 2024) -> Path:
    """One NIfTI folder per subject and ``data_manifest.csv`` (splits :data:`SPLITS`); return its path."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    rows = []
    for i, split in enumerate(SPLITS):
        rows.append(write_subject(folder / f"sub-{i:02d}", make_subject(rng), affine, split=split, tr_s=TR_S,
                                  te_ms=TE_MS, field_t=1.5))
    return write_manifest(pd.DataFrame(rows), folder / "data_manifest.csv")


_RUNS: dict = {}


def trained_network(tmp_path_factory) -> dict:
    """Train :data:`LEARNING_MODEL` on the cohort's ``train`` subjects once per test session.

    Returns ``checkpoint`` (``best.pt``), ``manifest``, ``folder``, and ``seconds`` and
    ``cpu_seconds`` of the training (wall clock and process CPU time).
    """
    if "run" not in _RUNS:
        folder = tmp_path_factory.mktemp("learning")
        manifest = write_cohort(folder / "cohort")
        wall, cpu, threads = time.perf_counter(), time.process_time(), torch.get_num_threads()
        # one thread: on a machine shared with other jobs, 2 OpenMP threads on 2 busy cores trained
        # 5-10x slower than one (threads spin-waiting for a descheduled sibling); alone, 1.5x faster
        torch.set_num_threads(1)
        try:
            best = train_from_manifest(manifest, folder / "run", LEARNING_TRAIN, model_config=LEARNING_MODEL,
                                       progress=False)
        finally:
            torch.set_num_threads(threads)
        _RUNS["run"] = {"checkpoint": best, "manifest": manifest, "folder": folder,
                        "seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}
    return _RUNS["run"]


def split_subjects(manifest: Path, split: str) -> list[tuple]:
    """(scan, truth) of each subject of ``split``: ``truth`` maps ``cbv``, ``cbf``, ``tmax`` to volumes."""
    from stnet_lib import load_scan
    from stnet_lib.manifest import load_manifest

    table = load_manifest(manifest)
    cases = []
    for row in table[table["split"] == split].itertuples():
        scan = load_scan(row.dsc, row.aif_mask, None, row.brain_mask, row.te_ms, row.tr_s, field_t=row.field_t)
        truth = {name: np.asarray(nib.load(getattr(row, name)).dataobj, dtype=np.float64)
                 for name in ("cbv", "cbf", "tmax")}
        cases.append((scan, truth))
    return cases


def agreement(cases: list[tuple], predict) -> dict:
    """Pearson r of CBV and CBF, their MAE relative to the truth's mean, and the MAE of Tmax [s], pooled over the brains.

    ``predict(scan)`` returns :class:`~stnet_lib.maps.PerfusionMaps`.
    """
    pooled = {name: ([], []) for name in ("cbv", "cbf", "tmax")}
    for scan, truth in cases:
        maps = predict(scan)
        for name, (true, estimate) in pooled.items():
            true.append(truth[name][scan.brain_mask])
            estimate.append(getattr(maps, name)[scan.brain_mask])
    values = {name: (np.concatenate(t), np.concatenate(e)) for name, (t, e) in pooled.items()}
    r = {name: float(np.corrcoef(*values[name])[0, 1]) if np.std(values[name][1]) > 0 else 0.0
         for name in ("cbv", "cbf")}
    relative = {name: float(np.abs(np.subtract(*values[name])).mean() / values[name][0].mean()) for name in ("cbv", "cbf")}
    return {"r_cbv": r["cbv"], "r_cbf": r["cbf"], "rel_mae_cbv": relative["cbv"], "rel_mae_cbf": relative["cbf"],
            "mae_tmax_s": float(np.abs(np.subtract(*values["tmax"])).mean())}
