"""Dice, IoU, HD95 and the hypoperfusion mask: hand cases, scikit-learn, a brute-force HD95,
MONAI where installed, the empty-mask policy and bad input."""

import itertools

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.metrics import f1_score, jaccard_score

from stnet_lib._validation import StnetInputError
from stnet_lib.metrics import dice, empty_status, hd95, hypoperfusion_mask, iou


def _random_blob(rng, shape, n_seeds=3):
    """A random union of boxes, so the boundary has corners and holes."""
    mask = np.zeros(shape, bool)
    for _ in range(n_seeds):
        low = [rng.integers(0, s - 2) for s in shape]
        size = [rng.integers(1, max(2, s // 2)) for s in shape]
        mask[tuple(slice(a, a + b) for a, b in zip(low, size, strict=True))] = True
    return mask


def _boundary_brute_force(mask):
    """Voxels of the mask with a face neighbour outside the mask or outside the array."""
    points = []
    for index in zip(*np.nonzero(mask), strict=True):
        for axis, step in itertools.product(range(mask.ndim), (-1, 1)):
            neighbour = list(index)
            neighbour[axis] += step
            if not 0 <= neighbour[axis] < mask.shape[axis] or not mask[tuple(neighbour)]:
                points.append(index)
                break
    return np.array(points, dtype=float)


def _hd_brute_force(a, b, spacing, percentile=95.0):
    """All pairwise boundary distances in mm; percentile of each directed set; the larger."""
    distances = cdist(_boundary_brute_force(a) * spacing, _boundary_brute_force(b) * spacing)
    return max(np.percentile(distances.min(axis=1), percentile), np.percentile(distances.min(axis=0), percentile))


def test_dice_iou_hand_computed_2x2():
    reference = np.array([[1, 1], [0, 0]])
    estimate = np.array([[1, 0], [1, 0]])
    assert dice(reference, estimate) == pytest.approx(0.5)  # 2·1 / (2 + 2)
    assert iou(reference, estimate) == pytest.approx(1 / 3)  # 1 / 3


def test_dice_iou_match_scikit_learn(rng):
    reference = _random_blob(rng, (12, 10, 6))
    estimate = _random_blob(rng, (12, 10, 6)) | reference & (rng.random((12, 10, 6)) < 0.5)
    assert dice(reference, estimate) == pytest.approx(f1_score(reference.ravel(), estimate.ravel()))
    assert iou(reference, estimate) == pytest.approx(jaccard_score(reference.ravel(), estimate.ravel()))
    d = dice(reference, estimate)
    assert iou(reference, estimate) == pytest.approx(d / (2 - d))


def test_overlap_restricted_to_mask():
    reference = np.array([1, 1, 0, 0], bool)
    estimate = np.array([1, 0, 1, 1], bool)
    brain = np.array([1, 1, 1, 0], bool)  # the last estimated voxel lies outside the brain
    assert dice(reference, estimate, mask=brain) == pytest.approx(2 * 1 / (2 + 2))
    assert iou(reference, estimate, mask=brain) == pytest.approx(1 / 3)


@pytest.mark.parametrize("seed", range(4))
def test_hd95_matches_brute_force_anisotropic(seed):
    rng = np.random.default_rng(seed)
    shape = (14, 12, 7)
    a, b = _random_blob(rng, shape), _random_blob(rng, shape)
    spacing = np.array([0.9, 1.3, 5.0])
    for percentile in (95.0, 100.0, 50.0):
        assert hd95(a, b, spacing=spacing, percentile=percentile) == pytest.approx(
            _hd_brute_force(a, b, spacing, percentile), rel=1e-9)


def test_hd95_hand_cases_and_symmetry():
    a = np.zeros((3, 1, 4), bool)
    b = np.zeros_like(a)
    a[0, 0, 0] = True
    b[0, 0, 2] = True
    assert hd95(a, b, spacing=(1.0, 1.0, 5.0)) == pytest.approx(10.0)  # 2 slices × 5 mm
    b[:] = False
    b[2, 0, 0] = True
    assert hd95(a, b, spacing=(1.0, 1.0, 5.0)) == pytest.approx(2.0)
    assert hd95(a, a, spacing=2.0) == 0.0
    rng = np.random.default_rng(7)
    c, d = _random_blob(rng, (10, 9, 5)), _random_blob(rng, (10, 9, 5))
    assert hd95(c, d, spacing=(1, 2, 3)) == hd95(d, c, spacing=(1, 2, 3))


def test_hd95_2d_and_mask_at_the_array_edge():
    a = np.ones((4, 5), bool)  # every voxel touches the edge or is inside: boundary = the frame
    b = np.zeros((4, 5), bool)
    b[1:3, 1:4] = True
    assert hd95(a, b, spacing=1.0, percentile=100) == pytest.approx(_hd_brute_force(a, b, np.ones(2), 100))
    assert hd95(a, b, spacing=1.0, percentile=100) == pytest.approx(np.sqrt(2.0))  # corner (0, 0) → (1, 1)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI 1.6 warns about its own internal argument
def test_hd95_matches_monai_where_installed(rng):
    monai_metrics = pytest.importorskip("monai.metrics")
    torch = pytest.importorskip("torch")
    spacing = (0.9, 1.3, 5.0)
    as_tensor = lambda m: torch.from_numpy(m[None, None].astype(np.float32))  # noqa: E731
    for _ in range(5):
        a, b = _random_blob(rng, (14, 12, 7)), _random_blob(rng, (14, 12, 7))
        expected = monai_metrics.compute_hausdorff_distance(  # (y_pred, y): estimate first
            as_tensor(b), as_tensor(a), include_background=True, percentile=95, spacing=spacing).item()
        assert hd95(a, b, spacing=spacing) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("reference_empty", "estimate_empty", "status", "dice_iou", "hd"),
    [(False, False, "ok", None, None),
     (True, False, "reference_empty", 0.0, np.inf),
     (False, True, "estimate_empty", 0.0, np.inf),
     (True, True, "both_empty", np.nan, np.nan)],
)
def test_empty_mask_policy(reference_empty, estimate_empty, status, dice_iou, hd):
    full = np.zeros((6, 6, 3), bool)
    full[1:4, 1:4, 1] = True
    reference = np.zeros_like(full) if reference_empty else full
    estimate = np.zeros_like(full) if estimate_empty else full
    assert empty_status(reference, estimate) == status
    if dice_iou is None:
        assert dice(reference, estimate) == iou(reference, estimate) == 1.0
        assert hd95(reference, estimate, spacing=1.0) == 0.0
        return
    np.testing.assert_equal([dice(reference, estimate), iou(reference, estimate)], [dice_iou, dice_iou])
    np.testing.assert_equal(hd95(reference, estimate, spacing=(2.0, 2.0, 5.0)), hd)


def test_hypoperfusion_mask_is_strictly_greater_inside_the_brain():
    tmax = np.array([[[5.0, 6.0, 6.01, 12.0, np.nan]]])
    brain = np.array([[[1, 1, 1, 0, 0]]], bool)
    np.testing.assert_array_equal(hypoperfusion_mask(tmax, mask=brain), [[[False, False, True, False, False]]])
    np.testing.assert_array_equal(hypoperfusion_mask(tmax), [[[False, False, True, True, False]]])
    np.testing.assert_array_equal(hypoperfusion_mask(tmax, threshold_s=5.5, mask=brain),
                                  [[[False, True, True, False, False]]])
    with pytest.raises(StnetInputError, match="tmax has 1 NaN"):
        hypoperfusion_mask(tmax, mask=np.ones(tmax.shape, bool))


def test_overlap_errors():
    a = np.zeros((5, 5, 2), bool)
    a[1:3, 1:3, 0] = True
    with pytest.raises(StnetInputError, match="does not match reference mask shape"):
        dice(a, a[:4])
    with pytest.raises(StnetInputError, match="does not match reference mask shape"):
        hd95(a, a[:, :, :1], spacing=1.0)
    with pytest.raises(StnetInputError, match="spacing must be one positive voxel size"):
        hd95(a, a, spacing=(1.0, 1.0))
    with pytest.raises(StnetInputError, match="spacing must be one positive voxel size"):
        hd95(a, a, spacing=(1.0, 0.0, 2.0))
    with pytest.raises(StnetInputError, match="has NaN values"):
        iou(a, np.full(a.shape, np.nan))
    with pytest.raises(TypeError):
        hd95(a, a)  # spacing is required: no silent 1 mm default
