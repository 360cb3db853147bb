"""Seconds per paper-size synthetic subject (256×256×20×50), simulation and writing, on this CPU.

Goal (issue #3): at most 10 s per subject on the 2-core CPU. Also prints voxels/s of the tissue
curve synthesis against a naive per-voxel fine-grid convolution (np.convolve at 0.1 s), timed
on a sample of voxels in the same run.

    python bench/simulate.py [--subjects 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stnet_lib.constants import K_H, RHO_G_PER_ML
from stnet_lib.simulation.anatomy import load_templates
from stnet_lib.profiles import PROFILES
from stnet_lib.simulation.cohort import simulate_cohort, subject_config, write_subject
from stnet_lib.simulation.subject import make_subject
from stnet_lib.simulation.vascular import RESIDUE_SHAPES, _peak_time_table, arterial_input, residue


def naive_voxels_per_s(subject, n_voxels: int = 300) -> float:
    """Per-voxel np.convolve of C_a ⊗ h ⊗ R on a 0.1 s grid, then sampling at TR (the obvious loop)."""
    acq = subject.params["acquisition"]
    dt = subject.params["fine_step_s"]
    time_s = np.arange(int(subject.tr_s * 49 / dt) + 2) * dt
    c_aif = arterial_input(time_s, t0_s=acq["aif_t0_s"], alpha=acq["aif_alpha"], beta_s=acq["aif_beta_s"],
                           peak_mM=acq["aif_peak_mM"], recirc_delay_s=acq["recirc_delay_s"],
                           recirc_fraction=acq["recirc_fraction"], recirc_tau_s=acq["recirc_tau_s"])
    brain = subject.masks["brain"]
    maps = {key: subject.truth[key][brain][:n_voxels] for key in ("cbf", "mtt", "delay", "dispersion", "residue_shape")}
    frames = np.arange(subject.signal.shape[-1]) * subject.tr_s
    start = time.perf_counter()
    for i in range(n_voxels):
        r = residue(RESIDUE_SHAPES[int(maps["residue_shape"][i])], time_s, maps["mtt"][i])
        tau = maps["dispersion"][i]
        if tau > 0:
            h = np.exp(-time_s / tau)
            r = np.convolve(h / h.sum(), r)[: time_s.size]
        c = np.convolve(c_aif, r)[: time_s.size] * dt * RHO_G_PER_ML / K_H * maps["cbf"][i] / 6000.0
        np.interp(frames - maps["delay"][i], time_s, c, left=0.0)
    return n_voxels / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=3, help="subjects in the cohort-loop timing")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    profile = PROFILES["paper"].cohort
    start = time.perf_counter()
    load_templates()
    _peak_time_table()
    print(f"one-off setup (templates, Tmax table): {time.perf_counter() - start:.2f} s")
    print(f"load average before: {os.getloadavg()[0]:.1f} (2 cores; timings stretch when the CPU is shared)")
    config = subject_config(profile, has_lesion=True)
    t0, c0 = time.perf_counter(), time.process_time()
    subject = make_subject(config, np.random.default_rng([profile.seed, 0]))
    t1, c1 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        write_subject(subject, Path(tmp) / "sub")
    t2, c2 = time.perf_counter(), time.process_time()
    n_sim = int((subject.tissue["gm"] + subject.tissue["wm"] > 0.02).sum())
    print(f"one subject, {'×'.join(map(str, subject.signal.shape))}: simulate {t1 - t0:.2f} s (CPU {c1 - c0:.2f} s)"
          f" + write {t2 - t1:.2f} s (CPU {c2 - c1:.2f} s); {n_sim:,} perfused voxels, {n_sim / (t1 - t0):,.0f} voxels/s")
    with tempfile.TemporaryDirectory() as tmp:
        t3 = time.perf_counter()
        simulate_cohort(profile, Path(tmp), limit=args.subjects, progress=False)
        per_subject = (time.perf_counter() - t3) / args.subjects
    print(f"cohort loop (writing overlapped with the next simulation), {args.subjects} subjects: "
          f"{per_subject:.2f} s per paper-size subject (goal ≤ 10 s); load average after: {os.getloadavg()[0]:.1f}")
    naive = naive_voxels_per_s(subject)
    print(f"naive per-voxel fine-grid convolution: {naive:,.0f} voxels/s → {n_sim / naive:.0f} s for this "
          f"subject's curves alone; end-to-end speed-up ×{(n_sim / naive) / (t1 - t0):.0f}")


if __name__ == "__main__":
    main()
