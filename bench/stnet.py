"""ST-Net throughput: inference voxels/s (network alone and the whole call) and training samples/s.

    python bench/stnet.py [--threads 2] [--device cpu|cuda] [--seconds 8] [--batch 256] [--epoch-samples N]

Inference, the network alone, naive and fast **at the same batch** (``--batch``, default the
CPU's 256): naive = what a first implementation does, every patch of the brain unfolded into
memory at once (n_vox × 49 × T floats), contiguous tensors, fp32; fast = patches gathered on the
fly from the padded series (``PatchTable``), channels-last 3-D, and bf16 autocast where the
device computes bf16 natively (``network/precision.py``); "fast fp32" separates the two gains. The
bf16 path is timed with the series stored in fp32 and cast by autocast per batch (before) and stored
in bf16 (now; ``docs/decisions/0081-one-gather-in-the-networks-dtype.md``), with the gather alone.
The whole call: ``compute_maps(scan, "stnet")`` on issue #17's synthetic subject (64×64×10 voxels
of the quick grid's 3.6×3.6×8 mm, which has 6 slices since issue #16; ~15,700 brain voxels, 50 frames; the scan loaded, the weights in memory, after one warm-up
call), the default (batch 256, ``precision="auto"``) beside the previous default (batch 2,048,
fp32), with the seconds of the input preparation and of the network. Training: naive and
fast at batch 512. On a GPU it also times a whole 256×256×20 brain (``predict_maps``: input
preparation on the device, then the network; at three batch sizes) and one training epoch of
``--epoch-samples`` samples (the paper profile's epoch is ~355,000).

Measured on this project's 2-core Xeon (avx512_bf16, AMX), 2 threads, best of repeated runs
with the process at high priority because other jobs shared the machine (absolute figures are
from a loaded machine, ratios from one run; 2026-12-07): the whole call 4,530 voxels/s before
(fp32, batch 2,048) → 7,620 (fp32, batch 256) → 11,470 (bf16, batch 256); the network alone
at batch 256 fp32 8,040, bf16 14,690. Why and what bf16 changes in the maps:
``docs/decisions/0057-cpu-inference-bf16.md``. 2026-12-08, quiet machine: network alone at batch 256
fp32 6,640, bf16 with an fp32 series 10,330, with a bf16 series 10,700 (the gather alone 2.6× faster,
about 1 % of a batch); the whole call 4,340 (fp32, batch 2,048) → 11,500 voxels/s (default).

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
from stnet_lib.network.inference import DEFAULT_BATCH, predict_maps
from stnet_lib.network.patches import PatchTable
from stnet_lib.network.precision import use_bf16
from stnet_lib.network.stnet import STNet, STNetConfig
from stnet_lib.pipeline import compute_maps
from stnet_lib.signal import concentration_to_delta_r2, delta_r2_to_signal

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


def bench_inference(device, seconds, rng, batch):
    """Network alone at one batch size [voxels/s]: naive; fast in fp32; fast (bf16 where native) with the
    series stored in fp32 (autocast casts each gathered batch: the previous path) and in the network's dtype
    (one gather, half the bytes: ``PatchTable.to(dtype=...)``); and the gather alone, both ways."""
    volume, brain = _volume((64, 64, 4), rng)
    model = STNet(STNetConfig(n_frames=T)).eval().to(device)
    reference = torch.rand(batch, 2, T, device=device)
    naive = _naive_patches(volume, brain).to(device)
    with torch.inference_mode():
        naive_rate = _rate(lambda: model(naive[:batch], reference), batch, seconds)
    bf16 = use_bf16("auto", device)
    fp32_table = PatchTable([torch.from_numpy(volume)]).to(device)
    own_table = PatchTable([torch.from_numpy(volume)]).to(device, torch.bfloat16 if bf16 else None)
    coords = torch.from_numpy(np.argwhere(brain)[:batch]).to(device)
    subject = torch.zeros(len(coords), dtype=torch.long, device=device)
    fast_model = model.to(memory_format=torch.channels_last_3d)

    def fast(table, autocast):
        patches = table.gather(subject, coords)  # one channel: contiguous is channels-last too
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            fast_model(patches, reference)

    def gather(table):
        patches = table.gather(subject, coords)
        return patches.to(torch.bfloat16) if bf16 else patches  # what autocast does to an fp32 batch

    with torch.inference_mode():
        rates = {"fp32": _rate(lambda: fast(fp32_table, False), len(coords), seconds),
                 "cast": _rate(lambda: fast(fp32_table, bf16), len(coords), seconds),
                 "own": _rate(lambda: fast(own_table, bf16), len(coords), seconds),
                 "gather cast": _rate(lambda: gather(fp32_table), len(coords), seconds / 2),
                 "gather own": _rate(lambda: gather(own_table), len(coords), seconds / 2)}
    return naive_rate, rates, naive.numel() * 4 / 2**20


def quick_size_scan(shape=(64, 64, 10), n_frames=T, tr_s=1.5, te_ms=30.0, seed=0) -> Scan:
    """A quick-profile-size scan: a gamma-variate AIF, exponential residues (CBF 20–60, MTT 3–6 s,
    delay 0–3 frames), 1.5 T relaxivities, S0 500, noise σ 5; the arterial and brain masks given."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    brain = np.repeat(((x / 0.71) ** 2 + (y / 0.71) ** 2 < 1)[..., None], shape[2], axis=2)
    fine = np.arange(0, n_frames * tr_s, 0.1)
    arrival = np.clip(fine - 12, 0, None)
    aif = 6 * arrival**3 * np.exp(-arrival / 1.5) / (4.5**3 * np.exp(-3))  # peak 6 mM
    cbf, mtt = 20 + 40 * rng.random(shape), 3 + 3 * rng.random(shape)
    residue = np.exp(-fine[None] / mtt.reshape(-1, 1))
    n = 2 * fine.size
    conv = np.fft.irfft(np.fft.rfft(aif, n) * np.fft.rfft(residue, n, axis=-1), n, axis=-1)[:, : fine.size] * 0.1
    c_fine = (1.04 / 0.733) * (cbf.reshape(-1, 1) / 6000) * conv
    frames, delay = np.arange(n_frames) * tr_s, rng.integers(0, 3, brain.size) * tr_s
    c_tissue = np.stack([np.interp(frames - d, fine, c, left=0) for c, d in zip(c_fine, delay)])
    delta_r2 = concentration_to_delta_r2(c_tissue.reshape(shape + (n_frames,)), kind="tissue")
    aif_mask = np.zeros(shape, bool)
    aif_mask[32, 20:23, 4] = True
    delta_r2[aif_mask] = concentration_to_delta_r2(np.interp(frames, fine, aif), kind="arterial")
    signal = delta_r2_to_signal(delta_r2, 500.0, te_ms) + rng.normal(0, 5, shape + (n_frames,))
    signal = np.where((brain | aif_mask)[..., None], signal, 20 + rng.normal(0, 5, signal.shape))
    return Scan(signal.astype(np.float32), np.eye(4), None, te_ms, tr_s, aif_mask, brain & ~aif_mask, field_t=1.5)


def bench_whole_call(repeats=3):
    """compute_maps(scan, "stnet") on issue #17's 64×64×10 subject (CPU): {setting: (s, inputs s, network s)}, voxels."""
    scan = quick_size_scan()
    model = STNet(STNetConfig(n_frames=T, dt_s=1.5))
    payload = {"config": model.config.to_dict(), "model": model.state_dict()}
    settings = {"before: fp32, batch 2048": {"precision": "fp32", "batch_size": 2048},
                "fp32, batch 256": {"precision": "fp32", "batch_size": 256},
                f"default: {'bf16' if use_bf16('auto', torch.device('cpu')) else 'fp32'}, batch "
                f"{DEFAULT_BATCH['cpu']}": {}}
    best = {}
    for name, options in settings.items():
        compute_maps(scan, "stnet", checkpoint=payload, **options)  # warm-up (oneDNN primitive creation)
    for _ in range(repeats):  # interleaved, best of each: robust against other jobs on the machine
        for name, options in settings.items():
            start = time.perf_counter()
            params = compute_maps(scan, "stnet", checkpoint=payload, **options).params
            seconds = time.perf_counter() - start
            if seconds < best.get(name, (np.inf,))[0]:
                best[name] = (seconds, params["seconds_inputs"], params["seconds_network"])
    return best, int(scan.brain_mask.sum())


def bench_training(device, seconds, rng):
    volume, brain = _volume((64, 64, 4), rng)
    results = []
    for optimised in (False, True):
        torch.manual_seed(0)
        model = STNet(STNetConfig(n_frames=T)).to(device)
        if optimised and device.type == "cpu":  # on a GPU it slows training (network/train.py)
            model = model.to(memory_format=torch.channels_last_3d)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        gpu_bf16 = optimised and device.type == "cuda"  # as network/train.py: series in bf16 under autocast
        table = PatchTable([torch.from_numpy(volume)]).to(device, torch.bfloat16 if gpu_bf16 else None)
        naive = None if optimised else _naive_patches(volume, brain)
        coords = torch.from_numpy(np.argwhere(brain)).to(device)
        reference, target = torch.rand(512, 2, T, device=device), torch.rand(512, 3, device=device)

        def step():
            rows = torch.randint(0, len(coords), (512,), device=device)
            if optimised:
                patches = table.gather(torch.zeros_like(rows), coords[rows])  # one channel: channels-last as is
            else:
                patches = naive[rows.cpu()].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=gpu_bf16):
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
    parser.add_argument("--batch", type=int, help="inference batch of both paths (default: the device's default)")
    parser.add_argument("--epoch-samples", type=int, default=355_000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    batch = args.batch or DEFAULT_BATCH.get(device.type, 2048)
    rng = np.random.default_rng(0)
    print(f"ST-Net throughput on {device} ({torch.get_num_threads()} threads), T = {T}")
    naive, rates, naive_mib = bench_inference(device, args.seconds, rng, batch)
    dtype = "bf16" if use_bf16("auto", device) else "fp32"
    print(f"inference  naive (all patches unfolded, {naive_mib:.0f} MiB, fp32; batch {batch}): {naive:8.0f} voxels/s")
    print(f"inference  fast, fp32 (on-the-fly gather, channels-last; batch {batch}):  {rates['fp32']:8.0f} voxels/s  "
          f"({rates['fp32'] / naive:.2f}x)")
    print(f"inference  fast ({dtype}), series in fp32, cast per batch (before):  {rates['cast']:8.0f} voxels/s  "
          f"({rates['cast'] / naive:.2f}x)")
    print(f"inference  fast ({dtype}), series in {dtype} (default):               {rates['own']:8.0f} voxels/s  "
          f"({rates['own'] / naive:.2f}x; {rates['own'] / rates['cast']:.2f}x the cast)")
    print(f"gather     batch of {batch} patches to {dtype}: fp32 gather + cast {rates['gather cast']:10.0f} voxels/s, "
          f"{dtype} gather {rates['gather own']:10.0f} voxels/s ({rates['gather own'] / rates['gather cast']:.2f}x)")
    if device.type == "cpu":
        rows, n_vox = bench_whole_call()
        for name, (seconds, inputs_s, network_s) in rows.items():
            print(f"whole call compute_maps, 64x64x10 subject ({n_vox} voxels), {name}: {n_vox / seconds:8.0f} "
                  f"voxels/s ({seconds:.2f} s: inputs {inputs_s:.2f} s, network {network_s:.2f} s)")
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
