"""Stage 3a: classical deconvolution of tissue curves by the arterial input function.

``deconvolve`` is the one entry point for curve arrays; every method is a row of ``METHODS``.
A method computes flow-scaled residues r (n_vox, L) [1/s] from tissue curves (n_vox, N) and one
arterial curve (N,), in torch; the maps follow from eq. 4–7 (:mod:`stnet_lib.maps`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..constants import K_H, RHO_G_PER_ML
from ..maps import PerfusionMaps, cbf_eq5, cbv_eq4, mtt_eq6, negative_delay_record, tmax_eq7
from .._validation import StnetInputError, check_finite, check_in_allowed, check_positive
from ..device import resolve_device
from . import svd, ttv

__all__ = ["Method", "METHODS", "deconvolve", "resolve_device"]


@dataclass(frozen=True)
class Method:
    """A deconvolution method: its residue function, defaults and how to read its Tmax."""

    name: str
    residues: Callable[..., torch.Tensor]
    defaults: dict = field(default_factory=dict)
    circulant: bool = True  # residue is periodic (zero-padded circular convolution): Tmax wraps
    tmax_peak: str = "parabola"  # eq. 7's peak rule (maps.tmax_eq7; decisions 0041, 0074)
    spatial: bool = False  # needs the (x, y, z, t) layout (TTV); else voxel-wise on (n_vox, t)


METHODS: dict[str, Method] = {
    "ssvd": Method("ssvd", svd.ssvd, {"threshold": 0.2}, circulant=False),
    # cSVD's and oSVD's residues are trigonometric polynomials: their exact maximum (decision 0074)
    "csvd": Method("csvd", svd.csvd, {"threshold": 0.1}, tmax_peak="bandlimited"),
    "osvd": Method("osvd", svd.osvd, {"oi_threshold": 0.035, "oi_reference_tr_s": 1.0}, tmax_peak="bandlimited"),
    "ttv": Method("ttv", ttv.ttv_residues, ttv.DEFAULT_OPTIONS, spatial=True),
}


def _options(method: Method, options: dict) -> dict:
    unknown = set(options) - set(method.defaults) - {"n_out", "thresholds"}
    if unknown:
        raise StnetInputError(
            f"unknown option(s) {sorted(unknown)} for method {method.name!r}; it takes {sorted(method.defaults)}"
        )
    return {**method.defaults, **options}


def _voxelwise_residues(method, curves, c_aif, dt_s, options, device, chunk_size):
    """Residues (n_vox, L) [1/s] in chunks of ``chunk_size`` voxels (bounded memory), as float64 numpy."""
    aif = torch.as_tensor(c_aif, dtype=torch.float64, device=device)
    chunks = range(0, curves.shape[0], chunk_size)
    out = []
    for start in tqdm(chunks, desc=method.name, unit="chunk", disable=len(chunks) < 4, leave=False):
        block = torch.as_tensor(curves[start : start + chunk_size], dtype=torch.float64, device=device)
        out.append(method.residues(block, aif, dt_s, **options).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, curves.shape[1]))


def deconvolve(
    c_tissue: np.ndarray,
    c_aif: np.ndarray,
    tr_s: float,
    method: str = "osvd",
    *,
    kh: float = K_H,
    rho: float = RHO_G_PER_ML,
    k_av: float = 1.0,
    mask: np.ndarray | None = None,
    device: str = "cpu",
    chunk_size: int = 100_000,
    keep_residue: bool = True,
    **options,
) -> PerfusionMaps:
    """Perfusion maps from concentration curves by deconvolution (eq. 3–7).

    Parameters
    ----------
    c_tissue : ndarray, shape (..., N)
        Tissue concentration curves [mM]; (x, y, z, N) for spatial methods (``"ttv"``).
    c_aif : ndarray, shape (N,)
        Arterial input function [mM].
    tr_s : float
        Frame interval [s].
    method : {"ssvd", "csvd", "osvd", ...}
        A key of ``METHODS``.
    kh, rho, k_av : float
        Haematocrit factor k_H, tissue density ρ [g/ml], AIF partial-volume factor (eq. 8).
        ``kh = rho = 1`` gives OSIPI's convention.
    mask : ndarray of bool, shape c_tissue.shape[:-1], optional
        Voxels to compute; the maps are NaN elsewhere. Default: all. Another shape raises
        StnetInputError before any work.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    **options
        Method options (``threshold`` for sSVD/cSVD, ``oi_threshold`` and ``oi_reference_tr_s``
        for oSVD, see ``METHODS``).

    Returns
    -------
    PerfusionMaps
        ``cbv``, ``cbf``, ``mtt``, ``tmax`` of shape ``c_tissue.shape[:-1]`` and ``residue``
        (..., L) [1/s] when ``keep_residue``.
    """
    spec = METHODS[check_in_allowed(method, METHODS, "method")]
    options = _options(spec, options)
    dt_s = check_positive(tr_s, "tr_s", "s")
    c_tissue = np.asarray(c_tissue, dtype=np.float64)
    if mask is not None and np.shape(mask) != c_tissue.shape[:-1]:
        raise StnetInputError(f"the mask has shape {np.shape(mask)}; expected {c_tissue.shape[:-1]}, the tissue curves' "
                              "shape without the time axis: pass a mask on the same grid")
    c_tissue = check_finite(c_tissue, "the tissue concentration")
    c_aif = check_finite(np.asarray(c_aif, dtype=np.float64), "the arterial curve")
    if c_aif.ndim != 1 or c_aif.shape[0] != c_tissue.shape[-1]:
        raise StnetInputError(
            f"the arterial curve has shape {c_aif.shape}; expected ({c_tissue.shape[-1]},) to match the tissue curves"
        )
    mask = np.ones(c_tissue.shape[:-1], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if spec.spatial:
        residue = spec.residues(c_tissue, c_aif, dt_s, mask=mask, device=resolve_device(device), **options)[mask]
    else:
        residue = _voxelwise_residues(spec, c_tissue[mask], c_aif, dt_s, options, resolve_device(device), chunk_size)
    factors = {"k_av": k_av, "kh": kh, "rho": rho}
    cbv = cbv_eq4(c_tissue[mask], c_aif, dt_s, **factors)
    cbf = cbf_eq5(residue.max(axis=-1), **factors)
    tmax = tmax_eq7(residue, dt_s, wrap=spec.circulant, peak=spec.tmax_peak)  # sub-frame, < 0 before the AIF
    maps = PerfusionMaps(
        cbv=cbv,
        cbf=cbf,
        mtt=mtt_eq6(cbv, cbf),
        tmax=tmax,
        method=method,
        params={**options, **factors, "tr_s": dt_s, "tmax_peak": spec.tmax_peak, **negative_delay_record(tmax, dt_s)},
        residue=residue if keep_residue else None,
    )
    return maps.scatter(mask)
