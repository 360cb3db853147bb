"""Stage 3a: tensor-total-variation (TTV) deconvolution (Fang et al. 2015), eq. 3 regularised.

Solves, jointly for all voxels of a volume (not voxel by voxel),

    min_k  ½‖A k − c‖²  +  g_s · Σ_{x,y,z} ‖D_s k‖₁  +  g_t · ‖D_t k‖₁

with c(x, y, z, t) the tissue concentration zero-padded to L = 2N frames, A the block-circulant
AIF matrix (dt times the circulant of the zero-padded AIF, :func:`circulant_aif_matrix`), k the
flow-scaled residue [1/s] (the SVD methods' scaling: CBF = 60·100·(k_AV·k_H/ρ)·max k, eq. 5) and
D_s, D_t forward differences along x, y, z and along t. The TV is anisotropic (L1) and couples
only neighbours that are both inside the mask. The weights are dimensionless: c is divided by a
robust maximum (a high percentile inside the mask) and A by its spectral norm before solving.

Solver: the primal-dual algorithm of Chambolle and Pock (2011, Algorithm 1, θ = 1), which
converges for τσ‖D‖² < 1 and needs no inner loop: the proximal map of the data term,
(I + τAᵀA)⁻¹(v + τAᵀc), is one exact L×L product per voxel. It starts from the cSVD solution.
(A is circulant, so the same prox is a division in the DFT; on the CPU torch's rfft/irfft pair
at L = 100 took 113 ms per 163,840 voxels against 60 ms for the product, 2 threads, and the
product is under half of an iteration: the elementwise TV steps dominate. Not worth it here.)
(Fang's own FCSA/FISTA uses a one-step inexact TV prox; a prototype of that family diverged,
see ../shared/reference/ttv_notes.md.) The objective is not monotone per iteration in
primal-dual methods; ``monitor_every`` records it so that convergence can be checked.

A volume whose solver arrays would exceed ``max_slab_bytes`` is solved in slabs along x that
overlap by ``slab_overlap`` voxels on each side; each slab keeps its core. The scaling is global,
so slabs differ from the whole-volume solution only through TV coupling beyond the overlap (CBF
within 0.5 % median and 5 % at worst in the tests; not bit-equal).

References
----------
Fang R, Zhang S, Chen T, Sanelli PC. Robust low-dose CT perfusion deconvolution via tensor
total-variation regularization. IEEE Trans Med Imaging 2015;34(7):1533–48. doi:10.1109/TMI.2015.2405015
Chambolle A, Pock T. A first-order primal-dual algorithm for convex problems with applications to
imaging. J Math Imaging Vis 2011;40:120–45. doi:10.1007/s10851-010-0251-1
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch
from numpy.typing import NDArray

from .._validation import StnetInputError, check_finite, check_mask, check_positive
from ._matrices import circulant_aif_matrix
from .svd import csvd

__all__ = ["TTVConfig", "TTVSolution", "DEFAULT_OPTIONS", "solve_ttv", "ttv_residues"]

log = logging.getLogger(__name__)

_N_ARRAYS = 9  # volume-sized solver arrays held at once (k, k̄, v, offset, c, ≤ 4 duals)


@dataclasses.dataclass(frozen=True)
class TTVConfig:
    """Settings of the TTV deconvolution (weights dimensionless, see the module docstring).

    The defaults are those with the lowest CBF RMSE against the truth on validation subjects of the
    synthetic cohort, among the settings never worse than the best SVD method on any of them and
    passing OSIPI's DRO (``bench/tune_ttv.py``). The iteration count from the cSVD start is part of
    the regularisation (early stopping): more iterations shrink the residue's peak, the CBF.
    How they were chosen and what was measured: docs/decisions/0020-ttv-default-weights.md;
    alternatives rejected: docs/decisions/0021-ttv-shared-bias-and-rejected-alternatives.md;
    the effect of the voxel size: docs/decisions/0022-noise-study-on-the-papers-voxel-size.md.
    """

    weight_spatial: float = 0.02  # g_s, spatial TV weight
    weight_temporal: float = 5e-4  # g_t, temporal TV weight: strong values flatten the peak (the CBF)
    n_iter: int = 100  # Chambolle–Pock iterations from the cSVD start
    n_out: int | None = None  # L, frames of the circulant grid (default 2N)
    step_balance: float = 0.1  # p: τ‖D‖ = p / g_max, σ‖D‖ = 0.99·g_max / p (0.1 fastest of 0.03–10;
    #                            with early stopping it also shapes the result: 0.3 was not better)
    warm_start_threshold: float = 0.1  # start from cSVD with this threshold (· s_max)
    scale_percentile: float = 99.9  # robust maximum of c inside the mask, for the scaling
    monitor_every: int = 0  # record the objective every n iterations (0: never)
    max_slab_bytes: int = 2 * 1024**3  # solver memory above which the volume is cut into slabs
    slab_overlap: int = 8  # voxels each slab shares with each neighbour
    dtype: str = "float32"  # solver precision ("float32" or "float64"); the output is float64


#: The registry's option defaults (``METHODS["ttv"].defaults``): every field of TTVConfig.
DEFAULT_OPTIONS = dataclasses.asdict(TTVConfig())


@dataclasses.dataclass
class TTVSolution:
    """Output of :func:`solve_ttv` (scaled units).

    Attributes
    ----------
    k : torch.Tensor, shape (x, y, z, L)
        The minimiser, zero outside the mask.
    objective : list of float
        Objective per masked voxel at iterations 0, m, 2m, … (m = ``monitor_every``).
    """

    k: torch.Tensor
    objective: list[float]


# --------------------------------------------------------------------------- operators


def _edges(mask: torch.Tensor, config: TTVConfig) -> list[tuple[int, float, torch.Tensor | None]]:
    """Per regularised axis: (axis, weight, [both voxels of the edge in the mask] or None if all are)."""
    edges = []
    axes = [(axis, config.weight_spatial) for axis in (0, 1, 2) if mask.shape[axis] > 1] + [(3, config.weight_temporal)]
    for axis, weight in axes:
        if weight <= 0:
            continue
        if axis == 3:
            both = mask
        else:
            n = mask.shape[axis]
            both = mask.narrow(axis, 1, n - 1) & mask.narrow(axis, 0, n - 1)
        if both.any():
            edges.append((axis, weight, None if both.all() else both[..., None]))
    return edges


def _diff(k: torch.Tensor, axis: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Forward difference k[i + 1] − k[i] along ``axis``."""
    n = k.shape[axis]
    return torch.sub(k.narrow(axis, 1, n - 1), k.narrow(axis, 0, n - 1), out=out)


def _add_diff(y: torch.Tensor, k: torch.Tensor, axis: int, alpha: float, edge_mask: torch.Tensor | None) -> torch.Tensor:
    """y += α·m·(k[i + 1] − k[i]) in place along ``axis`` (m: edge mask; absent edges keep y = 0)."""
    n = k.shape[axis]
    upper, lower = k.narrow(axis, 1, n - 1), k.narrow(axis, 0, n - 1)
    if edge_mask is None:
        return y.add_(upper, alpha=alpha).sub_(lower, alpha=alpha)
    return y.addcmul_(upper, edge_mask, value=alpha).addcmul_(lower, edge_mask, value=-alpha)


def _sub_adjoint_diff(v: torch.Tensor, y: torch.Tensor, axis: int, alpha: float) -> None:
    """v −= α·Dᵀy in place, with D the forward difference along ``axis``."""
    n = v.shape[axis]
    v.narrow(axis, 0, n - 1).add_(y, alpha=alpha)
    v.narrow(axis, 1, n - 1).sub_(y, alpha=alpha)


def _objective(k, c, a_mat, edges, n_vox: int) -> float:
    """TTV objective per masked voxel (scaled units), in float64."""
    k, c, a_mat = k.double(), c.double(), a_mat.double()
    residual = k.reshape(-1, k.shape[-1]) @ a_mat.mT - c.reshape(-1, c.shape[-1])
    value = 0.5 * float(residual.square().sum())
    for axis, weight, edge_mask in edges:
        diff = _diff(k, axis).abs()
        value += weight * float((diff if edge_mask is None else diff * edge_mask).sum())
    return value / max(n_vox, 1)


# --------------------------------------------------------------------------- solver


def solve_ttv(c: torch.Tensor, a_mat: torch.Tensor, k0: torch.Tensor, mask: torch.Tensor,
              config: TTVConfig) -> TTVSolution:
    """Minimise the TTV objective by Chambolle–Pock iterations (scaled units, one slab).

    Parameters
    ----------
    c : torch.Tensor, shape (x, y, z, L)
        Scaled tissue curves, zero outside ``mask`` and in the padded frames.
    a_mat : torch.Tensor, shape (L, L)
        Scaled AIF matrix (spectral norm 1), same dtype and device as ``c``.
    k0 : torch.Tensor, shape (x, y, z, L)
        Warm start, zero outside ``mask``.
    mask : torch.Tensor of bool, shape (x, y, z)
    config : TTVConfig

    Returns
    -------
    TTVSolution
    """
    n_t = c.shape[-1]
    edges = [(axis, weight, m if m is None else m.to(c.dtype)) for axis, weight, m in _edges(mask, config)]
    norm_d = 2.0 * max(len(edges), 1) ** 0.5  # ‖D‖ ≤ 2 per axis
    g_max = max([weight for _, weight, _ in edges] + [0.0])  # largest active weight
    tau = config.step_balance / (g_max * norm_d) if g_max > 0 else 1.0  # no TV: plain proximal steps
    sigma = 0.99 / (tau * norm_d**2)
    eye = torch.eye(n_t, dtype=c.dtype, device=c.device)
    prox = torch.linalg.inv(eye + tau * a_mat.mT @ a_mat)  # symmetric; rows: v @ prox
    offset = ((tau * c.reshape(-1, n_t) @ a_mat) @ prox).reshape(c.shape)  # (I + τAᵀA)⁻¹ τAᵀc
    duals = [torch.zeros(_diff(k0, axis).shape, dtype=c.dtype, device=c.device) for axis, _, _ in edges]
    k, k_bar, v = k0.clone(), k0.clone(), torch.empty_like(k0)
    n_vox = int(mask.sum())
    trace = [_objective(k, c, a_mat, edges, n_vox)] if config.monitor_every else []
    for iteration in range(1, config.n_iter + 1):
        for (axis, weight, edge_mask), y in zip(edges, duals):  # dual ascent, projection on |y| ≤ g
            _add_diff(y, k_bar, axis, sigma, edge_mask).clamp_(-weight, weight)
        v.copy_(k)  # v = k − τDᵀy, then the exact data prox, written into k̄'s storage
        for (axis, _, _), y in zip(edges, duals):
            _sub_adjoint_diff(v, y, axis, tau)
        k_new = torch.matmul(v.view(-1, n_t), prox, out=k_bar.view(-1, n_t)).view(c.shape).add_(offset)
        k_bar = k.mul_(-1.0).add_(k_new, alpha=2.0)  # over-relaxation 2k_new − k_old
        k = k_new
        if config.monitor_every and iteration % config.monitor_every == 0:
            trace.append(_objective(k, c, a_mat, edges, n_vox))
    return TTVSolution(k=k, objective=trace)


# --------------------------------------------------------------------------- volume level


def _config(config: TTVConfig | None, options: dict) -> TTVConfig:
    """``config`` with ``options`` (field names of TTVConfig) replaced; unknown names raise."""
    config = TTVConfig() if config is None else config
    fields = {f.name for f in dataclasses.fields(TTVConfig)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise StnetInputError(f"unknown TTV option(s) {unknown}; TTV takes {sorted(fields)}")
    config = dataclasses.replace(config, **options)
    if config.weight_spatial < 0 or config.weight_temporal < 0 or config.n_iter < 0:
        raise StnetInputError(
            f"TTV weights and n_iter must be ≥ 0; got weight_spatial={config.weight_spatial}, "
            f"weight_temporal={config.weight_temporal}, n_iter={config.n_iter}"
        )
    return config


def _slabs(n: int, width: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, stop, core_start, core_stop) of overlapping slabs covering an axis of length n."""
    if width >= n:
        return [(0, n, 0, n)]
    core = max(width - 2 * overlap, 1)
    return [(max(lo - overlap, 0), min(lo + core + overlap, n), lo, min(lo + core, n)) for lo in range(0, n, core)]


def _slab_width(shape: tuple[int, ...], config: TTVConfig) -> int:
    """x-planes per slab so that the solver's arrays stay within ``config.max_slab_bytes``."""
    itemsize = torch.empty((), dtype=getattr(torch, config.dtype)).element_size()
    bytes_per_plane = _N_ARRAYS * itemsize * int(np.prod(shape[1:]))
    return max(int(config.max_slab_bytes // bytes_per_plane), 2 * config.slab_overlap + 1)


def ttv_residues(c_tissue: NDArray, c_aif: NDArray, dt_s: float, *, mask: NDArray | None = None,
                 device: str | torch.device = "cpu", config: TTVConfig | None = None, **options) -> NDArray:
    """Flow-scaled residues of a volume by TTV deconvolution.

    Parameters
    ----------
    c_tissue : ndarray, shape (x, y, z, N)
        Tissue concentration [mM].
    c_aif : ndarray, shape (N,)
        Arterial concentration [mM].
    dt_s : float
        Frame interval [s].
    mask : ndarray of bool, shape (x, y, z), optional
        Voxels to deconvolve (default all); the TV couples only neighbours inside it.
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, … (the registry passes a resolved device).
    config : TTVConfig, optional
        Settings (default ``TTVConfig()``); ``**options`` (its field names) override them.

    Returns
    -------
    ndarray, shape (x, y, z, L), float64
        Residues k [1/s], C_t = A k with A = dt·circulant(C_a padded to L); zero outside ``mask``.
    """
    config = _config(config, options)
    dt_s = check_positive(dt_s, "dt_s", "s")
    c_tissue = np.asarray(c_tissue, dtype=np.float64)
    if c_tissue.ndim != 4:
        raise StnetInputError(f"TTV needs the spatial layout: c_tissue must be (x, y, z, t); got shape {c_tissue.shape}")
    c_aif = check_finite(np.asarray(c_aif, dtype=np.float64), "the arterial curve")
    if c_aif.shape != c_tissue.shape[-1:]:
        raise StnetInputError(f"the arterial curve has shape {c_aif.shape}; expected ({c_tissue.shape[-1]},)")
    if config.n_out is not None and config.n_out < c_aif.size:
        raise StnetInputError(f"n_out must be at least the number of frames ({c_aif.size}); got {config.n_out}")
    mask = np.ones(c_tissue.shape[:3], bool) if mask is None else check_mask(mask, c_tissue.shape[:3], "mask")
    check_finite(c_tissue[mask], "the tissue concentration inside the mask")
    n_out = 2 * c_aif.size if config.n_out is None else config.n_out
    residues = np.zeros(c_tissue.shape[:3] + (n_out,))
    c_scale = float(np.percentile(np.abs(c_tissue[mask]), config.scale_percentile))
    a_scale = float(np.abs(np.fft.fft(dt_s * c_aif, n=n_out)).max())  # ‖A‖₂ of the circulant matrix
    if c_scale == 0.0 or a_scale == 0.0:
        log.warning("TTV: the tissue or arterial curves are all zero; residues set to 0")
        return residues
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))
    k_box = _solve_box(c_tissue[box] / c_scale, c_aif, dt_s, mask[box], a_scale, config, torch.device(device))
    residues[box] = k_box * (c_scale / a_scale)
    return residues


def _solve_box(c_box, c_aif, dt_s, mask_box, a_scale, config, device) -> NDArray:
    """Scaled residues k̃ = k·a_scale/c_scale of the mask's bounding box, slab by slab along x."""
    dtype = getattr(torch, config.dtype)
    a_mat = circulant_aif_matrix(c_aif, dt_s, config.n_out) / a_scale
    n_out = a_mat.shape[0]
    a_t = torch.as_tensor(a_mat, dtype=dtype, device=device)
    aif_t = torch.as_tensor(c_aif, dtype=torch.float64, device=device)
    out = np.zeros(c_box.shape[:3] + (n_out,))
    slabs = _slabs(c_box.shape[0], _slab_width(c_box.shape[:3] + (n_out,), config), config.slab_overlap)
    for start, stop, core_start, core_stop in slabs:
        m = mask_box[start:stop]
        c = torch.zeros(m.shape + (n_out,), dtype=torch.float64, device=device)
        curves = torch.as_tensor(c_box[start:stop][m], dtype=torch.float64, device=device)
        c[torch.as_tensor(m, device=device), : c_box.shape[-1]] = curves
        k0 = torch.zeros_like(c)  # cSVD warm start in scaled units (curves are already c / c_scale)
        k0[torch.as_tensor(m, device=device)] = a_scale * csvd(curves, aif_t, dt_s,
                                                               threshold=config.warm_start_threshold, n_out=n_out)
        solution = solve_ttv(c.to(dtype), a_t, k0.to(dtype), torch.as_tensor(m, device=device), config)
        if solution.objective:
            log.info("TTV objective per voxel, slab x %d:%d: %s", start, stop,
                     ", ".join(f"{value:.5g}" for value in solution.objective))
        core = slice(core_start - start, core_stop - start)
        out[core_start:core_stop] = solution.k[core].double().cpu().numpy()
    return out
