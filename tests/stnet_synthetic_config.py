"""Settings of the tiny ST-Net runs shared by the tests and the DDP worker process."""

from stnet_lib.network import TrainConfig

#: A tiny run: all hypoperfused voxels (stride 1), 2 normal per lesion voxel, batches of 32.
TINY_TRAIN = TrainConfig(epochs=3, patience=3, lr=1e-3, batch_size=32, stride=1, ratio=2.0, seed=7,
                         eval_batch_size=64)
#: The DDP comparison: 2 epochs, and no dropout (each process would draw its own masks).
DDP_TRAIN = TrainConfig(epochs=2, patience=2, lr=1e-3, batch_size=32, stride=1, ratio=2.0, seed=7,
                        eval_batch_size=64)
DDP_MODEL = {"n_frames": 30, "dt_s": 1.5, "dropout": 0.0}
