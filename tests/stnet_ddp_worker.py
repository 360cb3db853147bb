"""Worker of the DDP test: ``torchrun --nproc_per_node 2 tests/stnet_ddp_worker.py MANIFEST OUT``.

Trains the tiny run of ``test_network_train.py`` (no dropout, so that processes draw nothing
at random that a single process would not) with gloo; the test compares the weights. Each
stage is printed to stderr ("rank R: ..."), so that a failure says where it happened.
"""

import os
import sys

import torch
import torch.distributed as dist

from stnet_lib.network import STNetConfig, train_from_manifest
from stnet_synthetic_config import DDP_MODEL, DDP_TRAIN

rank = os.environ.get("RANK", "?")
torch.set_num_threads(1)
try:
    train_from_manifest(sys.argv[1], sys.argv[2], DDP_TRAIN, model_config=STNetConfig(**DDP_MODEL), progress=False)
    print(f"rank {rank}: trained", file=sys.stderr, flush=True)
finally:
    if dist.is_initialized():
        dist.destroy_process_group()
        print(f"rank {rank}: process group destroyed", file=sys.stderr, flush=True)
