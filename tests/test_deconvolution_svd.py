"""sSVD, cSVD, oSVD: dense-SVD oracles, OSIPI's DRO, physics round trips, bad input."""

import numpy as np
import pandas as pd
import pytest
import torch

from curves import gamma_variate, tissue_curves
from stnet_lib._validation import StnetInputError
from stnet_lib.deconvolution import METHODS, deconvolve, svd
from stnet_lib.deconvolution._matrices import circulant_aif_matrix, toeplitz_aif_matrix
from stnet_lib.paths import SHARED_DATA_DIR


def _truncated_pinv(matrix, threshold):
    """Oracle: numpy's dense SVD pseudo-inverse keeping singular values ≥ threshold·s_max."""
    u, s, vh = np.linalg.svd(matrix)
    keep = s >= threshold * s[0]
    return (vh[keep].T / s[keep]) @ u[:, keep].T


@pytest.fixture
def curves(rng):
    c_aif, c_tissue = tissue_curves(rng.uniform(10, 70, 20), rng.uniform(2, 5, 20), delay_s=1.0, tr_s=1.5, n_frames=40)
    return c_aif, c_tissue + rng.normal(0, 0.02, c_tissue.shape)


def test_ssvd_equals_the_dense_truncated_pseudo_inverse(curves):
    c_aif, c_tissue = curves
    expected = c_tissue @ _truncated_pinv(toeplitz_aif_matrix(c_aif, 1.5), 0.2).T
    result = svd.ssvd(torch.from_numpy(c_tissue), torch.from_numpy(c_aif), 1.5, threshold=0.2).numpy()
    np.testing.assert_allclose(result, expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("threshold", [0.05, 0.1, 0.3])
def test_fft_csvd_equals_the_dense_block_circulant_svd(curves, threshold):
    c_aif, c_tissue = curves
    padded = np.concatenate([c_tissue, np.zeros_like(c_tissue)], axis=1)
    expected = padded @ _truncated_pinv(circulant_aif_matrix(c_aif, 1.5), threshold).T
    result = svd.csvd(torch.from_numpy(c_tissue), torch.from_numpy(c_aif), 1.5, threshold=threshold).numpy()
    np.testing.assert_allclose(result, expected, rtol=1e-8, atol=1e-10)


def test_osvd_picks_per_voxel_the_smallest_threshold_with_low_oscillation(curves):
    c_aif, c_tissue = (torch.from_numpy(a) for a in curves)
    limit = 0.035 * (1.5 / 1.0) ** 2  # the OI threshold scaled from TR 1 s to 1.5 s (decision 0074)
    chosen = svd.osvd(c_tissue, c_aif, 1.5, oi_threshold=0.035)
    per_sample = svd.osvd(c_tissue, c_aif, 1.5, oi_threshold=limit, oi_reference_tr_s=None)
    for row in range(c_tissue.shape[0]):  # oracle: the same rule, one voxel at a time, dense
        for threshold in svd.OSVD_THRESHOLDS:
            residue = svd.csvd(c_tissue[row : row + 1], c_aif, 1.5, threshold=threshold)
            if svd.oscillation_index(residue) <= limit or threshold == svd.OSVD_THRESHOLDS[-1]:
                break
        np.testing.assert_allclose(chosen[row], residue[0], atol=1e-12)
        np.testing.assert_allclose(per_sample[row], residue[0], atol=1e-12)


def test_oscillation_index_by_hand():
    residue = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0]])  # |d2| = 2, 2, 2 → OI = 6 / (5·1)
    assert svd.oscillation_index(residue).item() == pytest.approx(1.2)


OSIPI_CSV = SHARED_DATA_DIR / "osipi_dsc" / "dsc_data.csv"
OSIPI_ROWS = list(pd.read_csv(OSIPI_CSV).itertuples()) if OSIPI_CSV.is_file() else []


@pytest.mark.shared_data
@pytest.mark.skipif(not OSIPI_ROWS, reason=f"external validation data absent: {OSIPI_CSV}")
@pytest.mark.parametrize("method", ["ssvd", "csvd", "osvd"])
@pytest.mark.parametrize("row", OSIPI_ROWS or [None], ids=lambda row: getattr(row, "label", "absent"))
def test_osipi_dro_passes_osipi_rule(method, row):
    """OSIPI DSC DRO (Apache-2.0, Chakwizira et al. 2022): |CBV−ref| ≤ 1+0.1·ref, |CBF−ref| ≤ 15+0.1·ref, kh = ρ = 1."""
    c_tissue, c_aif = (np.array(s.split(), dtype=float) for s in (row.C_tis, row.C_aif))
    maps = deconvolve(c_tissue, c_aif, row.tr, method, kh=1.0, rho=1.0)
    np.testing.assert_allclose(maps.cbv, row.cbv, atol=1.0, rtol=0.1)
    np.testing.assert_allclose(maps.cbf, row.cbf, atol=15.0, rtol=0.1)


NOISE_FREE = {"csvd": {"threshold": 0.01}, "osvd": {"thresholds": (0.01, 0.02, 0.05, 0.1)}}


@pytest.mark.parametrize("method", ["csvd", "osvd"])
@pytest.mark.parametrize("delay_s", [0.0, 2.0])
def test_round_trip_recovers_cbv_cbf_and_delay(method, delay_s):
    """Noise-free curves (TR 1 s, exponential residue, MTT 8–12 s) with the thresholds lowered for noise-free data.

    At the default thresholds, made for noisy data, truncation underestimates CBF by 15–30 % even
    without noise (the known SVD bias, see the next test).
    """
    cbf, cbv = np.array([20.0, 30.0]), np.array([4.0, 4.0])
    c_aif, c_tissue = tissue_curves(cbf, cbv, delay_s=delay_s, tr_s=1.0, n_frames=90)
    maps = deconvolve(c_tissue, c_aif, 1.0, method, **NOISE_FREE[method])
    np.testing.assert_allclose(maps.cbv, cbv, rtol=0.02)
    np.testing.assert_allclose(maps.cbf, cbf, rtol=0.10)
    assert np.all(np.abs(maps.tmax - delay_s) <= UNDISPERSED_TMAX_TOLERANCE_S)


#: |Tmax − delay| of an undispersed residue at TR 1 s (issue #15). Its jump at the delay puts the
#: rectangle-rule residue's largest sample one frame late (the first sample carries about half the
#: jump: [0.54, 1, 0.95] here), and the sub-frame parabola through those three samples moves the
#: peak another 0.33–0.40 frame later (1.33–1.40 s measured). Dispersed residues, the cohort's kind,
#: are located better than on the frame grid (tests/test_maps_tmax.py).
UNDISPERSED_TMAX_TOLERANCE_S = 1.5


def test_csvd_recovers_a_5_s_delay():
    cbf, cbv = np.array([20.0, 30.0]), np.array([4.0, 4.0])
    c_aif, late = tissue_curves(cbf, cbv, delay_s=5.0, tr_s=1.0, n_frames=90)
    csvd_late = deconvolve(late, c_aif, 1.0, "csvd", threshold=0.01)
    np.testing.assert_allclose(csvd_late.cbv, cbv, rtol=0.02)
    np.testing.assert_allclose(csvd_late.cbf, cbf, rtol=0.10)
    assert np.all(np.abs(csvd_late.tmax - 5.0) <= UNDISPERSED_TMAX_TOLERANCE_S)


@pytest.mark.parametrize("method", ["ssvd", "csvd", "osvd"])
def test_default_thresholds_underestimate_noise_free_cbf(method):
    cbf = np.array([40.0, 60.0])
    c_aif, c_tissue = tissue_curves(cbf, np.array([4.0, 4.0]), tr_s=1.5, n_frames=50)
    maps = deconvolve(c_tissue, c_aif, 1.5, method)
    assert np.all(maps.cbf < cbf) and np.all(maps.cbf > 0.5 * cbf)


def test_volumes_masks_and_shapes(rng):
    c_aif, curves_ = tissue_curves(np.full(24, 40.0), 4.0, tr_s=1.5, n_frames=40)
    volume = curves_.reshape(2, 3, 4, 40)
    mask = rng.random((2, 3, 4)) > 0.3
    maps = deconvolve(volume, c_aif, 1.5, "osvd", mask=mask)
    assert maps.cbf.shape == (2, 3, 4) and maps.residue.shape == (2, 3, 4, 80)
    assert np.isnan(maps.cbf[~mask]).all() and np.isfinite(maps.cbf[mask]).all()
    np.testing.assert_allclose(maps.mtt[mask], 60 * maps.cbv[mask] / maps.cbf[mask])


def test_bad_input_is_refused():
    c_aif = gamma_variate(np.arange(40.0))
    with pytest.raises(StnetInputError, match="method must be one of"):
        deconvolve(np.ones((3, 40)), c_aif, 1.5, "fft")
    with pytest.raises(StnetInputError, match=r"unknown option\(s\) \['oi_threshold'\]"):
        deconvolve(np.ones((3, 40)), c_aif, 1.5, "csvd", oi_threshold=0.1)
    with pytest.raises(StnetInputError, match="arterial curve has shape"):
        deconvolve(np.ones((3, 40)), c_aif[:30], 1.5)
    with pytest.raises(StnetInputError, match="NaN or infinite"):
        deconvolve(np.full((3, 40), np.nan), c_aif, 1.5)
    with pytest.raises(StnetInputError, match="tr_s must be a positive number"):
        deconvolve(np.ones((3, 40)), c_aif, 0.0)
    with pytest.raises(StnetInputError, match="AIF shows no bolus"):
        deconvolve(np.ones((3, 40)), np.zeros(40), 1.5)


def test_methods_table_lists_the_svd_family():
    assert {"ssvd", "csvd", "osvd"} <= set(METHODS)
