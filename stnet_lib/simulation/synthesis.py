"""Stage 1 (synthetic data): concentration curves → DSC signal, with vessel partial volume and Rician noise.

Tissue curves come from a per-subject table of C_a ⊗ h ⊗ R on the fine grid (``vascular.kernel_table``):
each voxel reads its four (MTT, dispersion) neighbours at its delayed frame times and blends them
linearly (linear in MTT keeps ∫C_t = (ρ/k_H)·CBF·MTT·∫C_a exact). The signal follows eq. 1–2 in
the forward direction (``stnet_lib.signal``): tissue linear, blood quadratic ΔR2*.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray

from ..constants import K_H, RHO_G_PER_ML
from ..signal import concentration_to_delta_r2, delta_r2_to_signal
from .vascular import DISPERSION_NODES_S, MTT_NODES_S, kernel_table, node_weights

__all__ = ["tissue_kernel_table", "tissue_concentration", "blood_signal", "tissue_signal", "add_rician_noise", "add_correlated_rician_noise"]

#: CBF [ml/100g/min] → [ml/g/s].
_PER_100G_MIN_TO_PER_G_S = 1.0 / 6000.0


def tissue_kernel_table(c_aif_half: NDArray, dt_s: float, mtt_s: NDArray) -> tuple[NDArray, NDArray]:
    """MTT nodes spanning ``mtt_s`` and their :func:`~stnet_lib.simulation.vascular.kernel_table`."""
    lo = max(int(np.searchsorted(MTT_NODES_S, mtt_s.min(), side="right")) - 1, 0)
    hi = min(int(np.searchsorted(MTT_NODES_S, mtt_s.max())) + 1, MTT_NODES_S.size)
    nodes = MTT_NODES_S[lo:hi]
    return nodes, kernel_table(c_aif_half, dt_s, nodes)


def tissue_concentration(c_aif_half: NDArray, dt_s: float, n_sub: int, n_frames: int, *, cbf: NDArray,
                         mtt_s: NDArray, dispersion_s: NDArray, shape: NDArray, delay_steps: NDArray,
                         table: tuple[NDArray, NDArray] | None = None, chunk: int = 1 << 16) -> NDArray:
    """Tissue concentration C_t(k·TR) [mM] of every voxel, float32.

    Parameters
    ----------
    c_aif_half : ndarray, shape (n,)
        C_a at (i − ½)·dt [mM] on the fine grid, n = (n_frames − 1)·n_sub + 1.
    dt_s : float
        Fine step [s]; TR = n_sub·dt_s.
    n_sub, n_frames : int
        Fine steps per frame, and frames.
    cbf, mtt_s, dispersion_s : ndarray, shape (n_vox,)
        CBF [ml/100g/min], MTT [s], dispersion mean [s].
    shape : ndarray of int, shape (n_vox,)
        Residue shape index.
    delay_steps : ndarray of int, shape (n_vox,)
        Arrival delay in fine steps (δ = delay_steps·dt_s); negative values sample later (a slice
        acquired later within TR), which needs ``c_aif_half`` to reach that far.
    table : (ndarray, ndarray), optional
        :func:`tissue_kernel_table` of ``c_aif_half`` for MTTs spanning ``mtt_s`` (computed when None).

    Returns
    -------
    ndarray, shape (n_vox, n_frames), float32
        C_t = (ρ/k_H)·CBF·(C_a ⊗ h ⊗ R)(k·TR − δ).
    """
    nodes, table = tissue_kernel_table(c_aif_half, dt_s, mtt_s) if table is None else table
    n_m, n_d, n_t = table.shape[1:]
    flat = table.reshape(-1)
    m0, wm = node_weights(nodes, mtt_s)
    d0, wd = node_weights(DISPERSION_NODES_S, dispersion_s)
    scale = (RHO_G_PER_ML / K_H) * cbf * _PER_100G_MIN_TO_PER_G_S
    frames = np.arange(n_frames) * n_sub
    out = np.empty((cbf.size, n_frames), np.float32)
    for start in range(0, cbf.size, chunk):
        sl = slice(start, start + chunk)
        time_index = np.clip(frames[None, :] - delay_steps[sl, None], 0, n_t - 1)
        base = (shape[sl].astype(np.int64) * n_m + m0[sl]) * n_d + d0[sl]
        acc = np.zeros((time_index.shape[0], n_frames), np.float32)
        for offset, weight in ((0, (1 - wm[sl]) * (1 - wd[sl])), (1, (1 - wm[sl]) * wd[sl]),
                               (n_d, wm[sl] * (1 - wd[sl])), (n_d + 1, wm[sl] * wd[sl])):
            acc += weight.astype(np.float32)[:, None] * flat[((base + offset) * n_t)[:, None] + time_index]
        out[sl] = acc * scale[sl, None].astype(np.float32)
    return out


def tissue_signal(c_tissue: NDArray, s0: NDArray, te_ms: float, field_t: float, *, chunk: int = 1 << 16) -> NDArray:
    """S = S0·exp(−TE·r2*·C_t) (eq. 1–2 forward, linear tissue relaxivity), float32, (n_vox, t)."""
    out = np.empty(c_tissue.shape, np.float32)
    for start in range(0, c_tissue.shape[0], chunk):
        sl = slice(start, start + chunk)
        out[sl] = delta_r2_to_signal(concentration_to_delta_r2(c_tissue[sl], kind="tissue", field_t=field_t), s0[sl], te_ms)
    return out


def blood_signal(c_blood: NDArray, te_ms: float, field_t: float) -> NDArray:
    """exp(−TE·ΔR2*_blood) of a whole-blood curve (quadratic relaxivity, Kjølby 2006)."""
    delta_r2 = concentration_to_delta_r2(c_blood, kind="arterial", field_t=field_t, quadratic=True)
    return np.exp(-te_ms / 1000.0 * delta_r2)


def add_rician_noise(signal: NDArray, sigma: float, rng: np.random.Generator, *, n_streams: int = 2) -> NDArray:
    """Magnitude of S + N(0, σ²) + i·N(0, σ²), in place, float32 (recipe §5).

    The first axis is split into ``n_streams`` fixed blocks, each with its own child generator of
    ``rng``, filled in parallel threads (numpy releases the GIL): the result does not depend on
    the thread timing.
    """
    blocks = np.array_split(np.arange(signal.shape[0]), n_streams)

    def fill(rows, generator):
        for index in rows:
            row = signal[index]
            real = row + np.float32(sigma) * generator.standard_normal(row.shape, dtype=np.float32)
            imag = np.float32(sigma) * generator.standard_normal(row.shape, dtype=np.float32)
            np.hypot(real, imag, out=row)

    with ThreadPoolExecutor(n_streams) as pool:
        list(pool.map(fill, blocks, rng.spawn(n_streams)))
    return signal


def add_correlated_rician_noise(signal: NDArray, sigma: float, rng: np.random.Generator, coefficients: tuple[float, float],
                                *, n_streams: int = 2) -> NDArray:
    """Magnitude of S + n_re + i·n_im with in-plane correlated complex noise of SD σ, in place, float32.

    Each of the two channels is white Gaussian noise filtered along x and y by the 3-tap kernels
    [c, 1, c] (``coefficients`` = (c_x, c_y), :func:`~stnet_lib.simulation.realism.kernel_coefficient`)
    and rescaled to SD σ: adjacent voxels along x correlate 2c_x/(1 + 2c_x²), voxels two apart
    c_x²/(1 + 2c_x²); slices and frames stay independent (decision 0040). The noise is drawn on a
    grid one voxel larger on every in-plane side, so every voxel has the same statistics.
    The slices are split into ``n_streams`` fixed blocks, each with its own child generator.
    """
    (cx, cy), blocks = coefficients, np.array_split(np.arange(signal.shape[2]), n_streams)
    scale = np.float32(sigma / np.sqrt((1.0 + 2.0 * cx**2) * (1.0 + 2.0 * cy**2)))
    nx, ny, _, nt = signal.shape

    def channel(generator):
        white = generator.standard_normal((nx + 2, ny + 2, nt), dtype=np.float32)
        along_x = np.add(white[:-2], white[2:])
        along_x *= np.float32(cx)
        along_x += white[1:-1]
        out = np.add(along_x[:, :-2], along_x[:, 2:])
        out *= np.float32(cy)
        out += along_x[:, 1:-1]
        out *= scale
        return out

    def fill(slices, generator):
        for z in slices:
            plane = signal[:, :, z]
            real = channel(generator)
            real += plane
            np.hypot(real, channel(generator), out=plane)

    with ThreadPoolExecutor(n_streams) as pool:
        list(pool.map(fill, blocks, rng.spawn(n_streams)))
    return signal
