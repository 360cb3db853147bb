"""Convolution matrices of the arterial input function (stage 3a).

The discrete model is C_t[i] = dt · Σ_j C_a[i − j] · r[j] (rectangle rule, Østergaard et al.
1996, doi:10.1002/mrm.1910360510): a lower-triangular Toeplitz matrix for linear convolution
(sSVD), or a circulant matrix of the AIF zero-padded to L samples for circular convolution
(cSVD, oSVD, TTV; Wu et al. 2003, doi:10.1002/mrm.10522), which makes the estimate
insensitive to the tracer's arrival delay.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import circulant, toeplitz

__all__ = ["toeplitz_aif_matrix", "circulant_aif_matrix"]


def toeplitz_aif_matrix(c_aif: np.ndarray, dt_s: float) -> np.ndarray:
    """Lower-triangular (N, N) matrix A with A[i, j] = dt·C_a[i − j] for i ≥ j, else 0."""
    c_aif = np.asarray(c_aif, dtype=np.float64)
    return dt_s * toeplitz(c_aif, np.zeros_like(c_aif))


def circulant_aif_matrix(c_aif: np.ndarray, dt_s: float, n_out: int | None = None) -> np.ndarray:
    """Circulant (L, L) matrix D[i, j] = dt·a[(i − j) mod L] of the AIF zero-padded to L = ``n_out`` (default 2N)."""
    c_aif = np.asarray(c_aif, dtype=np.float64)
    length = 2 * c_aif.size if n_out is None else int(n_out)
    padded = np.zeros(length)
    padded[: c_aif.size] = c_aif
    return dt_s * circulant(padded)
