"""The trained ST-Net that ships with the package: ``stnet_default.pt`` and its record ``stnet_default.json``.

``stnet maps --method stnet`` uses it when no ``--checkpoint`` is given; ``stnet weights`` prints
its record; ``stnet weights --pack CHECKPOINT ...`` (:func:`pack_weights`) writes both files from
a trained ``best.pt``. The record holds the checkpoint's sha256, its size and parameter count,
the cohort and profile it was trained on, its time grid, its test metrics, its uncertainty
calibration and the versions that wrote it. Loading (:func:`shipped_checkpoint`) checks the
file's sha256 against the record before the checkpoint is read with
``torch.load(weights_only=True)`` (``network.checkpoint.load_checkpoint``), which unpickles
tensors, dicts, lists, numbers and strings only. Why one file of weights and how it is made:
``docs/decisions/0059-shipped-weights.md``.
"""

from __future__ import annotations

import datetime
import json
import math
import shutil
import tempfile
from pathlib import Path

from .._files import sha256_file
from .._validation import StnetInputError

__all__ = ["WEIGHTS_DIR", "DEFAULT_NAME", "MAX_BYTES", "sha256", "read_record", "shipped_checkpoint", "pack_weights",
           "metrics_records"]

#: The folder of the shipped weights (package data).
WEIGHTS_DIR = Path(__file__).resolve().parent
#: Base name of the shipped checkpoint and its record.
DEFAULT_NAME = "stnet_default"
#: Size limit of a shipped checkpoint [bytes] (the paper-size network at 50 frames: 968,515 fp32
#: parameters, ~3.9 MB).
MAX_BYTES = 10 * 2**20
#: Checkpoint entries that ship (the optimizer and RNG states of ``last.pt`` do not).
_SHIPPED_KEYS = ("config", "model", "train_config", "arrival", "epoch", "history", "uncertainty")


def sha256(path) -> str:
    """Hex sha256 of a file (the package's one file hash, ``_files.sha256_file``)."""
    return sha256_file(path)


def _paths(folder, name: str) -> tuple[Path, Path]:
    folder = Path(WEIGHTS_DIR if folder is None else folder)
    return folder / f"{name}.pt", folder / f"{name}.json"


def read_record(folder=None, name: str = DEFAULT_NAME) -> dict:
    """The record of the shipped weights (``StnetInputError`` when none ship or it is unreadable)."""
    checkpoint, record = _paths(folder, name)
    if not record.is_file() or not checkpoint.is_file():
        raise StnetInputError(f"no trained ST-Net ships with this installation ({checkpoint} and its .json are "
                              "absent): pass --checkpoint, or make them with `stnet weights --pack best.pt ...`")
    try:
        return json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StnetInputError(f"the shipped weights' record {record} is unreadable ({error}): reinstall stnet") from error


def shipped_checkpoint(folder=None, name: str = DEFAULT_NAME) -> Path:
    """Path of the shipped checkpoint after its sha256 matched the record's (else ``StnetInputError``)."""
    record = read_record(folder, name)
    checkpoint, _ = _paths(folder, name)
    found = sha256(checkpoint)
    if found != record.get("sha256"):
        raise StnetInputError(f"the shipped ST-Net weights {checkpoint} do not match their record (sha256 {found[:12]}… "
                              f"against {str(record.get('sha256'))[:12]}…): the file is corrupt or was replaced; "
                              "reinstall stnet or pass --checkpoint")
    return checkpoint


def metrics_records(path, *, max_rows: int = 500) -> list[dict]:
    """Rows of a metrics table (CSV) as plain dicts; only ST-Net's column where the table has one per method."""
    import pandas as pd

    table = pd.read_csv(path)
    method = next((c for c in table.columns if c.strip().lower() in ("st-net", "stnet")), None)
    if method is not None:  # a table with one column per method: keep the row labels and ST-Net's column
        table = table[[*table.columns[: list(table.columns).index(method)], method]]
    elif "method" in table.columns:
        table = table[table["method"].astype(str).str.lower().isin(("stnet", "st-net"))]
    if len(table) > max_rows:
        raise StnetInputError(f"{path} has {len(table)} rows of ST-Net metrics; a record holds at most {max_rows}: "
                              "pass the summary table")
    return [{str(k): (None if isinstance(v, float) and math.isnan(v) else v.item() if hasattr(v, "item") else v)
             for k, v in row.items()} for row in table.to_dict(orient="records")]


def pack_weights(checkpoint, *, cohort: str, profile: str, metrics: list[dict] | None = None, folder=None,
                 name: str = DEFAULT_NAME, notes: str = "", source: str | None = None) -> tuple[Path, Path]:
    """Write ``NAME.pt`` (the inference part of ``checkpoint``) and ``NAME.json`` (its record) into ``folder``.

    Parameters
    ----------
    checkpoint : path
        A ``best.pt`` written by ``stnet train`` (calibrated or not: ``network.uncertainty``).
    cohort, profile : str
        What it was trained on (e.g. ``"synthetic, realistic cohort (stnet simulate)"``, ``"quick"``).
    metrics : list of dict, optional
        Its test metrics (:func:`metrics_records`).
    folder : path, optional
        Default: the package's weights folder.
    source : str, optional
        The checkpoint as its maker named it, for the record (default: ``checkpoint``'s absolute path;
        the command passes the ``--pack`` argument, not the calibrated temporary copy).

    Returns
    -------
    (Path, Path)
        The checkpoint and the record. Over :data:`MAX_BYTES` raises ``StnetInputError`` and writes nothing.
    """
    import torch

    from .. import __version__
    from ..io import atomic_write
    from ..network.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint

    payload = load_checkpoint(checkpoint)
    model = model_from_checkpoint(payload, path=str(checkpoint))  # refuses a checkpoint this version cannot run
    body = {key: payload[key] for key in _SHIPPED_KEYS if key in payload}
    body["model"] = {k: v.detach().cpu().contiguous().clone() for k, v in payload["model"].items()}
    out_pt, out_json = _paths(folder, name)
    with tempfile.TemporaryDirectory(prefix="stnet-pack-") as work:
        staged = save_checkpoint(body, Path(work) / out_pt.name)
        size, digest = staged.stat().st_size, sha256(staged)
        if size > MAX_BYTES:
            raise StnetInputError(f"{checkpoint} packs to {size / 2**20:.1f} MiB; shipped weights must stay under "
                                  f"{MAX_BYTES / 2**20:.0f} MiB: ship a smaller network")
        with atomic_write(out_pt) as tmp:
            shutil.copyfile(staged, tmp)
    config = payload["config"]
    record = {"file": out_pt.name, "sha256": digest, "size_bytes": size,
              "n_parameters": int(sum(p.numel() for p in model.parameters())),
              "cohort": cohort, "profile": profile, "source_checkpoint": source or str(Path(checkpoint).resolve()),
              "time_grid": {"n_frames": int(config["n_frames"]), "dt_s": float(config["dt_s"])},
              "outputs": list(config.get("outputs", ["cbv", "cbf", "tmax"])),
              "input_normalisation": config.get("input_normalisation"), "trained_epoch": payload.get("epoch"),
              "train_config": payload.get("train_config"), "arrival": payload.get("arrival"),
              "uncertainty": payload.get("uncertainty"),
              "test_metrics": metrics or [], "notes": notes, "stnet_version": __version__,
              "torch_version": torch.__version__,
              "packed": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    with atomic_write(out_json) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out_pt, out_json
