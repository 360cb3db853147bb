"""The QC page (issue #15): its panels, colour bars with units, the paper-figure rules, and the atomic save."""

import numpy as np
import pytest

from stnet_lib._validation import StnetInputError
from stnet_lib.maps import PerfusionMaps
from stnet_lib.qc import plot_qc_page, save_qc_page, summary_lines
from stnet_lib.summary import hypoperfusion_summary
from test_figures import check_figure

SHAPE = (16, 14, 4)
AFFINE = np.diag([2.0, 2.0, 5.0, 1.0])


@pytest.fixture()
def scan(rng):
    """A small brain with a hypoperfused corner, an AIF and a VOF mask, and its curves."""
    brain = np.zeros(SHAPE, bool)
    brain[2:14, 2:12] = True
    tmax = np.where(brain, 2.0, np.nan)
    tmax[3:7, 3:7, 1:3] = 9.0
    cbf = np.where(brain, rng.uniform(20, 60, SHAPE), np.nan)
    cbv = np.where(brain, rng.uniform(2, 5, SHAPE), np.nan)
    maps = PerfusionMaps(cbv=cbv, cbf=cbf, mtt=60 * cbv / cbf, tmax=tmax, method="osvd",
                         params={"n_negative_delay_voxels": 3})
    aif, vof = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    aif[10, 6, 1:3] = True
    vof[8, 12, 2] = True
    time_s = np.arange(40) * 1.5
    bolus = np.exp(-0.5 * ((time_s - 20) / 3) ** 2)
    return {"maps": maps, "brain": brain, "aif": aif, "vof": vof, "time_s": time_s, "bolus": bolus,
            "mean": rng.uniform(500, 900, SHAPE)}


def draw(scan, **extra):
    summary = hypoperfusion_summary(scan["maps"], scan["brain"], AFFINE).values
    return plot_qc_page(scan["mean"], scan["maps"], summary, brain_mask=scan["brain"], time_s=scan["time_s"],
                        aif_curve=6 * scan["bolus"], vof_curve=4 * np.roll(scan["bolus"], 3),
                        brain_curve=0.1 * scan["bolus"], aif_mask=scan["aif"], vof_mask=scan["vof"], affine=AFFINE,
                        title="QC: test subject, oSVD", **extra)


def test_page_has_every_panel_and_colour_bars_with_units(scan, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    figure = draw(scan)
    colour_bars = [ax for ax in figure.axes if getattr(ax, "_colorbar", None) is not None]
    assert len(figure.axes) == 12 + 5 and len(colour_bars) == 5
    labels = sorted(ax._colorbar.ax.get_ylabel() for ax in colour_bars)
    assert labels == ["CBF [ml/100g/min]", "CBV [ml/100g]", "MTT [s]", "Tmax [s]", "mean signal [a.u.]"]
    assert check_figure(figure) == []
    curve_axes = [ax for ax in figure.axes if ax.lines]
    assert [ax.get_xlabel() for ax in curve_axes] == ["time [s]", "time [s]"]
    assert all(ax.get_ylabel() == "concentration [mM]" for ax in curve_axes)
    text = "\n".join(t.get_text() for ax in figure.axes for t in ax.texts)
    assert "Tmax > 6 s: 0.6 ml" in text  # 32 voxels of 0.02 ml
    assert "voxels peaking before the AIF: 3" in text
    titles = [ax.get_title() for ax in figure.axes]
    assert "Tmax > 6 s, slice 1: 16 voxels" in titles and "Tmax [s], slice 1" in titles
    assert list(tmp_path.iterdir()) == []  # drawing writes nothing


def test_stnets_uncertainty_adds_a_row_of_sd_maps_with_units(scan):
    maps = scan["maps"]
    sd = {f"{name}_sd": np.where(scan["brain"], 0.1 * np.nan_to_num(getattr(maps, name)), np.nan)
          for name in ("cbv", "cbf", "tmax")}
    figure = draw({**scan, "maps": PerfusionMaps(maps.cbv, maps.cbf, maps.mtt, maps.tmax, method="stnet",
                                                 params=maps.params, extra_volumes=sd)})
    colour_bars = [ax for ax in figure.axes if getattr(ax, "_colorbar", None) is not None]
    assert len(figure.axes) == 16 + 8 and len(colour_bars) == 8
    labels = {ax._colorbar.ax.get_ylabel() for ax in colour_bars}
    assert {"SD of CBV [ml/100g]", "SD of CBF [ml/100g/min]", "SD of Tmax [s]"} <= labels
    assert check_figure(figure) == []


def test_save_writes_a_png_atomically(scan, tmp_path):
    path = save_qc_page(draw(scan), tmp_path / "sub-01" / "qc.png", dpi=60)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["qc.png"]  # no temporary file left


def test_summary_lines_read_custom_thresholds_and_missing_values():
    lines = summary_lines({"tmax_gt_4p5s_ml": 2.0, "tmax_gt_6s_left_ml": 1.0, "rcbf_lt_20pct_ml": 0.5,
                           "hypoperfusion_intensity_ratio": None})
    assert lines[:3] == ["Tmax > 4.5 s: 2.0 ml", "HIR (Tmax > 10 s / > 6 s): n/a", "rCBF < 20 %: 0.5 ml"]


def test_mismatched_inputs_are_refused(scan):
    with pytest.raises(StnetInputError, match="share one"):
        plot_qc_page(scan["mean"][:, :, :2], scan["maps"], {}, brain_mask=scan["brain"], time_s=scan["time_s"])
    with pytest.raises(StnetInputError, match="AIF curve"):
        plot_qc_page(scan["mean"], scan["maps"], {}, brain_mask=scan["brain"], time_s=scan["time_s"],
                     aif_curve=np.ones(3))


def test_the_tmax_scale_reaches_below_zero_only_where_the_brain_does(scan):
    def tmax_clim(figure):
        return next(ax for ax in figure.axes if ax.get_title().startswith("Tmax [s], slice")).images[0].get_clim()

    assert tmax_clim(draw(scan)) == (0, 12)  # the clinical viewers' range
    maps = scan["maps"]
    early = np.where(scan["brain"], maps.tmax - 3.4, np.nan)  # most of the brain 1.4 s before the AIF
    figure = draw({**scan, "maps": PerfusionMaps(maps.cbv, maps.cbf, maps.mtt, early, method="stnet",
                                                 params=maps.params)})
    assert tmax_clim(figure) == (-2, 12)
