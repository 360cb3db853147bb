"""ST-Net throughput: training samples/s and inference voxels/s, against a naive implementation.

    python bench/stnet.py [--threads 2] [--device cpu|cuda] [--seconds 8] [--epoch-samples N]

Naive = what a first implementation does: every patch of the brain unfolded into memory at
once (n_vox × 49 × T floats), contiguous tensors, batch 512. Ours = patches gathered on the fly
from the padded series (``PatchTable``), channels-last 3-D memory format (for training on
the CPU only), batch 2048 for inference; bf16 autocast and the data on the device on a GPU. Same model, same run.
On a GPU it also times a whole 256×256×20 brain (``predict_maps``: input preparation on the
device, then the network; at three batch sizes) and one training epoch of ``--epoch-samples``
samples (the paper profile's epoch is ~355,000).

Layouts tried for GPU inference (H100, bf16, batch 16,384, the network alone; 2026-11-24):
default 716k voxels/s, channels-last 3-D 913k (adopted), the spatial encoder as 2-D convolutions
over (batch·time) 752k, ``torch.compile`` of that 1.33M after a 22 s compilation (not adopted:
it costs more than a whole brain takes). For training on the H100, channels-last was slower
(~43k against ~46–59k samples/s), so training keeps it on the CPU only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from stnet_lib.io import Scan
from stnet_lib.network.inference import predict_maps
from stnet_lib.network.patches import PatchTable
from stnet_lib.network.stnet import STNet, STNetConfig

T = 50


def _rate(step, n_items: int, seconds: float) -> float:
    step()  # warm-up (oneDNN primitive creation)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or done == 0:
        step()
        done += n_items
    return done / (time.perf_counter() - start)


def _volume(shape, rng):
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    brain = np.repeat(((x / 0.8) ** 2 + (y / 0.9) ** 2 < 1)[..., None], shape[2], axis=2)
    volume = np.where(brain[..., None], rng.uniform(0.5, 1.0, shape + (T,)), 0).astype(np.float32)
    return volume, brain


def _naive_patches(volume, brain):
    padded = np.pad(volume, ((3, 3), (3, 3), (0, 0), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (7, 7), axis=(0, 1))  # (x, y, z, t, 7, 7)
    patches = windows[brain]  # (n, t, 7, 7): the whole brain unfolded, a copy
    return torch.from_numpy(np.ascontiguousarray(patches.transpose(0, 2, 3, 1)))[:, None]  # (n, 1, 7, 7, t)


def bench_inference(device, seconds, rng):
    volume, brain = _volume((64, 64, 4), rng)
    model = STNet(STNetConfig(n_frames=T)).eval().to(device)
    reference = torch.rand(2048, 2, T, device=device)
    naive = _naive_patches(volume, brain).to(device)
    with torch.inference_mode():
        naive_rate = _rate(lambda: model(naive[:512], reference[:512]), 512, seconds)
    table = PatchTable([torch.from_numpy(volume)]).to(device)
    coords = torch.from_numpy(np.argwhere(brain)[:2048]).to(device)
    subject = torch.zeros(len(coords), dtype=torch.long, device=device)
    fast_model = model.to(memory_format=torch.channels_last_3d)

    def fast():
        patches = table.gather(subject, coords).contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            fast_model(patches, reference)

    with torch.inference_mode():
        fast_rate = _rate(fast, len(coords), seconds)
    return naive_rate, fast_rate, naive.numel() * 4 / 2**20


def bench_training(device, seconds, rng):
    volume, brain = _volume((64, 64, 4), rng)
    results = []
    for optimised in (False, True):
        torch.manual_seed(0)
        model = STNet(STNetConfig(n_frames=T)).to(device)
        if optimised and device.type == "cpu":  # on a GPU it slows training (network/train.py)
            model = model.to(memory_format=torch.channels_last_3d)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        table = PatchTable([torch.from_numpy(volume)]).to(device)
        naive = None if optimised else _naive_patches(volume, brain)
        coords = torch.from_numpy(np.argwhere(brain)).to(device)
        reference, target = torch.rand(512, 2, T, device=device), torch.rand(512, 3, device=device)

        def step():
            rows = torch.randint(0, len(coords), (512,), device=device)
            if optimised:
                patches = table.gather(torch.zeros_like(rows), coords[rows])
                if device.type == "cpu":
                    patches = patches.contiguous(memory_format=torch.channels_last_3d)
            else:
                patches = naive[rows.cpu()].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=optimised and device.type == "cuda"):
                loss = (model(patches, reference) - target).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        results.append(_rate(step, 512, seconds))
    return tuple(results)


def bench_whole_brain(device, batch_sizes=(None,)):
    """predict_maps on a 256×256×20×50 brain (GPU only): [(batch, total s, inputs s, network s)], voxels."""
    rng = np.random.default_rng(0)
    volume, brain = _volume((256, 256, 20), rng)
    aif = np.zeros(brain.shape, bool)
    aif[128, 128, 10] = True
    signal = 500 * volume
    signal[..., 12:20] *= 0.6  # a bolus, so that the baseline detection finds one
    signal[aif] = 500 * np.r_[np.ones(10), 0.1 * np.ones(5), np.ones(35)]
    scan = Scan(signal.astype(np.float32), np.eye(4), None, 30.0, 1.5, aif, brain & ~aif)
    model = STNet(STNetConfig(n_frames=T, dt_s=1.5))
    payload = {"config": model.config.to_dict(), "model": model.state_dict()}
    rows = []
    for batch in batch_sizes:
        predict_maps(scan, payload, device=str(device), batch_size=batch)  # warm-up (cuDNN search)
        torch.cuda.synchronize()
        start = time.perf_counter()
        maps = predict_maps(scan, payload, device=str(device), batch_size=batch)
        torch.cuda.synchronize()
        rows.append((maps.params["batch_size"], time.perf_counter() - start, maps.params["seconds_inputs"],
                     maps.params["seconds_network"]))
    return rows, int(brain.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=8.0, help="timing window per measurement")
    parser.add_argument("--epoch-samples", type=int, default=355_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    print(f"ST-Net throughput on {device} ({torch.get_num_threads()} threads), T = {T}")
    naive_inf, fast_inf, naive_mib = bench_inference(device, args.seconds, rng)
    print(f"inference  naive (all patches unfolded, {naive_mib:.0f} MiB; batch 512): {naive_inf:8.0f} voxels/s")
    print(f"inference  stnet (on-the-fly gather, batch 2048): {fast_inf:8.0f} voxels/s  ({fast_inf / naive_inf:.2f}x)")
    naive_tr, fast_tr = bench_training(device, args.seconds, rng)
    print(f"training   naive (unfolded patches, batch 512):   {naive_tr:8.0f} samples/s")
    print(f"training   stnet (on-the-fly gather, batch 512):  {fast_tr:8.0f} samples/s  ({fast_tr / naive_tr:.2f}x)")
    print(f"training   one epoch of {args.epoch_samples} samples: {args.epoch_samples / fast_tr:.1f} s")
    if device.type == "cuda":
        rows, n_vox = bench_whole_brain(device, (None, 4096, 65536))
        for batch, seconds, inputs_s, network_s in rows:
            print(f"inference  whole 256x256x20 brain ({n_vox} voxels), batch {batch}: {seconds:.2f} s "
                  f"(inputs {inputs_s:.2f} s, network {network_s:.2f} s; {n_vox / network_s:,.0f} voxels/s)")


if __name__ == "__main__":
    main()
