"""TTV deconvolution: convergence, invariances, slabs, agreement with cSVD, noise robustness, OSIPI DRO."""

import dataclasses
import logging

import numpy as np
import pandas as pd
import pytest
import torch

from curves import tissue_curves
from stnet_lib._validation import StnetInputError
from stnet_lib.deconvolution import METHODS, Method, deconvolve, svd, ttv
from stnet_lib.experiments import noise_study as study
from stnet_lib.experiments.ttv_tuning import make_ttv_phantom, pooled_errors, ratios_to_svd
from stnet_lib.maps import cbf_eq5, cbv_eq4, tmax_eq7
from stnet_lib.paths import SHARED_DATA_DIR
from stnet_lib.profiles import PROFILES, NoiseStudyPlan

FAST = ttv.TTVConfig(n_iter=60, dtype="float64")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small solver steps are dominated by thread synchronisation on a shared 2-core machine (×100 slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def phantom():
    return make_ttv_phantom(np.random.default_rng(3), shape=(12, 10, 3), n_t=30, snr=20.0)


def _objective_trace(phantom, caplog, config):
    with caplog.at_level(logging.INFO, logger="stnet_lib.deconvolution.ttv"):
        ttv.ttv_residues(phantom.c_tissue, phantom.c_aif, phantom.dt_s, config=config)
    message = [r.getMessage() for r in caplog.records if "objective" in r.getMessage()][-1]
    return np.array([float(v) for v in message.split(": ")[1].split(", ")])


def test_objective_decreases_to_the_minimum(phantom, caplog):
    """Chambolle–Pock is not monotone per iteration; every 10 iterations it decreases here (up to
    wiggles below 1e-4 of the start near convergence, measured ≤ 1e-5), to ≤ 0.1 % of the minimum."""
    trace = _objective_trace(phantom, caplog, dataclasses.replace(FAST, n_iter=200, monitor_every=10))
    reference = _objective_trace(phantom, caplog, dataclasses.replace(FAST, n_iter=1000, monitor_every=1000))[-1]
    assert np.all(np.diff(trace) <= 1e-4 * trace[0])
    assert np.all(np.diff(trace[:6]) < 0)  # a clear decrease while far from the minimum
    assert trace[-1] < 0.6 * trace[0]  # far below the cSVD warm start
    assert reference <= trace[-1] <= reference * 1.001


def test_scaling_invariance(phantom):
    """Dimensionless weights: scaling C_t by α and C_a by β scales the residue by α/β."""
    base = ttv.ttv_residues(phantom.c_tissue, phantom.c_aif, phantom.dt_s, config=FAST)
    scaled = ttv.ttv_residues(3.0 * phantom.c_tissue, 0.5 * phantom.c_aif, phantom.dt_s, config=FAST)
    np.testing.assert_allclose(scaled, 6.0 * base, rtol=1e-6, atol=1e-9 * np.abs(base).max())


def test_voxels_outside_the_mask_are_ignored(phantom):
    mask = np.ones(phantom.mask.shape, bool)
    mask[:3] = False
    mask[5, 5, 1] = False
    changed = phantom.c_tissue.copy()
    changed[~mask] = 100.0 * np.random.default_rng(0).random(changed[~mask].shape)
    first = ttv.ttv_residues(phantom.c_tissue, phantom.c_aif, phantom.dt_s, mask=mask, config=FAST)
    second = ttv.ttv_residues(changed, phantom.c_aif, phantom.dt_s, mask=mask, config=FAST)
    np.testing.assert_allclose(first, second, rtol=1e-9, atol=1e-12)
    assert np.all(first[~mask] == 0.0) and first.shape == mask.shape + (60,)


def test_slabs_give_the_whole_volume_result():
    """Six slabs (cores of 4 planes, default overlap 8) vs one volume: CBF within 0.5 % (median), 5 % (max).

    Not bit-equal: the TV couples voxels beyond any finite overlap.
    """
    phantom = make_ttv_phantom(np.random.default_rng(4), shape=(24, 8, 2), n_t=30, snr=20.0)
    config = ttv.TTVConfig(dtype="float64")
    slabbed_config = dataclasses.replace(config, max_slab_bytes=20 * ttv._N_ARRAYS * 8 * (8 * 2 * 60))
    assert len(ttv._slabs(24, ttv._slab_width((24, 8, 2, 60), slabbed_config), config.slab_overlap)) == 6
    whole = ttv.ttv_residues(phantom.c_tissue, phantom.c_aif, phantom.dt_s, config=config)
    slabbed = ttv.ttv_residues(phantom.c_tissue, phantom.c_aif, phantom.dt_s, config=slabbed_config)
    relative = np.abs(cbf_eq5(slabbed.max(-1)) / cbf_eq5(whole.max(-1)) - 1)
    assert np.median(relative) < 0.005 and relative.max() < 0.05


def test_float32_solver_matches_float64(phantom):
    double = ttv.ttv_residues(phantom.c_tissue, phantom.c_aif, phantom.dt_s, config=FAST)
    single = ttv.ttv_residues(phantom.c_tissue, phantom.c_aif, phantom.dt_s, config=dataclasses.replace(FAST, dtype="float32"))
    np.testing.assert_allclose(single, double, atol=1e-4 * np.abs(double).max())


def test_noise_free_ttv_agrees_with_csvd():
    """Noise-free 12×12 slice, blocks of CBF 20/40/60 (along x) × delay 0/1.5/3 s (along y), 4 voxels wide.

    Stated tolerance: TTV's CBF within 15 % of cSVD's (both at default settings; the temporal TV
    lowers the residue's peak by 5–15 %), its Tmax within 2 frames everywhere and 1 frame on average.
    """
    cbf = np.repeat([20.0, 40.0, 60.0], 4)
    delays = [tissue_curves(cbf, 4.0, delay_s=d, tr_s=1.5, n_frames=50)[1] for d in (0.0, 1.5, 3.0)]
    volume = np.repeat(np.stack(delays, axis=1), 4, axis=1)[:, :, None]  # (12, 12, 1, 50)
    c_aif = tissue_curves(cbf, 4.0, tr_s=1.5, n_frames=50)[0]
    k_ttv = ttv.ttv_residues(volume, c_aif, 1.5)
    k_csvd = svd.csvd(torch.from_numpy(volume), torch.from_numpy(c_aif), 1.5).numpy()
    np.testing.assert_allclose(cbf_eq5(k_ttv.max(-1)), cbf_eq5(k_csvd.max(-1)), rtol=0.15)
    tmax_difference = np.abs(tmax_eq7(k_ttv, 1.5, wrap=True) - tmax_eq7(k_csvd, 1.5, wrap=True))
    assert tmax_difference.max() <= 3.0 and tmax_difference.mean() <= 1.5


def test_deconvolve_entry_point(phantom, monkeypatch):
    """``deconvolve(..., "ttv")`` (registered as a spatial, circulant method) gives TTV's maps, NaN outside the mask."""
    if "ttv" not in METHODS:  # until the registry row lands in stnet_lib/deconvolution/__init__.py
        monkeypatch.setitem(METHODS, "ttv", Method("ttv", ttv.ttv_residues, ttv.DEFAULT_OPTIONS, spatial=True))
    mask = np.ones(phantom.mask.shape, bool)
    mask[0] = False
    maps = deconvolve(phantom.c_tissue, phantom.c_aif, phantom.dt_s, "ttv", mask=mask, n_iter=60)
    direct = ttv.ttv_residues(phantom.c_tissue, phantom.c_aif, phantom.dt_s, mask=mask, n_iter=60)[mask]
    np.testing.assert_allclose(maps.cbf[mask], cbf_eq5(direct.max(-1)))
    np.testing.assert_allclose(maps.tmax[mask], tmax_eq7(direct, phantom.dt_s, wrap=True))
    assert np.isnan(maps.cbf[~mask]).all() and maps.params["n_iter"] == 60 and maps.method == "ttv"


# Bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, match",
    [
        ({"c_tissue": np.zeros((4, 30))}, "spatial layout"),
        ({"c_aif": np.ones(29)}, "arterial curve has shape"),
        ({"dt_s": 0.0}, "dt_s must be a positive"),
        ({"mask": np.ones((2, 2, 2), bool)}, "mask shape"),
        ({"weight_spatial": -1.0}, "must be ≥ 0"),
        ({"n_out": 20}, "n_out must be at least"),
        ({"threshold": 0.1}, "unknown TTV option"),
    ],
)
def test_bad_input_raises(phantom, change, match):
    args = {"c_tissue": phantom.c_tissue, "c_aif": phantom.c_aif, "dt_s": phantom.dt_s}
    options = {k: change.pop(k) for k in list(change) if k not in args and k != "mask"}
    args.update(change)
    with pytest.raises(StnetInputError, match=match):
        ttv.ttv_residues(args["c_tissue"], args["c_aif"], args["dt_s"], mask=change.get("mask"), **options)


def test_nan_inside_the_mask_raises(phantom):
    bad = phantom.c_tissue.copy()
    bad[1, 1, 1, 5] = np.nan
    with pytest.raises(StnetInputError, match="NaN"):
        ttv.ttv_residues(bad, phantom.c_aif, phantom.dt_s)
    mask = np.ones(bad.shape[:3], bool)
    mask[1, 1, 1] = False
    assert np.isfinite(ttv.ttv_residues(bad, phantom.c_aif, phantom.dt_s, mask=mask, config=FAST)).all()


# OSIPI's DRO --------------------------------------------------------------------------------

OSIPI_CSV = SHARED_DATA_DIR / "osipi_dsc" / "dsc_data.csv"
OSIPI_ROWS = list(pd.read_csv(OSIPI_CSV).itertuples()) if OSIPI_CSV.is_file() else []


@pytest.mark.shared_data
@pytest.mark.skipif(not OSIPI_ROWS, reason=f"external validation data absent: {OSIPI_CSV}")
def test_osipi_dro_passes_osipi_rule():
    """OSIPI DSC DRO (Apache-2.0, Chakwizira et al. 2022), one voxel per volume (the spatial term idle).

    OSIPI's rule: |CBV − ref| ≤ 1 + 0.1·ref, |CBF − ref| ≤ 15 + 0.1·ref, with kh = ρ = 1.
    """
    for row in OSIPI_ROWS:
        c_tissue, c_aif = (np.array(s.split(), dtype=float) for s in (row.C_tis, row.C_aif))
        residue = ttv.ttv_residues(c_tissue.reshape(1, 1, 1, -1), c_aif, row.tr)[0, 0, 0]
        cbf = cbf_eq5(residue.max(), kh=1.0, rho=1.0)
        cbv = cbv_eq4(c_tissue, c_aif, row.tr, kh=1.0, rho=1.0)
        assert abs(cbv - row.cbv) <= 1.0 + 0.1 * row.cbv, row.label
        assert abs(cbf - row.cbf) <= 15.0 + 0.1 * row.cbf, (row.label, cbf)


# Noise robustness: the property the method exists for --------------------------------------

#: Unseen subjects (bench/tune_ttv.py tunes on seeds 7000+), fixed before their results were seen:
#: 9101 and 9102 since the first TTV test, 9103–9106 added with the per-SNR criterion.
TEST_SEEDS = (9101, 9102, 9103, 9104, 9105, 9106)
SNRS = (20.0, 10.0, 5.0)


#: Issue #7's grid: the noise study's default, the paper's (256×256×3 voxels of 0.9×0.9×5 mm); in
#: ``make test-all`` (about 2 min on 2 quiet cores, 76 % of a loaded default run when it was one).
PAPER_GRID = NoiseStudyPlan()
#: The quick report's noise study (which every ``make report`` regenerates): the same slab at half the
#: in-plane resolution (128×128×3 voxels of 1.8×1.8×5 mm), a quarter of the voxels. Cropping the paper's
#: 0.9 mm grid to 128×128 instead misses the criterion (CBF ratio 0.911 at SNR 20: the AIF and the
#: lesions sit at the crop's edge; docs/decisions/0070-ttv-criterion-test-grid.md). In ``make test-all``
#: too since 2026-12-08: its 50 s put ``make test`` past its 6 minutes on the 2-core CPU (6 min 26 s
#: from a clean clone); the solver's own tests (objective, invariances, noise-free agreement with
#: cSVD, OSIPI) stay in the default run.
SMALL_GRID = PROFILES["quick"].noise_study


#: Every method at its defaults, and oSVD as Wu et al. published it (the per-sample oscillation index,
#: before decision 0074), the baseline issue #7's criterion was set against.
STUDY_METHODS = {"ssvd": "ssvd", "csvd": "csvd", "osvd": "osvd", "ttv": ttv.TTVConfig(),
                 "osvd_wu": ("osvd", {"oi_reference_tr_s": None})}


def _defaults(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the methods at their defaults (oSVD with the TR-invariant OI)."""
    return table[table["method"] != "osvd_wu"]


def _published(table: pd.DataFrame) -> pd.DataFrame:
    """The rows with Wu et al.'s oSVD in place of the default one, labelled ``osvd``."""
    table = table[table["method"] != "osvd"]
    return table.assign(method=table["method"].replace({"osvd_wu": "osvd"}))


@pytest.fixture(scope="module", params=[pytest.param(SMALL_GRID, id="128x128-1.8mm", marks=pytest.mark.slow),
                                        pytest.param(PAPER_GRID, id="paper-grid", marks=pytest.mark.slow)])
def noise_study(request):
    """Every method at its default settings on the unseen cohort subjects (on the grid of the
    parameter, 50 frames) with Rician noise on the tissue curves at SNR 20, 10 and 5, and without
    noise (the AIF from the noise-free series): errors against the truth, and each method's
    noise-induced error."""
    grid = request.param
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # whole volumes, unlike the small solver steps above: 40 s here against 64 s on one thread
    try:
        return study.noise_study(TEST_SEEDS, SNRS, methods=STUDY_METHODS, shape=grid.shape, voxel_mm=grid.voxel_mm)
    finally:
        torch.set_num_threads(threads)


def _ratios(table: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """:func:`ratios_to_svd`, with every method's CBF RMSE beside it for the failure report."""
    return ratios_to_svd(table, by).join(table.pivot_table(index=by, columns="method", values="cbf_rmse").round(2))


def test_ttv_beats_every_svd_method_against_the_truth(noise_study):
    """Issue #7's criterion: TTV's CBF RMSE against the truth, pooled over the brain voxels of the six
    unseen subjects at each SNR (20, 10, 5), is ≥ 15 % below the best of sSVD, cSVD and oSVD at
    their default thresholds, and its Tmax mean absolute error is no worse than the better of cSVD
    and oSVD.

    Measured on the paper's grid (TTV / best SVD method, CBF RMSE): SNR 20: 10.58 / 12.98 (cSVD) =
    0.815; SNR 10: 11.07 / 14.25 (sSVD) = 0.777; SNR 5: 14.38 / 18.53 (sSVD) = 0.776; Tmax 0.83,
    0.71, 0.53. On the default run's 1.8 mm grid: 0.844, 0.793, 0.794; Tmax 0.84, 0.70, 0.46. On 20
    unseen subjects (``bench/noise_study.py --shape 256 256 3 --voxel-mm 0.9 0.9 5``): 0.793, 0.750,
    0.769; Tmax 0.91, 0.81, 0.63. TTV is not better on every subject (here 0.65–0.94 at SNR 20; on
    the 20, up to 1.27). On the quick cohort's 3.6 mm voxels the same defaults give 0.855 at SNR 20
    (20 subjects), short of the criterion: the spatial TV compresses the CBF contrast between
    neighbouring voxels more where they differ more (docs/decisions/0022-noise-study-on-the-papers-voxel-size.md).

    The criterion is against oSVD as published (Wu et al.'s per-sample oscillation index). The default
    oSVD since decision 0074 (the OI scaled to TR 1 s) is a much better baseline on this cohort's
    TR 1–2 s: its CBF RMSE at SNR 20/10/5 is 11.4/13.9/17.5 against 17.0/19.1/21.6 ml/100g/min as
    published, and TTV's ratio to the best SVD method becomes 0.911/0.796/0.819 (1.8 mm grid); TTV
    must still beat it by 5 %, and on Tmax.
    """
    errors, _ = noise_study
    published, defaults = _published(errors), _defaults(errors)
    pooled = _ratios(pooled_errors(published, ["snr"]), ["snr"])
    report = f"pooled per SNR:\n{pooled.round(3).to_string()}\nper volume:\n{_ratios(published, ['seed', 'snr']).round(3)}"
    assert (pooled["cbf_ratio"] <= 0.85).all(), report
    assert (pooled["tmax_ratio"] <= 1.0).all(), report
    against_defaults = _ratios(pooled_errors(defaults, ["snr"]), ["snr"])  # oSVD with the TR-invariant OI
    report = f"against the default oSVD:\n{against_defaults.round(3).to_string()}"
    assert (against_defaults["cbf_ratio"] <= 0.95).all(), report
    assert (against_defaults["tmax_ratio"] <= 1.0).all(), report


def test_ttv_removes_more_noise_than_every_svd_method(noise_study):
    """The noise-induced CBF error (each method on the noisy volume against itself on the noise-free
    one), pooled over the six unseen subjects: TTV's is at least 30 % below every SVD method's at SNR
    20 and 10, and below every SVD method's at SNR 5.

    Measured on the paper's grid (TTV / least noisy SVD method): SNR 20: 2.08 / 3.91 (sSVD) = 0.53;
    SNR 10: 4.00 / 7.92 (oSVD) = 0.505; SNR 5: 10.36 / 11.42 (oSVD) = 0.91; on the 1.8 mm grid 0.62,
    0.56, 0.935 with oSVD as published (its per-voxel threshold regularises hard at SNR 5, at the price
    of a CBF bias of −17 ml/100g/min against the truth); 0.618, 0.521, 0.666 against the default oSVD
    (decision 0074), which is noisier at SNR 5 because it regularises less. On 20 unseen
    subjects (``bench/noise_study.py``, same grid): 0.53, 0.49, 0.95 (0.64 at SNR 40).
    """
    _, noise_induced = noise_study
    pooled = pooled_errors(_defaults(noise_induced), ["snr"])
    ratio = ratios_to_svd(pooled, ["snr"])["cbf_ratio"]
    report = pooled.pivot(index="snr", columns="method", values="cbf_rmse").assign(ratio=ratio).round(3).to_string()
    assert (ratio < 1.0).all(), report
    assert (ratio[[20.0, 10.0]] <= 0.7).all(), report


def test_noise_study_figure(noise_study):
    """The report's figure: one line per method in each of its three panels, one point per SNR."""
    import matplotlib.pyplot as plt

    from stnet_lib.plotting import plot_noise_study

    summary = study.noise_study_summary(*(_defaults(table) for table in noise_study))
    figure = plot_noise_study(summary, labels={"ttv": "TTV (Fang)"})
    assert len(figure.axes) == 3
    for ax in figure.axes:
        assert len(ax.get_lines()) == 4 and all(len(line.get_xdata()) == len(SNRS) for line in ax.get_lines())
    ttv_line = figure.axes[1].get_lines()[list(summary["method"].unique()).index("ttv")]
    np.testing.assert_allclose(ttv_line.get_ydata(), summary[summary["method"] == "ttv"].sort_values("snr")["noise_cbf_rmse"])
    assert "TTV (Fang)" in [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    plt.close(figure)
