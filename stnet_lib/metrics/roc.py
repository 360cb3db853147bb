"""Stage 5 — ROC analysis of a Tmax map against a reference hypoperfusion mask: AUC, threshold.

The score is the estimated Tmax [s] of every voxel in the region (the brain), the label the
reference mask (reference Tmax > 6 s or a lesion label). A subject with a single class (no
hypoperfused voxel, or only hypoperfused voxels) has no ROC curve: both functions return NaN for it,
whatever the installed scikit-learn (≤ 1.5 raised, ≥ 1.6 warns), and the evaluation table counts it
as ``single_class``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import roc_auc_score, roc_curve

from .._validation import StnetInputError
from ._common import as_bool, check_finite_in, region

__all__ = ["auc", "optimal_threshold", "OperatingPoint"]


class OperatingPoint(NamedTuple):
    """The ROC point where sensitivity ≈ specificity: threshold [score units], TPR, FPR."""

    threshold: float
    tpr: float
    fpr: float


def auc(reference: ArrayLike, estimate: ArrayLike, *, mask: ArrayLike | None = None) -> float:
    """Area under the ROC curve of the score ``estimate`` for the binary ``reference``.

    Parameters
    ----------
    reference : array_like of bool (or 0/1), shape (x, y, z)
        Reference hypoperfusion mask (labels).
    estimate : array_like of float, same shape
        Score, e.g. the estimated Tmax map [s] (higher = more likely hypoperfused); NaN allowed
        outside ``mask`` only.
    mask : array_like of bool, optional
        Voxels that take part (the brain); None = every voxel.

    Returns
    -------
    float
        AUC in [0, 1] (ties count one half); NaN when the region holds a single class.

    Notes
    -----
    AUC = P(score of a positive > score of a negative) + ½ P(tie) (Hanley & McNeil 1982,
    doi:10.1148/radiology.143.1.7063747), computed by :func:`sklearn.metrics.roc_auc_score`.
    Paper setting: reference = reference Tmax > 6 s in the brain, estimate = predicted Tmax.
    """
    labels, scores = _labels_scores(reference, estimate, mask)
    if _single_class(labels):
        return float("nan")
    return float(roc_auc_score(labels, scores))


def optimal_threshold(
    reference: ArrayLike, estimate: ArrayLike, *, mask: ArrayLike | None = None
) -> OperatingPoint:
    """ROC operating point minimising |TPR − (1 − FPR)| (sensitivity = specificity).

    Parameters
    ----------
    reference : array_like of bool (or 0/1), shape (x, y, z)
        Reference hypoperfusion mask (labels).
    estimate : array_like of float, same shape
        Score, e.g. the estimated Tmax map [s].
    mask : array_like of bool, optional
        Voxels that take part (the brain); None = every voxel.

    Returns
    -------
    OperatingPoint
        ``threshold`` (a voxel is called positive when its score is ≥ it), ``tpr``, ``fpr``;
        all NaN when the region holds a single class.

    Notes
    -----
    ``roc_curve(drop_intermediate=False)`` keeps every distinct score as a candidate; its first
    threshold (``inf``, nothing positive) is left out; ties of |TPR − (1 − FPR)| go to the highest
    threshold. This is the point the paper uses (mean over subjects 6.484 s against the clinical
    6 s); it differs from Youden's J (max TPR − FPR). Take the mean of the per-subject thresholds to
    reproduce the paper's number.
    """
    labels, scores = _labels_scores(reference, estimate, mask)
    if _single_class(labels):
        return OperatingPoint(float("nan"), float("nan"), float("nan"))
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    fpr, tpr, thresholds = fpr[1:], tpr[1:], thresholds[1:]
    best = int(np.argmin(np.abs(tpr - (1.0 - fpr))))
    return OperatingPoint(float(thresholds[best]), float(tpr[best]), float(fpr[best]))


def _labels_scores(reference, estimate, mask) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Labels and scores of the region voxels, checked for shape and finiteness."""
    labels = as_bool(reference, "reference mask")
    scores = np.asarray(estimate, dtype=np.float64)
    if labels.shape != scores.shape:
        raise StnetInputError(
            f"estimate shape {scores.shape} does not match reference mask shape {labels.shape}"
        )
    inside = region(mask, labels.shape)
    check_finite_in(scores, inside, "estimate")
    return labels[inside], scores[inside]


def _single_class(labels: NDArray[np.bool_]) -> bool:
    return labels.size == 0 or labels.all() or not labels.any()
