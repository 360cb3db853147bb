"""Truncated-SVD deconvolution (stage 3a): sSVD, cSVD and oSVD, vectorized over voxels in torch.

Each function takes tissue curves ``c_tissue`` (n_vox, N) [mM] and one arterial curve ``c_aif``
(N,) [mM] as torch tensors and returns flow-scaled residues r (n_vox, L) [1/s] with
C_t = (C_a·dt) ⊛ r (see :mod:`stnet_lib.maps`). Same code on CPU and GPU.

* sSVD (Østergaard et al. 1996, doi:10.1002/mrm.1910360510): linear convolution (L = N),
  singular values below ``threshold``·s_max (default 0.2) are discarded.
* cSVD (Wu et al. 2003, doi:10.1002/mrm.10522): circular convolution of the AIF zero-padded to
  L = 2N, threshold 0.1·s_max; delay-insensitive.
* oSVD (Wu et al. 2003): cSVD with a per-voxel threshold, the smallest of 0.05, 0.10, …, 0.95
  (·s_max) whose residue has an oscillation index OI ≤ ``oi_threshold`` (0.035, the
  dsc-mri-toolbox default) at a frame interval of ``oi_reference_tr_s`` (1 s); voxels where
  none does take 0.95. The OI sums second differences per sample, which scale as TR² for any
  residue the truncation leaves (band-limited well below Nyquist), so the threshold is scaled
  by (TR/1 s)²: the same smoothness at every TR. Without it oSVD truncated 27 % of a noise-free
  cohort's voxels harder at TR 2 s and its Tmax grew later with TR
  (docs/decisions/0074-tr-invariant-osvd.md).

A circulant matrix is diagonalised by the discrete Fourier transform: its singular values are
|DFT(a)|, so the truncated pseudo-inverse of cSVD and oSVD is a filter in the frequency domain,
computed exactly with FFTs in O(n_vox·L log L) instead of a dense L×L product.
"""

from __future__ import annotations

import torch

__all__ = ["ssvd", "csvd", "osvd", "oscillation_index", "OSVD_THRESHOLDS"]

#: Candidate oSVD thresholds, as fractions of the largest singular value.
OSVD_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def ssvd(c_tissue: torch.Tensor, c_aif: torch.Tensor, dt_s: float, *, threshold: float = 0.2) -> torch.Tensor:
    """sSVD residues (n_vox, N) [1/s] from the lower-triangular Toeplitz AIF matrix."""
    n = c_aif.shape[-1]
    index = torch.arange(n, device=c_aif.device)
    lag = index[:, None] - index[None, :]
    matrix = torch.where(lag >= 0, c_aif[lag.clamp(min=0)], torch.zeros((), dtype=c_aif.dtype, device=c_aif.device))
    u, s, vh = torch.linalg.svd(dt_s * matrix)
    inverse_s = torch.where(s >= threshold * s[0], 1.0 / s, torch.zeros_like(s))
    pseudo_inverse = vh.mT @ (inverse_s[:, None] * u.mT)  # (N, N)
    return c_tissue @ pseudo_inverse.mT


def _spectra(c_tissue, c_aif, dt_s, n_out):
    """DFTs of the zero-padded curves and the AIF's singular values |DFT(dt·a)|."""
    length = 2 * c_aif.shape[-1] if n_out is None else n_out
    aif_spectrum = torch.fft.rfft(dt_s * c_aif, n=length)
    tissue_spectrum = torch.fft.rfft(c_tissue, n=length, dim=-1)
    return tissue_spectrum, aif_spectrum, length


def _quotient(tissue_spectrum, aif_spectrum):
    """Unfiltered spectral deconvolution C_t(f)/A(f), with A(f) = 0 left out (set to 1, always truncated)."""
    return tissue_spectrum / torch.where(aif_spectrum.abs() > 0, aif_spectrum, torch.ones_like(aif_spectrum))


def _filtered_inverse(tissue_spectrum, aif_spectrum, keep, length):
    """Residues from the pseudo-inverse that keeps the frequencies where ``keep`` (…, n_freq) is True."""
    quotient = _quotient(tissue_spectrum, aif_spectrum)
    return torch.fft.irfft(torch.where(keep, quotient, torch.zeros_like(quotient)), n=length, dim=-1)


def csvd(
    c_tissue: torch.Tensor, c_aif: torch.Tensor, dt_s: float, *, threshold: float = 0.1, n_out: int | None = None
) -> torch.Tensor:
    """cSVD residues (n_vox, L) [1/s], L = ``n_out`` (default 2N), block-circulant AIF matrix."""
    tissue_spectrum, aif_spectrum, length = _spectra(c_tissue, c_aif, dt_s, n_out)
    magnitude = aif_spectrum.abs()
    keep = magnitude >= threshold * magnitude.max()
    return _filtered_inverse(tissue_spectrum, aif_spectrum, keep, length)


def oscillation_index(residue: torch.Tensor) -> torch.Tensor:
    """Oscillation index OI = (1/L)·(1/max r)·Σ|r[k] − 2r[k−1] + r[k−2]| (Wu et al. 2003, eq. 11), shape (...)."""
    second_difference = torch.diff(residue, n=2, dim=-1)
    peak = residue.amax(dim=-1)
    safe_peak = torch.where(peak > 0, peak, torch.ones_like(peak))
    oi = second_difference.abs().sum(dim=-1) / (residue.shape[-1] * safe_peak)
    return torch.where(peak > 0, oi, torch.full_like(oi, float("inf")))


def osvd(
    c_tissue: torch.Tensor,
    c_aif: torch.Tensor,
    dt_s: float,
    *,
    oi_threshold: float = 0.035,
    oi_reference_tr_s: float | None = 1.0,
    thresholds: tuple[float, ...] = OSVD_THRESHOLDS,
    n_out: int | None = None,
    block_size: int = 4096,
) -> torch.Tensor:
    """oSVD residues (n_vox, L) [1/s]: per voxel, the smallest threshold whose OI ≤ ``oi_threshold``.

    The OI limit applied is ``oi_threshold``·(dt_s/``oi_reference_tr_s``)² (the TR-invariant
    form, see the module docstring); ``oi_reference_tr_s=None`` applies ``oi_threshold`` as is
    (Wu et al.'s per-sample form).

    Voxels are processed in blocks of ``block_size`` (cache-sized). Within a block the
    thresholds are tried in increasing order on the voxels still undecided, in float32 (the OI
    comparison needs no more); the chosen residues are then computed in the input's precision
    in one pass, with a per-voxel frequency mask.
    """
    if oi_reference_tr_s is not None:
        oi_threshold = oi_threshold * (dt_s / oi_reference_tr_s) ** 2
    tissue_spectrum, aif_spectrum, length = _spectra(c_tissue, c_aif, dt_s, n_out)
    magnitude = aif_spectrum.abs()
    quotient = _quotient(tissue_spectrum, aif_spectrum)
    levels = torch.tensor(thresholds, dtype=magnitude.dtype, device=magnitude.device) * magnitude.max()
    out = torch.empty(c_tissue.shape[:-1] + (length,), dtype=c_tissue.dtype, device=c_tissue.device)
    for start in range(0, c_tissue.shape[0], block_size):
        block = quotient[start : start + block_size]
        choice = _osvd_choice(block.to(torch.complex64), magnitude.float(), levels.float(), oi_threshold, length)
        keep = magnitude[None, :] >= levels[choice][:, None]  # (block, n_freq)
        out[start : start + block_size] = torch.fft.irfft(block * keep, n=length, dim=-1)
    return out


def _osvd_choice(quotient, magnitude, levels, oi_threshold, length) -> torch.Tensor:
    """Index into the threshold ``levels`` of each voxel's oSVD threshold, shape (n_vox,)."""
    choice = torch.full(quotient.shape[:-1], levels.numel() - 1, dtype=torch.long, device=quotient.device)
    pending = torch.arange(quotient.shape[0], device=quotient.device)
    for index, level in enumerate(levels[:-1]):  # ≤ 19 steps, each vectorized over the block's voxels
        residue = torch.fft.irfft(quotient * (magnitude >= level), n=length, dim=-1)
        accept = oscillation_index(residue) <= oi_threshold
        choice[pending[accept]] = index
        pending, quotient = pending[~accept], quotient[~accept]
        if pending.numel() == 0:
            break
    return choice
