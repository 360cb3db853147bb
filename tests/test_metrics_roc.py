"""AUC against a brute-force Mann–Whitney count; the |TPR − (1 − FPR)| threshold against an
exhaustive search; single-class subjects; bad input."""

import numpy as np
import pytest

from stnet_lib._validation import StnetInputError
from stnet_lib.metrics import OperatingPoint, auc, optimal_threshold


def _auc_brute_force(labels, scores):
    """P(positive score > negative score) + ½ P(tie), over every pair."""
    positives, negatives = scores[labels], scores[~labels]
    wins = (positives[:, None] > negatives[None, :]).sum() + 0.5 * (positives[:, None] == negatives[None, :]).sum()
    return wins / (positives.size * negatives.size)


def _threshold_brute_force(labels, scores):
    """Every distinct score as a threshold (positive if ≥), highest first; the first minimum."""
    best = None
    for threshold in np.unique(scores)[::-1]:
        called = scores >= threshold
        tpr = (called & labels).sum() / labels.sum()
        fpr = (called & ~labels).sum() / (~labels).sum()
        gap = abs(tpr - (1 - fpr))
        if best is None or gap < best[0]:
            best = (gap, threshold, tpr, fpr)
    return best[1:]


@pytest.fixture
def tmax_case(rng):
    """Reference Tmax > 6 s as labels; an estimated Tmax quantised to 0.5 s (ties) as scores."""
    true_tmax = rng.gamma(3.0, 1.6, (12, 10, 4))
    labels = true_tmax > 6.0
    scores = np.round((true_tmax + rng.normal(0.0, 1.5, true_tmax.shape)) * 2) / 2
    return labels, scores


def test_auc_matches_brute_force_with_ties(tmax_case):
    labels, scores = tmax_case
    assert auc(labels, scores) == pytest.approx(_auc_brute_force(labels.ravel(), scores.ravel()), rel=1e-12)
    assert 0.5 < auc(labels, scores) < 1.0


def test_auc_hand_values():
    labels = np.array([0, 0, 1, 1], bool)
    assert auc(labels, np.array([1.0, 2.0, 3.0, 4.0])) == 1.0
    assert auc(labels, np.array([4.0, 3.0, 2.0, 1.0])) == 0.0
    assert auc(labels, np.array([1.0, 3.0, 2.0, 4.0])) == 0.75
    assert auc(labels, np.ones(4)) == 0.5


def test_optimal_threshold_matches_exhaustive_search(tmax_case):
    labels, scores = tmax_case
    point = optimal_threshold(labels, scores)
    assert isinstance(point, OperatingPoint)
    expected = _threshold_brute_force(labels.ravel(), scores.ravel())
    np.testing.assert_allclose(point, expected, rtol=1e-12)


def test_optimal_threshold_of_a_shifted_separable_tmax(rng):
    true_tmax = rng.uniform(0.0, 12.0, (10, 10, 3))
    labels = true_tmax > 6.0
    point = optimal_threshold(labels, true_tmax + 0.5)
    assert point.threshold == pytest.approx(true_tmax[labels].min() + 0.5)
    assert (point.tpr, point.fpr) == (1.0, 0.0)


def test_mask_selects_the_voxels(tmax_case):
    labels, scores = tmax_case
    brain = np.zeros(labels.shape, bool)
    brain[2:10, 1:9] = True
    scores = np.where(brain, scores, np.nan)  # NaN outside the brain is allowed
    assert auc(labels, scores, mask=brain) == pytest.approx(_auc_brute_force(labels[brain], scores[brain]))
    np.testing.assert_allclose(optimal_threshold(labels, scores, mask=brain),
                               _threshold_brute_force(labels[brain], scores[brain]))


def test_single_class_gives_nan(tmax_case):
    _, scores = tmax_case
    for labels in (np.zeros(scores.shape, bool), np.ones(scores.shape, bool)):
        assert np.isnan(auc(labels, scores))
        assert all(np.isnan(optimal_threshold(labels, scores)))


def test_roc_errors(tmax_case):
    labels, scores = tmax_case
    scores[0, 0, 0] = np.nan
    with pytest.raises(StnetInputError, match="estimate has 1 NaN or infinite values inside the mask"):
        auc(labels, scores)
    with pytest.raises(StnetInputError, match="does not match reference mask shape"):
        optimal_threshold(labels, scores[1:])
