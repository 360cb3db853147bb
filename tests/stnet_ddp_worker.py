"""Worker of the DDP test: ``torchrun --nproc_per_node 2 tests/stnet_ddp_worker.py MANIFEST OUT``.

Three tiny runs with gloo, in one process group (one torchrun start):

* ``OUT/plain``: no dropout, so that the processes draw nothing at random that a single process
  would not; the test compares its weights with a single-process run's (gradient averaging);
* ``OUT/whole``: dropout and the time-shift augmentation on, two epochs (every process draws
  its own masks and shifts);
* ``OUT/cut``: the same run stopped after one epoch, the RNG scrambled (as a fresh process would
  start), then resumed for the second: the test asks for ``whole``'s weights bit for bit, which
  needs every process's own RNG state restored.

Each stage is printed to stderr ("rank R: ..."), so that a failure says where it happened.
"""

import dataclasses
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from stnet_lib.network import STNetConfig, train_from_manifest
from stnet_synthetic_config import DDP_DROPOUT_MODEL, DDP_MODEL, DDP_RANDOM_TRAIN, DDP_TRAIN

rank = os.environ.get("RANK", "?")
torch.set_num_threads(1)
manifest, out = sys.argv[1], Path(sys.argv[2])
try:
    train_from_manifest(manifest, out / "plain", DDP_TRAIN, model_config=STNetConfig(**DDP_MODEL), progress=False)
    print(f"rank {rank}: trained without dropout", file=sys.stderr, flush=True)
    dropout = STNetConfig(**DDP_DROPOUT_MODEL)
    train_from_manifest(manifest, out / "whole", DDP_RANDOM_TRAIN, model_config=dropout, progress=False)
    print(f"rank {rank}: trained with dropout", file=sys.stderr, flush=True)
    train_from_manifest(manifest, out / "cut", dataclasses.replace(DDP_RANDOM_TRAIN, epochs=1), model_config=dropout,
                        progress=False)
    torch.manual_seed(12345)  # what the interrupted processes drew is lost; the checkpoint must restore it
    train_from_manifest(manifest, out / "cut", DDP_RANDOM_TRAIN, model_config=dropout, resume=True, progress=False)
    print(f"rank {rank}: trained", file=sys.stderr, flush=True)
finally:
    if dist.is_initialized():
        dist.destroy_process_group()
        print(f"rank {rank}: process group destroyed", file=sys.stderr, flush=True)
