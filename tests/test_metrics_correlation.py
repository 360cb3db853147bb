"""PCC and SCC against numpy/scipy on the region voxels; the paper's clipping; edge cases."""

import numpy as np
import pytest
from scipy import stats

from stnet_lib._validation import StnetInputError
from stnet_lib.metrics import pcc, scc


@pytest.fixture
def maps(rng):
    reference = rng.normal(5.0, 3.0, (10, 9, 4))
    estimate = 0.7 * reference + rng.normal(0.0, 2.0, reference.shape)
    estimate[::3] = np.round(estimate[::3])  # some ties for the ranks
    mask = np.zeros(reference.shape, bool)
    mask[2:9, 1:8, :3] = True
    return np.where(mask, reference, np.nan), np.where(mask, estimate, np.nan), mask


def test_pcc_matches_numpy_corrcoef(maps):
    reference, estimate, mask = maps
    expected = np.corrcoef(reference[mask], estimate[mask])[0, 1]
    assert pcc(reference, estimate, mask=mask) == pytest.approx(expected, rel=1e-12)


def test_scc_matches_scipy_spearmanr_with_ties(maps):
    reference, estimate, mask = maps
    expected = stats.spearmanr(estimate[mask], reference[mask]).statistic
    assert scc(reference, estimate, mask=mask) == pytest.approx(expected, rel=1e-12)


def test_paper_convention_clips_negatives_like_the_authors(maps):
    reference, estimate, mask = maps
    assert (estimate[mask] < 0).any()
    ref, est = np.clip(reference[mask], 0, None), np.clip(estimate[mask], 0, None)
    expected_pcc, expected_scc = np.corrcoef(ref, est)[0, 1], stats.spearmanr(est, ref).statistic
    assert pcc(reference, estimate, mask=mask, convention="paper") == pytest.approx(expected_pcc, rel=1e-12)
    assert scc(reference, estimate, mask=mask, convention="paper") == pytest.approx(expected_scc, rel=1e-12)
    assert pcc(reference, estimate, mask=mask, convention="paper") != pytest.approx(pcc(reference, estimate, mask=mask))


def test_invariances(maps):
    reference, _, mask = maps
    assert pcc(reference, 2.0 * reference + 3.0, mask=mask) == pytest.approx(1.0)
    assert pcc(reference, -reference, mask=mask) == pytest.approx(-1.0)
    assert scc(reference, np.exp(reference), mask=mask) == pytest.approx(1.0)  # monotone, not linear
    assert pcc(reference, np.exp(reference), mask=mask) < 0.99


def test_constant_map_or_too_few_voxels_give_nan(maps):
    reference, estimate, mask = maps
    constant = np.full(reference.shape, 4.0)
    for metric in (pcc, scc):
        assert np.isnan(metric(reference, constant, mask=mask))
        assert np.isnan(metric(constant, estimate, mask=mask))
        one = np.zeros(mask.shape, bool)
        one[3, 3, 0] = True
        assert np.isnan(metric(reference, estimate, mask=one))


@pytest.mark.parametrize("metric", [pcc, scc])
def test_errors(maps, metric):
    reference, estimate, mask = maps
    estimate[4, 4, 1] = np.inf
    with pytest.raises(StnetInputError, match="estimate has 1 NaN or infinite values inside the mask"):
        metric(reference, estimate, mask=mask)
    with pytest.raises(StnetInputError, match="does not match reference shape"):
        metric(reference, estimate[..., :2], mask=mask)
    with pytest.raises(StnetInputError, match="convention must be one of"):
        metric(reference, reference, mask=mask, convention="authors")
