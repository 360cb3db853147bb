"""The external-validation study's OSIPI path for methods that read a series (ST-Net), checked with oSVD.

OSIPI's DRO gives concentration curves; ST-Net reads a DSC series. :func:`osipi_case_scan` makes
one (eq. 2 and eq. 1 forward); taking oSVD through it must give what oSVD gives on the curves
themselves (OSIPI's rule, and close values), so that what ST-Net scores there is ST-Net's own.
"""

import numpy as np
import pandas as pd
import pytest

from conftest import shared_file
from stnet_lib.experiments import validation
from stnet_lib.signal import delta_r2_to_concentration, signal_to_delta_r2

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def osipi_csv():
    return shared_file("osipi_dsc", "dsc_data.csv")


def test_the_case_series_inverts_to_the_cases_curves(osipi_csv):
    case = pd.read_csv(osipi_csv).iloc[3]
    c_tissue, c_aif = (np.array(text.split(), dtype=float) for text in (case.C_tis, case.C_aif))
    scan = validation.osipi_case_scan(c_tissue, c_aif, case.tr)
    baseline = slice(0, 1)  # S0 of every voxel is OSIPI_SIGNAL["s0"] at t = 0 (the curves start at ≈ 0)
    delta = signal_to_delta_r2(scan.signal.astype(np.float64), scan.te_ms, baseline=baseline).delta_r2_per_s
    field = validation.OSIPI_SIGNAL["field_t"]
    back_tissue = delta_r2_to_concentration(delta[4, 4, 0], kind="tissue", field_t=field)
    back_aif = delta_r2_to_concentration(delta[4, 10, 0], kind="arterial", field_t=field)
    # up to the first frame's own value (it is S0 here) and float32 rounding of the signal
    np.testing.assert_allclose(back_tissue, c_tissue - c_tissue[0], atol=2e-4)
    np.testing.assert_allclose(back_aif, c_aif - c_aif[0], rtol=5e-3, atol=2e-3)
    assert scan.brain_mask.sum() == 81 and scan.aif_mask.sum() == 18 and not (scan.brain_mask & scan.aif_mask).any()


def test_osvd_through_the_series_passes_as_it_does_on_the_curves(osipi_csv):
    curves = validation.osipi_results(["osvd"], osipi_csv).set_index("case")
    series = validation.osipi_signal_results(["osvd"], osipi_csv).set_index("case")
    assert curves["cbv_pass"].all() and curves["cbf_pass"].all()
    assert series["cbv_pass"].all() and series["cbf_pass"].all()
    # the two paths differ only by the baseline the series path subtracts (its mean of the pre-bolus
    # frames, not the curve's own zero): within half of OSIPI's tolerance of each other
    ref = curves.loc[series.index]
    assert (abs(series["cbv"] - ref["cbv"]) <= 0.5 * (1 + 0.1 * ref["cbv_ref"])).all()
    assert (abs(series["cbf"] - ref["cbf"]) <= 0.5 * (15 + 0.1 * ref["cbf_ref"])).all()


@pytest.fixture(scope="module")
def real_slice():
    shared_file("real_dsc", "moyamoya_cerebellum_dsc.nii.gz")
    scan = validation.real_scan()
    summary, maps = validation.real_scan_summary(scan, ["csvd", "osvd", "ttv"])
    return scan, summary, maps


def test_the_area_ratio_cbv_uses_the_aif_the_methods_found(real_slice):
    # oracle: the SVD methods' CBV is eq. 4's area ratio by construction, so with the same AIF, VOF and
    # k_AV the study's deconvolution-free CBV must equal oSVD's voxel for voxel
    scan, _, maps = real_slice
    area = validation.area_ratio_cbv(scan, maps["osvd"])
    brain = scan.brain_mask
    np.testing.assert_allclose(area[brain], maps["osvd"].cbv[brain], rtol=1e-6)
    assert np.isnan(area[~brain]).all()


def test_generalisation_table_reports_each_data_set(real_slice, osipi_csv):
    scan, summary, maps = real_slice
    agreement = validation.real_scan_agreement(scan, maps).set_index("method")
    # every deconvolution method's CBV is eq. 4's (only ST-Net's is learned): r = 1 up to rounding
    assert agreement.loc[["csvd", "osvd", "ttv"], "cbv_pearson_eq4"].min() > 0.9999
    assert np.isnan(agreement.loc["osvd", "cbf_spearman_osvd"]) and agreement.loc["osvd", "cbf_spearman_csvd"] > 0.7
    osipi = validation.osipi_results(["osvd"], osipi_csv)
    table = validation.generalisation_table(osipi, agreement.reset_index(), summary, methods=("osvd", "ttv"))
    assert list(table["method"]) == ["osvd", "ttv"]
    assert table.loc[0, "osipi_cbv_pass"] == "14/14" and table.loc[1, "osipi_cbv_pass"] == "0/0"
    # OSIPI's Tmax truth is 0 s: oSVD's median |Tmax| over the cases is the median of its Tmax column
    osvd_tmax = osipi.loc[osipi["method"] == "osvd", "tmax"].to_numpy()
    assert table.loc[0, "osipi_tmax_abs_error_median_s"] == np.median(np.abs(osvd_tmax)) > 0.5
    assert np.isnan(table.loc[1, "osipi_tmax_abs_error_median_s"])
    assert table.loc[1, "real_cbv_pearson_eq4"] == agreement.loc["ttv", "cbv_pearson_eq4"]
    medians = summary.set_index(["method", "map"])["median"]
    assert table.loc[0, "real_median_cbf"] == medians["osvd", "cbf"]


def test_the_reports_tmax_sentences_carry_the_measured_values():
    from stnet_lib.maps import PerfusionMaps

    osipi = pd.DataFrame({"method": ["osvd", "osvd", "stnet", "stnet"], "tmax": [1.5, -2.5, 0.1, -0.3]})
    assert validation.osipi_tmax_sentence(osipi).endswith("osvd 2.00 s, stnet 0.20 s.")
    empty = np.full((2, 2, 1), np.nan)

    def maps(**params):
        return PerfusionMaps(empty, empty, empty, empty, method="stnet", params=params)

    moved = maps(arrival_lag_s=0.26, arrival_lag_reference_s=3.14, aif_advance_s=2.4)
    assert "AIF 2.4 s earlier" in validation.alignment_sentence(moved) and "0.26 s" in validation.alignment_sentence(moved)
    assert "as found" in validation.alignment_sentence(maps(arrival_lag_s=3.5, arrival_lag_reference_s=3.14,
                                                            aif_advance_s=0.0))
    assert validation.alignment_sentence(maps(n_iter=3)) == ""  # not ST-Net's maps
