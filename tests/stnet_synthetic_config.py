"""Settings of the tiny ST-Net runs shared by the tests and the DDP worker process."""

import dataclasses

from stnet_lib.network import TrainConfig

#: A tiny run: all hypoperfused voxels (stride 1), 2 normal per lesion voxel, batches of 32.
TINY_TRAIN = TrainConfig(epochs=3, patience=3, lr=1e-3, batch_size=32, stride=1, ratio=2.0, seed=7,
                         eval_batch_size=64)
#: The DDP comparison with one process: 2 epochs, no dropout and no augmentation (each process
#: draws its own masks and shifts, which one process would draw otherwise).
DDP_TRAIN = TrainConfig(epochs=2, patience=2, lr=1e-3, batch_size=32, stride=1, ratio=2.0, seed=7,
                        eval_batch_size=64)
DDP_MODEL = {"n_frames": 30, "dt_s": 1.5, "dropout": 0.0}
#: The DDP runs with randomness on: dropout (the paper's 0.5) and the time-shift augmentation,
#: drawn from per-process streams that ``last.pt`` saves and a resumed run restores.
DDP_RANDOM_TRAIN = dataclasses.replace(DDP_TRAIN, time_shift_frames=1)
DDP_DROPOUT_MODEL = {"n_frames": 30, "dt_s": 1.5}
