"""The smallest two-process gloo job: ``torchrun --nproc_per_node 2 tests/gloo_probe_worker.py``.

Run by the DDP test first, so that a machine whose sockets cannot carry gloo (no loopback, a host
name that resolves to an unusable address) is told apart from a bug in stnet's training.
"""

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
assert value.item() == 3.0, value
dist.destroy_process_group()
