"""``stnet train``: train ST-Net on a manifest's train subjects (validation on its val subjects).

Single process: ``stnet train --manifest data_manifest.csv --profile quick --out runs/quick``.
Several GPUs or machines: ``torchrun --nproc_per_node N -m stnet_lib.commands.train ...``
(the same options; DistributedDataParallel, one process per device).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from ..network.stnet import STNetConfig
from ..network.train import COMPILE_MODES, TrainConfig, train_from_manifest
from ..profiles import TRAIN_PROFILES

log = logging.getLogger(__name__)

_OVERRIDES = ("epochs", "patience", "lr", "lr_schedule", "batch_size", "stride", "ratio", "physics_weight", "seed",
              "time_shift_frames", "aif_shift_frames", "compile")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``stnet train``."""
    parser = subparsers.add_parser("train", help="train ST-Net on a manifest's train/val subjects",
                                   description=__doc__.splitlines()[0])
    _arguments(parser)
    return parser


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, type=Path, help="data_manifest.csv (train and val subjects)")
    parser.add_argument("--profile", default="quick", choices=tuple(TRAIN_PROFILES), help="training settings")
    parser.add_argument("--out", required=True, type=Path, help="run folder: last.pt, best.pt, learning_curve.csv")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument("--threads", type=int, help="CPU threads per process (torch.set_num_threads)")
    parser.add_argument("--n-frames", type=int, help="frames the network reads (default: the training series')")
    parser.add_argument("--dt-s", type=float, help="frame interval [s] of the network (default: the shortest "
                        "training span / (frames - 1), rounded down to 0.1 s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    for name in _OVERRIDES:
        kind = type(getattr(TrainConfig(), name))
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, help=f"override the profile's {name}",
                            choices=COMPILE_MODES if name == "compile" else None)


def run(args) -> int:
    """Train; print the path of the best checkpoint."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = dataclasses.replace(TRAIN_PROFILES[args.profile],
                              **{k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None})
    model_config = None
    if args.n_frames or args.dt_s:
        if not (args.n_frames and args.dt_s):
            from .._validation import StnetInputError

            raise StnetInputError("--n-frames and --dt-s go together: pass both or neither")
        model_config = STNetConfig(n_frames=args.n_frames, dt_s=args.dt_s)
    best = train_from_manifest(args.manifest, args.out, cfg, model_config=model_config, resume=args.resume,
                               device=args.device, progress=not args.no_progress)
    print(f"best checkpoint: {best}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m stnet_lib.commands.train`` (and torchrun)."""
    from .._validation import StnetInputError

    parser = argparse.ArgumentParser(prog="stnet train", description=__doc__.splitlines()[0])
    _arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except StnetInputError as error:
        print(f"stnet: error: {error}", file=sys.stderr)
        return 2
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
