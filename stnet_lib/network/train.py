"""Stage 3b — training ST-Net with the physics loss (eq. 9): fit loop, checkpoints, resume, DDP.

``fit(train, val, model_config, train_config, out_dir)`` trains on in-memory cohorts;
``train_from_manifest(path, ...)`` reads the manifest's ``train`` and ``val`` subjects first.

* Adam, lr 1e-4, batch 512, ≤ 400 epochs, early stop after 50 epochs without a lower
  validation loss (eq. 9 on the val subjects) — the paper; profiles scale them, and
  ``lr_schedule="cosine"`` (a departure, used by the ``quick`` profile) decays the rate.
* Every epoch writes ``last.pt`` (resumable: optimizer, every process's torch RNG states,
  history) and ``learning_curve.csv``, both atomically; ``best.pt`` (inference only) when the
  validation loss improves. ``resume=True`` continues from ``last.pt``; on the CPU the result is
  bit-identical to an uninterrupted run, since the epoch's samples come from
  ``default_rng([seed, epoch])`` and each process's dropout and augmentation RNG state is restored.
* Random streams: the weights are drawn from ``seed`` (the same on every process; DDP also
  broadcasts rank 0's); dropout masks and the time-shift augmentations then draw from a stream
  seeded by ``SeedSequence([seed, rank])``, one per process, so that the processes of a
  distributed run do not draw identical masks and shifts for their different samples.
* CUDA: bf16 autocast, cohort kept on the device, its series in bf16 (the first convolution
  rounds it so anyway: docs/decisions/0081-one-gather-in-the-networks-dtype.md).
  CPU: channels-last 3-D memory format (about 2× faster, same numbers; on an H100 it slowed
  training from ~59k to ~43k samples/s, so the GPU keeps the default layout, while inference
  gains from it there: ``inference.py``).
  Distributed: launched by ``torchrun``, one process per device,
  DistributedDataParallel (NCCL on GPUs, gloo on CPUs); each process takes an equal share of
  every global batch and its loss is scaled so that the averaged gradient equals the
  single-process gradient of the whole batch.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..io import atomic_write
from .._validation import StnetInputError, check_in_allowed
from ..device import resolve_device
from .alignment import arrival_reference
from .checkpoint import load_checkpoint, save_checkpoint
from .cohort import Cohort, load_subjects, sample_epoch
from .physics_loss import stnet_loss
from .stnet import TARGET_NAMES, STNet, STNetConfig

__all__ = ["TrainConfig", "fit", "train_from_manifest", "load_cohorts", "time_grid", "rank_seed", "CURVE_COLUMNS"]

log = logging.getLogger(__name__)

#: Columns of ``learning_curve.csv``.
CURVE_COLUMNS = ("epoch", "train_loss", "train_supervised", "train_physics", "val_loss", "val_supervised",
                 "val_physics", "n_samples", "seconds", "lr")


#: Settings a resumed run may change (to train longer or stop later, a cosine schedule stretches; or to
#: compile the step, which changes no setting of the optimisation).
_EXTENDABLE = ("epochs", "patience", "compile")

#: ``TrainConfig.compile``: no compilation, or a ``torch.compile`` mode.
COMPILE_MODES = ("none", "default", "reduce-overhead")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (the paper's by default); stored in every checkpoint.

    Attributes
    ----------
    epochs, patience : int
        Maximum epochs; early stop after ``patience`` epochs without a lower validation loss.
    lr : float
        Adam learning rate.
    lr_schedule : str
        ``"constant"`` (the paper) or ``"cosine"``: lr·½(1 + cos(π·epoch/epochs)), down to
        ``lr_min`` at the last epoch (a departure, for short budgets; it depends on the epoch
        only, so a resumed run follows it exactly).
    lr_min : float
        Floor of the cosine schedule.
    batch_size : int
        Global batch (split over the processes of a distributed run).
    stride : int
        In-plane grid step of the hypoperfused training voxels.
    ratio : float
        Normal : hypoperfused sample ratio.
    physics_weight : float
        w of eq. 9 (0 = supervised only); see ``physics_loss`` for the choice of 0.1.
    seed : int
        Seeds the weights, the sampling and dropout.
    eval_batch_size : int
        Batch of the validation passes.
    time_shift_frames : int
        Augmentation (a departure; 0 = off, the paper): every training sample's patch and
        arterial curve are shifted together by a random whole number of frames in [−k, k],
        edge frames held. Tmax, CBV and CBF are invariant to a common shift of tissue and AIF,
        so a cohort with few subjects (few AIFs) teaches the network the relative timing.
    aif_shift_frames : int
        Augmentation (a departure; 0 = off, the paper): every training sample's arterial curve
        alone is moved earlier by a random whole number of frames in [0, k] (last frame held)
        and its Tmax target raised by that many frame intervals. Exact for the quantity the
        network regresses: C_t = C_a ⊗ R, so an AIF earlier by δ means a residue later by δ,
        with the same peak (CBF) and area (CBV). It shows the network Tmax as the delay of the
        tissue behind the AIF, not as a feature of the few training AIFs' shapes.
    aif_delay_frames : int
        Augmentation (a departure; 0 = off): the arterial curve may also move *later*, by up to k
        frames (first frame held), with Tmax lowered by as much, so that targets go negative: the
        shift is drawn from [−aif_delay_frames, aif_shift_frames]. An automatically found AIF
        need not lead every tissue voxel (on the real slice it rises with the brain's mean and
        cSVD puts a quarter of the brain below −0.25 s); a network that never saw a negative Tmax
        answered every such voxel with its floor (docs/decisions/0078-negative-tmax-augmentation.md).
    boundary_fraction : float
        Share of the normal samples drawn from voxels with a true Tmax of 3–6 s (a departure; 0 =
        the paper's two groups). See :func:`stnet_lib.network.cohort.sample_epoch`.
    tmax_scale : str
        How the Tmax target is standardised: ``"sampled"`` (the paper's: its spread over an epoch's
        samples, lesion-enriched) or ``"healthy"`` (its spread over normal voxels, Tmax ≤ 6 s), which
        weighs an error in healthy tissue as much as its own spread says. Both:
        docs/decisions/0072-boundary-sampling-and-tmax-scale.md.
    warmup_epochs : int
        Epochs of a linear learning-rate ramp from lr/10 before the schedule (0 = none).
    compile : str
        ``torch.compile`` of the training step's network: ``"none"`` (default), ``"default"`` (kernel
        fusion) or ``"reduce-overhead"`` (also CUDA graphs on a GPU: a step of 512 samples is bound by
        its kernel launches and syncs, issue #17). Only the training forward and backward are compiled;
        the validation pass and the saved weights are the plain network's. The first steps pay the
        compilation (about a minute); every step has one shape, so an epoch's short last batch (fewer
        than ``batch_size`` samples, a different number each epoch) is left out.
        Tested on the CPU (it learns, its checkpoint is the plain network's); the GPU speed-up has not
        been measured yet (docs/decisions/0080-compiled-training-step.md).
    """

    epochs: int = 400
    patience: int = 50
    lr: float = 1e-4
    lr_schedule: str = "constant"
    lr_min: float = 1e-5
    batch_size: int = 512
    stride: int = 3
    ratio: float = 2.0
    physics_weight: float = 0.1
    seed: int = 0
    eval_batch_size: int = 2048
    time_shift_frames: int = 0
    aif_shift_frames: int = 0
    aif_delay_frames: int = 0
    boundary_fraction: float = 0.0
    tmax_scale: str = "sampled"
    warmup_epochs: int = 0
    compile: str = "none"

    def __post_init__(self) -> None:
        """Refuse settings that cannot train."""
        check_in_allowed(self.lr_schedule, ("constant", "cosine"), "lr_schedule")
        check_in_allowed(self.compile, COMPILE_MODES, "compile")
        check_in_allowed(self.tmax_scale, ("sampled", "healthy"), "tmax_scale")
        if not 0.0 <= self.boundary_fraction <= 1.0 or self.warmup_epochs < 0:
            raise StnetInputError(f"boundary_fraction must be in [0, 1] and warmup_epochs >= 0; got "
                                  f"{self.boundary_fraction} and {self.warmup_epochs}")
        if self.batch_size < 1 or self.stride < 1 or self.ratio < 0 or self.epochs < 0 or self.lr <= 0:
            raise StnetInputError(f"training settings out of range: batch_size {self.batch_size}, stride "
                                  f"{self.stride}, ratio {self.ratio}, epochs {self.epochs}, lr {self.lr}")
        if min(self.time_shift_frames, self.aif_shift_frames, self.aif_delay_frames) < 0:
            raise StnetInputError(f"time_shift_frames, aif_shift_frames and aif_delay_frames must be >= 0 frames; got "
                                  f"{self.time_shift_frames}, {self.aif_shift_frames} and {self.aif_delay_frames}")


def _distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, this process's device); joins the process group when launched by torchrun."""
    device = str(resolve_device(device))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.device(device).type == "cuda"
    if world > 1 and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if world > 1 and cuda:
        return dist.get_rank(), world, torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return (dist.get_rank() if world > 1 else 0), world, torch.device(device)


def _target_columns(config: STNetConfig) -> list[int]:
    """Columns of the cohort's (CBV, CBF, Tmax) targets that the network regresses, in its output order."""
    return [TARGET_NAMES.index(name) for name in config.outputs]


def _epoch_rows(cohort: Cohort, cfg: TrainConfig, epoch: int) -> np.ndarray:
    """The training rows of ``epoch`` (seeded by the run's seed and the epoch)."""
    return sample_epoch(cohort, stride=cfg.stride, ratio=cfg.ratio, rng=np.random.default_rng([cfg.seed, epoch]),
                        boundary_fraction=cfg.boundary_fraction)


def _target_stats(cohort: Cohort, cfg: TrainConfig, config: STNetConfig) -> tuple[tuple, tuple]:
    """Mean and spread of each regressed target over an epoch's samples (``tmax_scale="healthy"``:
    Tmax's spread over the normal voxels instead)."""
    columns = _target_columns(config)
    values = cohort.targets[torch.from_numpy(_epoch_rows(cohort, cfg, 0))][:, columns].double()
    mean, std = values.mean(0), values.std(0)
    if cfg.tmax_scale == "healthy" and "tmax" in config.outputs:
        std[config.outputs.index("tmax")] = float(np.std(cohort.tmax_np[~cohort.lesion], ddof=1))
    return tuple(mean.tolist()), tuple(std.clamp_min(1e-6).tolist())


def _loss(net: STNet, model, batch: dict, cfg: TrainConfig, device: torch.device):
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        out = model(batch["patches"], batch["reference"])
    c = net.config
    cbv = c.output_index("cbv")  # None: no CBV output, no physics term (physics_loss)
    targets = batch["targets"][:, _target_columns(c)]  # (B, 3) -> (B, n_out)
    return stnet_loss(
        out, net.encode(targets), cbv_ml_100g=None if cbv is None else net.decode(out)[:, cbv],
        tissue_integral_mM_s=batch["tissue_integral"],
        aif_integral_mM_s=batch["aif_integral"], weight=cfg.physics_weight, k_av=batch["k_av"], kh=c.kh, rho=c.rho,
    )


def _shift_in_time(batch: dict, max_shift: int) -> dict:
    """Shift each sample's patch (B, 1, 7, 7, T) and reference curves (B, 2, T) by one random
    whole number of frames in [−max_shift, max_shift] (torch RNG; edge frames held)."""
    patches, reference = batch["patches"], batch["reference"]
    n, n_frames = patches.shape[0], patches.shape[-1]
    shift = torch.randint(-max_shift, max_shift + 1, (n, 1), device=patches.device)
    index = (torch.arange(n_frames, device=patches.device) + shift).clamp(0, n_frames - 1)  # (B, T)
    shifted = patches.gather(-1, index.view(n, 1, 1, 1, n_frames).expand_as(patches))  # contiguous: channels-last too
    return {**batch, "patches": shifted, "reference": reference.gather(-1, index.unsqueeze(1).expand_as(reference))}


def _shift_aif(batch: dict, max_shift: int, dt_s: float, *, max_delay: int = 0) -> dict:
    """Move each sample's arterial curve (``reference[:, 1]``) earlier by a random whole number
    of frames in [−max_delay, max_shift] (torch RNG; a negative shift moves it later; edge frames
    held) and add that shift [s] to its Tmax target."""
    reference, targets = batch["reference"], batch["targets"]
    n, n_frames = reference.shape[0], reference.shape[-1]
    shift = torch.randint(-max_delay, max_shift + 1, (n, 1), device=reference.device)
    index = (torch.arange(n_frames, device=reference.device) + shift).clamp(0, n_frames - 1)  # (B, T)
    aif = reference[:, 1].gather(-1, index)
    tmax = targets[:, 2] + shift[:, 0].to(targets.dtype) * dt_s  # columns: CBV, CBF, Tmax (TARGET_NAMES)
    return {**batch, "reference": torch.stack([reference[:, 0], aif], dim=1),
            "targets": torch.cat([targets[:, :2], tmax[:, None]], dim=1)}


def _shards(rows: torch.Tensor, batch_size: int, rank: int, world: int):
    """Each global batch, cut into ``world`` near-equal parts (``np.array_split``'s sizes); yields (this rank's
    rows, global batch size). ``rows`` lives on the training device: slicing it copies nothing to it."""
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        if len(batch) < world:
            continue  # too small to give every process a sample
        yield torch.tensor_split(batch, world)[rank], len(batch)


def _run_epoch(net, model, cohort, rows, cfg, device, optimizer, rank, world, progress, desc):
    """One pass (training when ``optimizer`` is given); returns the mean (total, supervised, physics)."""
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # Σ n·(total, supervised, physics), n
    batch_size = cfg.batch_size if optimizer is not None else cfg.eval_batch_size
    rows = torch.from_numpy(rows).to(device)  # the epoch's order, uploaded once (not one copy per step)
    model.train(optimizer is not None)
    bar = tqdm(total=len(rows), desc=desc, unit="vox", leave=False, disable=not progress or rank != 0)
    for part, n_global in _shards(rows, batch_size, rank, world):
        if optimizer is not None and cfg.compile != "none" and n_global < batch_size:
            continue  # a compiled step keeps one batch shape: the epoch's short last batch is left out
        batch = cohort.batch(part)
        if optimizer is not None and cfg.time_shift_frames > 0:
            batch = _shift_in_time(batch, cfg.time_shift_frames)
        if optimizer is not None and (cfg.aif_shift_frames > 0 or cfg.aif_delay_frames > 0):
            batch = _shift_aif(batch, cfg.aif_shift_frames, net.config.dt_s, max_delay=cfg.aif_delay_frames)
        if optimizer is not None and cfg.compile == "reduce-overhead" and device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's graph outputs are no longer read
        with torch.set_grad_enabled(optimizer is not None):
            parts = _loss(net, model, batch, cfg, device)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
            (parts.total * (world * len(part) / n_global)).backward()  # DDP averages: Σ_r (W·n_r/N)·mean_r / W
            optimizer.step()
        sums[:3] += torch.stack([p.detach().double() for p in parts]) * len(part)
        sums[3] += len(part)
        bar.update(n_global)
    bar.close()
    if world > 1:
        dist.all_reduce(sums)
    return tuple((sums[:3] / sums[3].clamp_min(1)).tolist()) + (int(sums[3].item()),)


def _write_curve(history: list[dict], path: Path) -> None:
    with atomic_write(path) as tmp:
        lines = [",".join(CURVE_COLUMNS)] + [",".join(f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c])
                                                      for c in CURVE_COLUMNS) for row in history]
        tmp.write_text("\n".join(lines) + "\n")


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def rank_seed(seed: int, rank: int) -> int:
    """Seed of process ``rank``'s dropout and augmentation stream (a 63-bit integer from ``SeedSequence([seed, rank])``)."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, dtype=np.uint64)[0]) & ((1 << 63) - 1)


def _gather_rng(device: torch.device, world: int) -> list[dict]:
    """Every process's RNG state (rank order), collected on every process; one entry when not distributed."""
    state = _rng_state(device)
    if world == 1:
        return [state]
    states = [None] * world
    dist.all_gather_object(states, {k: v.cpu() for k, v in state.items()})
    return states


def _set_rng(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _restore_rng(stored: dict, cfg: TrainConfig, epoch: int, rank: int, world: int, device) -> None:
    """This process's RNG state from a checkpoint's ``rng`` entry (written with one state per process).

    A checkpoint of a single-process run before per-process states existed holds one state. A run
    resumed on another number of processes cannot continue each stream: every process then starts
    a fresh one from ``(seed, rank, epoch)`` (logged), and the result is not the uninterrupted run's.
    """
    states = list(stored.get("ranks", [stored]))
    if len(states) == world:
        _set_rng(states[rank], device)
        return
    log.warning("%s was written by %d process(es), this run has %d: each process's dropout stream restarts from "
                "(seed, rank, epoch)", "last.pt", len(states), world)
    torch.manual_seed(rank_seed(cfg.seed, rank) + epoch + 1)


def _same_config(stored: dict, config: STNetConfig) -> bool:
    """Whether a checkpoint's stored config is ``config`` (an older checkpoint may lack defaulted keys)."""
    try:
        return STNetConfig.from_dict(dict(stored)) == config
    except (TypeError, ValueError):
        return False


def _restore(path: Path, model: STNet, optimizer, cfg: TrainConfig, model_config: STNetConfig, device,
             rank: int = 0, world: int = 1) -> dict:
    payload = load_checkpoint(path)
    same = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _EXTENDABLE}
    # a setting added since the run began counts at its default (the value the run had without it)
    saved = {**dataclasses.asdict(TrainConfig()), **dict(payload.get("train_config", {}))}
    saved = {k: v for k, v in saved.items() if k not in _EXTENDABLE}
    if saved != same or not _same_config(payload["config"], model_config):
        raise StnetInputError(f"{path} was written with other settings than this run's: resume with the same "
                              f"profile and options (only {', '.join(_EXTENDABLE)} may change), or pass another --out")
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    _restore_rng(payload["rng"], cfg, int(payload["epoch"]), rank, world, device)
    return payload


def fit(train: Cohort, val: Cohort, model_config: STNetConfig, cfg: TrainConfig, out_dir, *,
        resume: bool = False, device: str = "cpu", progress: bool = True) -> Path:
    """Train ST-Net; return the path of ``best.pt`` (see the module docstring for the files).

    ``model_config``'s target standardisation is replaced by the training targets' mean and
    standard deviation (over the epoch-0 sample) of the maps it regresses (``outputs``). A
    network without a CBV output has no physics term (``physics_loss``): ``cfg.physics_weight``
    must then be 0 (``StnetInputError`` otherwise).
    """
    rank, world, dev = _distributed(device)
    out_dir = Path(out_dir)
    net, optimizer, state, common = _start(train, model_config, cfg, out_dir, resume, dev, rank, world)
    ids = [dev.index] if dev.type == "cuda" else None
    model = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids) if world > 1 else net
    if cfg.compile != "none":  # the training step only: `net` (validation, checkpoints) stays the plain module
        if world > 1 and cfg.compile == "reduce-overhead":
            log.warning("--compile reduce-overhead (CUDA graphs) has not been tried with DistributedDataParallel "
                        "(docs/decisions/0080-compiled-training-step.md)")
        model = torch.compile(model, mode=cfg.compile)
    table_dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32  # _loss's autocast rounds them so on CUDA
    train.to(dev, table_dtype), val.to(dev, table_dtype)
    val_rows = sample_epoch(val, stride=cfg.stride, ratio=cfg.ratio, rng=np.random.default_rng([cfg.seed, 2**31]),
                            random_offset=False)
    for epoch in range(state["epoch"] + 1, cfg.epochs):
        if state["best_epoch"] >= 0 and epoch - state["best_epoch"] > cfg.patience:
            break  # early stop
        start = time.perf_counter()
        lr = _learning_rate(cfg, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        rows = _epoch_rows(train, cfg, epoch)
        tr = _run_epoch(net, model, train, rows, cfg, dev, optimizer, rank, world, progress, f"epoch {epoch}")
        with torch.no_grad():
            va = _run_epoch(net, net, val, val_rows, cfg, dev, None, rank, world, False, "val")
        state["history"].append(dict(zip(CURVE_COLUMNS, (epoch, *tr[:3], *va[:3], tr[3], time.perf_counter() - start,
                                                         lr))))
        improved = va[0] < state["best_val_loss"] or state["best_epoch"] < 0
        if improved:
            state.update(best_val_loss=va[0], best_epoch=epoch)
        state["epoch"] = epoch
        rng = _gather_rng(dev, world)  # a collective: every process takes part
        if rank == 0:
            _save_epoch(out_dir, net, optimizer, state, common, rng, improved)
        log.info("epoch %d: train %.4f val %.4f%s", epoch, tr[0], va[0], " (best)" if improved else "")
    if world > 1:  # every rank returns once rank 0 has written the files (and none tears gloo down mid-write)
        dist.barrier()
    return out_dir / "best.pt"


def _learning_rate(cfg: TrainConfig, epoch: int) -> float:
    """The learning rate of ``epoch`` (see ``TrainConfig.lr_schedule``)."""
    check_in_allowed(cfg.lr_schedule, ("constant", "cosine"), "lr_schedule")
    if epoch < cfg.warmup_epochs:  # linear ramp from lr/10 up to lr
        return cfg.lr * (0.1 + 0.9 * epoch / cfg.warmup_epochs)
    if cfg.lr_schedule == "constant":
        return cfg.lr
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * epoch / max(cfg.epochs - 1, 1)))


def _start(train: Cohort, model_config: STNetConfig, cfg: TrainConfig, out_dir: Path, resume: bool, dev,
           rank: int = 0, world: int = 1):
    """The network, its optimizer and the run state: fresh, or restored from ``out_dir/last.pt``."""
    if model_config.output_index("cbv") is None and cfg.physics_weight != 0:
        raise StnetInputError(f"physics_weight must be 0 for a network without a CBV output (outputs "
                              f"{model_config.outputs}: eq. 9's physics term needs the predicted CBV); got "
                              f"{cfg.physics_weight}")
    mean, std = _target_stats(train, cfg, model_config)
    model_config = dataclasses.replace(model_config, target_mean=mean, target_std=std)
    torch.manual_seed(cfg.seed)  # the same weights on every process
    net = STNet(model_config).to(dev)
    torch.manual_seed(rank_seed(cfg.seed, rank))  # this process's own dropout and augmentation stream
    if dev.type == "cpu":
        net = net.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, fused=dev.type == "cuda")  # one kernel per step on a GPU
    state = {"epoch": -1, "best_val_loss": float("inf"), "best_epoch": -1, "history": []}
    if resume and (out_dir / "last.pt").is_file():
        payload = _restore(out_dir / "last.pt", net, optimizer, cfg, model_config, dev, rank, world)
        state = {k: payload[k] for k in state}
        log.info("resuming %s after epoch %d", out_dir, state["epoch"])
    else:
        _check_fresh(out_dir, resume)
    arrival = arrival_reference(train.arrival_lag_s) if model_config.input_normalisation == "concentration" else None
    common = {"model_config": model_config.to_dict(), "train_config": dataclasses.asdict(cfg),
              "arrival": arrival}  # for inference's AIF alignment (timed on concentration inputs only)
    return net, optimizer, state, common


def _check_fresh(out_dir: Path, resume: bool) -> None:
    """Refuse to start a new run over an existing one (``last.pt``) unless resuming."""
    if not resume and (out_dir / "last.pt").is_file():
        raise StnetInputError(f"{out_dir} already holds a training run: pass --resume to continue it or another --out")


def _save_epoch(out_dir: Path, net: STNet, optimizer, state: dict, common: dict, rng: list[dict],
                improved: bool) -> None:
    """Write ``last.pt`` (``rng``: every process's RNG state, rank order), ``best.pt`` when improved, the curve."""
    weights = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    base = {"config": common["model_config"], "model": weights, "train_config": common["train_config"],
            "arrival": common["arrival"], "epoch": state["epoch"], "history": state["history"]}
    if improved:
        save_checkpoint(base, out_dir / "best.pt")
    save_checkpoint({**base, "optimizer": optimizer.state_dict(), "rng": {**rng[0], "ranks": rng},
                     "best_val_loss": state["best_val_loss"], "best_epoch": state["best_epoch"]},
                    out_dir / "last.pt")
    _write_curve(state["history"], out_dir / "learning_curve.csv")


def time_grid(manifest, splits: tuple[str, ...] | None = ("train",)) -> tuple[int, float]:
    """ST-Net's time grid (frames, interval [s]) that every series of ``splits`` covers (None: every row).

    The fewest frames of any series, and the frame interval that makes the shortest acquisition
    span exactly that many frames, rounded down to 0.1 s so that scans of a slightly shorter TR
    are still covered. ``manifest`` is a loaded manifest table (:func:`stnet_lib.manifest.load_manifest`).
    """
    import nibabel as nib

    rows = manifest if splits is None else manifest[manifest["split"].isin(splits)]
    frames, spans = [], []
    for row in rows.itertuples():
        image = nib.load(row.dsc)
        interval = float(row.tr_s) if np.isfinite(row.tr_s) else float(image.header.get_zooms()[3])
        frames.append(int(image.shape[3]))
        spans.append((frames[-1] - 1) * interval)
    if not frames:
        raise StnetInputError(f"the manifest has no subject with split in {list(splits)}" if splits else
                              "the manifest has no subject")
    n_frames = min(frames)
    exact = min(spans) / (n_frames - 1)
    dt_s = np.floor(exact * 10 + 1e-6) / 10 if exact >= 0.1 else exact
    return n_frames, float(dt_s)


def train_from_manifest(manifest_path, out_dir, cfg: TrainConfig = TrainConfig(), *,
                        model_config: STNetConfig | None = None, resume: bool = False, device: str = "cpu",
                        progress: bool = True) -> Path:
    """Train on a manifest's ``train`` subjects, validate on its ``val`` subjects; return ``best.pt``.

    The time grid (``n_frames``, ``dt_s``) is the training series' own unless ``model_config``
    sets it (a default ``STNetConfig()`` is replaced by the data's grid).
    """
    _check_fresh(Path(out_dir), resume)  # before minutes of reading the cohort
    model_config, train, val = load_cohorts(manifest_path, model_config)
    return fit(train, val, model_config, cfg, out_dir, resume=resume, device=device, progress=progress)


def load_cohorts(manifest_path, model_config: STNetConfig | None = None) -> tuple[STNetConfig, Cohort, Cohort]:
    """The manifest's ``train`` and ``val`` subjects in memory, and the model settings they imply.

    ``model_config`` defaults to the training series' time grid (:func:`time_grid`); its
    ``vof_correction`` is set to whether the subjects have VOF masks (eq. 8).
    """
    from ..manifest import load_manifest

    manifest = load_manifest(manifest_path)
    if model_config is None:
        n_frames, dt_s = time_grid(manifest)
        model_config = STNetConfig(n_frames=n_frames, dt_s=dt_s)
    used = manifest[manifest["split"].isin(["train", "val"])]
    model_config = dataclasses.replace(model_config, vof_correction=bool(used["vof_mask"].notna().any()))
    grid = {"n_frames": model_config.n_frames, "dt_s": model_config.dt_s,
            "normalisation": model_config.input_normalisation, "vof_correction": model_config.vof_correction}
    train, val = (Cohort(load_subjects(manifest, split, **grid), model_config.patch_size) for split in ("train", "val"))
    return model_config, train, val
