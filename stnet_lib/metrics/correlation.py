"""Stage 5 — voxel-wise correlation of a map with a reference map inside a region: PCC, SCC.

Both are computed on the 1-D vectors of region voxels, as the authors' ``test.py`` does
(``np.corrcoef`` and ``scipy.stats.spearmanr``). They are per-subject effect sizes: their p-values on
10⁴–10⁶ voxels are always ≈ 0 and are not returned; compare methods with paired tests over subjects
(:func:`stnet_lib.evaluation.paired_tests`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from ._common import check_convention, clip_negative, masked_values

__all__ = ["pcc", "scc"]


def pcc(
    reference: ArrayLike,
    estimate: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    convention: str = "standard",
) -> float:
    """Pearson correlation coefficient between ``reference`` and ``estimate`` inside ``mask``.

    Parameters
    ----------
    reference, estimate : array_like, same shape
        Reference and estimated map; values outside ``mask`` are ignored (NaN allowed there).
    mask : array_like of bool, optional
        Region to score (brain for WB, hypoperfused area for HP); None = every voxel.
    convention : {"standard", "paper"}
        ``"paper"`` sets negative values of both maps to 0 first, as the authors' code does.

    Returns
    -------
    float
        r in [−1, 1]; NaN when fewer than 2 voxels or either map is constant in the region
        (r is undefined there; the evaluation table records it as ``undefined``).

    Notes
    -----
    r = cov(x, y) / (σx σy) (Pearson 1895, doi:10.1098/rspl.1895.0041), computed by
    :func:`scipy.stats.pearsonr`. Paper setting: ``convention="paper"``, ``mask`` = brain.
    """
    ref, est = _vectors(reference, estimate, mask, convention)
    if _undefined(ref, est):
        return float("nan")
    return float(stats.pearsonr(ref, est).statistic)


def scc(
    reference: ArrayLike,
    estimate: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    convention: str = "standard",
) -> float:
    """Spearman rank correlation coefficient between ``reference`` and ``estimate`` inside ``mask``.

    Parameters
    ----------
    reference, estimate : array_like, same shape
        Reference and estimated map; values outside ``mask`` are ignored (NaN allowed there).
    mask : array_like of bool, optional
        Region to score; None = every voxel.
    convention : {"standard", "paper"}
        ``"paper"`` sets negative values of both maps to 0 first, as the authors' code does.

    Returns
    -------
    float
        ρ in [−1, 1] (Pearson r of the average ranks, ties shared); NaN when fewer than 2 voxels
        or either map is constant in the region.

    Notes
    -----
    Spearman (1904), doi:10.2307/1412159; computed by :func:`scipy.stats.spearmanr`.
    """
    ref, est = _vectors(reference, estimate, mask, convention)
    if _undefined(ref, est):
        return float("nan")
    return float(stats.spearmanr(ref, est).statistic)


def _vectors(reference, estimate, mask, convention: str):
    """Region vectors, with the paper's clipping of negatives if asked for."""
    ref, est = masked_values(reference, estimate, mask)
    if check_convention(convention) == "paper":
        ref, est = clip_negative(ref), clip_negative(est)
    return ref, est


def _undefined(ref, est) -> bool:
    """True when a correlation is undefined: < 2 values or a constant vector."""
    return ref.size < 2 or np.ptp(ref) == 0 or np.ptp(est) == 0
