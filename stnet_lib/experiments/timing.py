"""Stage 6 — seconds per 10,000 brain voxels of every method on this machine, beside the paper's.

Protocol (``reference/metrics_and_dl_anchors.md`` §4): one test subject, one untimed warm-up
run, then ``repeats`` timed runs; the median is reported with the device named. A run is the
whole map computation from the loaded scan, as a user calls it (:func:`compute_maps`: signal →
concentration → deconvolution or ST-Net inference → maps); reading files is excluded. On a GPU
every run ends with ``torch.cuda.synchronize()`` (the maps come back as numpy arrays anyway).
The paper timed ST-Net's inference (batch 512) and Fang's TTV on an A100.
"""

from __future__ import annotations

import logging
import os
import platform
import time

import numpy as np
import pandas as pd
import torch

from .. import paper
from ..device import resolve_device
from ..pipeline import compute_maps
from .data import held_out_subjects, subject_scan

__all__ = ["device_name", "time_methods", "VOXELS_PER_UNIT"]

log = logging.getLogger(__name__)

#: The paper's unit of work: 10,000 brain voxels.
VOXELS_PER_UNIT = 10_000


def device_name(device: str = "cpu") -> str:
    """A readable name of the device: the GPU's model, or the CPU's model and the threads torch uses."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)} (CUDA {torch.version.cuda})"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU {model}, {torch.get_num_threads()} threads of {os.cpu_count()} cores"


def _run(scan, method: str, device: str, options: dict) -> float:
    start = time.perf_counter()
    compute_maps(scan, method, device=device, **options)
    if resolve_device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def time_methods(manifest_path, methods, *, device: str = "cpu", repeats: int = 3, options: dict | None = None,
                 subject_index: int = 0, max_seconds: float = 10.0) -> pd.DataFrame:
    """Median seconds per 10,000 brain voxels of each method on one test subject.

    Parameters
    ----------
    manifest_path : path
    methods : sequence of str
        Methods of :func:`stnet_lib.pipeline.compute_maps` (``"stnet"`` needs
        ``options["stnet"]["checkpoint"]``).
    device : str
    repeats : int
        Timed runs after the warm-up.
    max_seconds : float
        A method whose warm-up run takes longer than this is timed by that one run (its one-time
        costs are small beside it) and not repeated, to bound the total time.
    options : dict, optional
        Options per method.
    subject_index : int
        Which test subject (in manifest order).

    Returns
    -------
    DataFrame
        ``method``, ``device``, ``subject_id``, ``n_voxels``, ``runs``, ``seconds`` (median of a
        whole subject), ``seconds_per_10k_voxels``, ``iqr_per_10k_voxels``,
        ``paper_seconds_per_10k_voxels`` (the paper's, on an A100; NaN where it has none).
    """
    options = options or {}
    row = held_out_subjects(manifest_path).iloc[subject_index]
    scan = subject_scan(row)
    n_voxels = int(scan.brain_mask.sum())
    name, records = device_name(device), []
    for method in methods:
        first = _run(scan, method, device, options.get(method, {}))  # warm-up: allocations, kernels, caches
        seconds = np.array([first] if first > max_seconds else
                           [_run(scan, method, device, options.get(method, {})) for _ in range(max(repeats, 1))])
        per_unit = seconds * VOXELS_PER_UNIT / n_voxels
        q25, q75 = np.percentile(per_unit, [25, 75])
        records.append({"method": method, "device": name, "subject_id": row["subject_id"], "n_voxels": n_voxels,
                        "runs": len(seconds), "seconds": float(np.median(seconds)),
                        "seconds_per_10k_voxels": float(np.median(per_unit)), "iqr_per_10k_voxels": float(q75 - q25),
                        "paper_seconds_per_10k_voxels": paper.SECONDS_PER_10K_VOXELS.get(method, np.nan)})
        log.info("%s: %.3f s per 10k voxels", method, records[-1]["seconds_per_10k_voxels"])
    return pd.DataFrame(records)
