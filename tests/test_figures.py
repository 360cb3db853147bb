"""Every figure of the report is fit for a paper: labelled axes with units, labelled colour bars, a title.

Each plotting function is drawn on small fake inputs and checked by :func:`check_figure`; the
checker itself is tested on figures that break each rule.
"""

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from stnet_lib import plotting
from stnet_lib.experiments import cohort_plots
from stnet_lib.constants import MAP_NAMES
from stnet_lib.maps import PerfusionMaps

#: Units a figure may write in brackets, as SI writes them (never upper-cased).
UNITS = {"s", "ms", "mm", "ml", "ml/100g", "ml/100g/min", "ml/100ml", "ml/100ml/min", "mM", "mM·s", "dB", "a.u.",
         "T", "%", "voxels"}
#: A label naming one of these quantities must give its unit (a bracket holding one of these).
QUANTITY_UNITS = {r"\bCBF\b": ("ml/100g/min", "ml/100ml/min"), r"\bCBV\b": ("ml/100g", "ml/100ml"),
                  r"\bMTT\b|\bTmax\b|\btime\b|\bdelay\b": ("s",), r"\bPSNR\b": ("dB",), r"\bHD95\b": ("mm",),
                  r"\bconcentration\b": ("mM",), r"\bvolume\b": ("ml",)}


def _units(text: str) -> list[str]:
    return re.findall(r"\[([^\]]*)\]", text)


def _unit_problems(text: str, where: str) -> list[str]:
    problems = [f"{where}: unknown or upper-cased unit [{unit}] in {text!r}" for unit in _units(text) if unit not in UNITS]
    for pattern, allowed in QUANTITY_UNITS.items():
        if re.search(pattern, text) and not set(_units(text)) & set(allowed):
            problems.append(f"{where}: {text!r} names a quantity without its unit ({' or '.join(allowed)})")
    return problems


def _is_colourbar(ax) -> bool:
    return getattr(ax, "_colorbar", None) is not None


def check_figure(figure) -> list[str]:
    """The rules every committed figure follows; returns what breaks them (empty: none).

    * the figure has a title (a suptitle, or the title of its only panel);
    * every colour bar has a label, and every panel with lines, bars or points (not an image) has
      an x and a y label;
    * axis and colour-bar labels that name a quantity with a unit give it in brackets, and every
      bracketed unit is one of :data:`UNITS` (as SI writes it: no "[MM]" or "[S]");
    * no text of the figure (titles, ticks, legends) holds an upper-cased unit.
    """
    problems = []
    panels = [ax for ax in figure.axes if not _is_colourbar(ax) and ax.get_visible() and ax.axison]
    suptitle = figure._suptitle.get_text() if figure._suptitle is not None else ""
    if not suptitle and not (len(panels) == 1 and panels[0].get_title()):
        problems.append("the figure has no title")
    for ax in figure.axes:
        if _is_colourbar(ax):
            label = ax._colorbar.ax.get_ylabel() or ax._colorbar.ax.get_xlabel()
            problems += ["a colour bar has no label"] if not label else _unit_problems(label, "colour bar")
            continue
        has_plot = bool(ax.lines or ax.patches or ax.collections) and not ax.images
        for axis, label in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())):
            if has_plot and not label.strip():
                problems.append(f"panel {ax.get_title()!r} has no {axis} label")
            problems += _unit_problems(label, f"{axis} label")
    texts = [t.get_text() for t in figure.findobj(plt.Text)]
    problems += [f"text {text!r}: unknown or upper-cased unit" for text in texts for unit in _units(text) if unit not in UNITS]
    return problems


def _assert_fit(figure):
    problems = check_figure(figure)
    assert not problems, "\n".join(problems)


# The checker fails the figures it should fail --------------------------------------------------


def test_the_checker_finds_each_broken_rule():
    figure, ax = plt.subplots()
    ax.plot([0, 1], [2, 3])
    ax.set_xlabel("time")
    ax.set_title("HD95 [MM]")
    image = ax.figure.add_axes([0.8, 0.1, 0.1, 0.1]).imshow(np.zeros((2, 2)))
    figure.colorbar(image)
    problems = "\n".join(check_figure(figure))
    for expected in ("no title", "no y label", "'time' names a quantity without its unit", "a colour bar has no label",
                     "[MM]"):
        assert expected in problems, problems
    fixed, ax = plt.subplots()
    ax.plot([0, 1], [2, 3])
    ax.set_xlabel("time [s]")
    ax.set_ylabel("CBF [ml/100g/min]")
    ax.set_title("one panel, titled")
    assert check_figure(fixed) == []
    ax.set_ylabel("CBF [ML/100G/MIN]")
    assert check_figure(fixed) == [
        "y label: unknown or upper-cased unit [ML/100G/MIN] in 'CBF [ML/100G/MIN]'",
        "y label: 'CBF [ML/100G/MIN]' names a quantity without its unit (ml/100g/min or ml/100ml/min)",
        "text 'CBF [ML/100G/MIN]': unknown or upper-cased unit"]


# Fake inputs ---------------------------------------------------------------------------------

SHAPE = (8, 7, 3)


def _maps(rng, scale=1.0) -> dict:
    return {"cbv": scale * rng.uniform(1, 6, SHAPE), "cbf": scale * rng.uniform(10, 70, SHAPE),
            "mtt": rng.uniform(2, 8, SHAPE), "tmax": rng.uniform(0, 12, SHAPE)}


def _results(methods=("stnet", "ttv", "osvd")) -> pd.DataFrame:
    """Per-subject metric values in the long form of :data:`stnet_lib.evaluation.RESULT_COLUMNS`."""
    rng = np.random.default_rng(0)
    rows = [{"subject_id": f"sub-{s}", "method": m, "map": name, "region": region, "metric": metric,
             "value": rng.uniform(0.5, 1.0)}
            for s in range(4) for m in methods for name in ("cbv", "cbf", "tmax") for region in ("WB", "HP")
            for metric in ("psnr", "ssim", "pcc", "scc", "nrmse")]
    rows += [{"subject_id": f"sub-{s}", "method": m, "map": "tmax", "region": "WB", "metric": metric,
              "value": rng.uniform(0.5, 1.0)} for s in range(4) for m in methods for metric in ("auc", "dice", "iou", "hd95_mm")]
    return pd.DataFrame(rows)


def _ablation_summary() -> pd.DataFrame:
    rows = [{"axis": axis, "value": value, "map": name, "metric": metric, "mean": 0.8, "std": 0.05}
            for axis, values in (("stride", (1, 3)), ("ratio", (1.0, 2.0)), ("lr", (1e-4, 1e-3)), ("physics_weight", (0.0, 0.1)))
            for value in values for name in ("cbv", "cbf", "tmax") for metric in ("ssim", "psnr", "pcc")]
    rows += [{"axis": "outputs", "value": value, "map": name, "metric": metric, "mean": 0.7, "std": 0.1}
             for value in ("three outputs", "one output") for name in ("cbv", "cbf", "tmax") for metric in ("ssim", "psnr", "pcc")]
    return pd.DataFrame(rows)


def _figures():
    """(name, callable → Figure) for every plotting function of the report and the explore notebook."""
    rng = np.random.default_rng(1)
    reference, estimate = _maps(rng), _maps(rng, 1.1)
    perfusion = {label: PerfusionMaps(**maps, method=label) for label, maps in (("reference", reference), ("oSVD", estimate))}
    brain = np.ones(SHAPE, bool)
    time_s = np.arange(20) * 1.5
    timing = pd.DataFrame({"method": ["stnet", "ttv", "osvd"], "device": "CPU test, 2 threads of 2 cores",
                           "seconds_per_10k_voxels": [2.0, 0.5, 0.02], "paper_seconds_per_10k_voxels": [0.77, 6.9, np.nan]})
    noise = pd.DataFrame([{"snr": snr, "method": m, "cbf_rmse": 10.0 + i, "noise_cbf_rmse": 3.0 + i, "tmax_mae_s": 1.0}
                          for snr in (20.0, 10.0, 5.0) for i, m in enumerate(("ssvd", "csvd", "osvd", "ttv"))])
    osipi = pd.DataFrame({"method": ["ssvd", "ssvd", "osvd", "osvd"], "cbf_ref": [10.0, 60.0] * 2,
                          "cbf": [9.0, 55.0, 11.0, 58.0], "cbv_ref": [2.0, 4.0] * 2, "cbv": [2.1, 3.9, 1.9, 4.2]})
    curve = pd.DataFrame({"epoch": np.arange(5), "train_loss": np.linspace(1, 0.2, 5), "val_loss": np.linspace(1.1, 0.3, 5),
                          "train_physics": np.linspace(0.5, 0.1, 5), "val_physics": np.linspace(0.6, 0.2, 5)})
    curves = {"AIF": np.sin(time_s / 10) ** 2, "brain mean": 0.1 * np.sin(time_s / 12) ** 2}
    return {
        "map_grid": lambda: plotting.plot_map_grid(perfusion, title="Maps of sub-001 (fake)"),
        "curves": lambda: plotting.plot_curves(time_s, curves, title="sub-001 (fake): vessels"),
        "residual_grid": lambda: plotting.plot_residual_grid(reference, {"ST-Net": estimate}),
        "hypoperfusion": lambda: plotting.plot_hypoperfusion({"reference": reference["tmax"], "ST-Net": estimate["tmax"]}, brain),
        "method_comparison": lambda: plotting.plot_method_comparison(reference, {"oSVD": estimate}, "cbf"),
        "voxel_explorer": lambda: plotting.plot_voxel_explorer(reference["tmax"], lambda v: curves, (3, 3, 1), time_s=time_s),
        "metric_boxes": lambda: plotting.plot_metric_boxes(_results(), metrics=("psnr", "ssim"), methods=("stnet", "ttv", "osvd")),
        "segmentation_boxes": lambda: plotting.plot_segmentation_boxes(_results(), methods=("stnet", "ttv", "osvd")),
        "learning_curve": lambda: plotting.plot_learning_curve(curve),
        "ablation": lambda: plotting.plot_ablation(_ablation_summary()[lambda t: t["axis"].isin(["stride", "lr"])]),
        "output_ablation": lambda: plotting.plot_output_ablation(_ablation_summary()),
        "timing": lambda: plotting.plot_timing(timing),
        "noise_study": lambda: plotting.plot_noise_study(noise),
        "osipi": lambda: plotting.plot_osipi(osipi),
        "osipi_tmax_by_delay": lambda: plotting.plot_tmax_by_delay(pd.DataFrame(
            {"method": ["stnet"] * 3 + ["osvd"] * 3, "truth_s": [0.0, -1.0, -2.0] * 2,
             "median_tmax_s": [0.2, -0.8, -1.8, 1.4, 0.5, -0.6], "median_abs_error_s": 0.2, "cases": 14})),
        "cohort_subject": lambda: cohort_plots.plot_subject(_fake_subject(rng)),
        "cohort_region_curves": lambda: cohort_plots.plot_region_curves(_fake_region_curves(time_s)),
        "cohort_distributions": lambda: cohort_plots.plot_cohort_distributions(_fake_cohort_manifest(rng)),
        "bland_altman": lambda: _fake_bland_altman(rng),
    }


def _fake_bland_altman(rng):
    from stnet_lib.experiments.volumes import QUANTITIES, volume_agreement
    from stnet_lib.plotting.results import plot_bland_altman

    rows = [{"subject_id": f"sub-{s}", "method": m, "quantity": q, "truth": t, "estimate": t * rng.uniform(0.7, 1.3)}
            for s in range(6) for m in ("stnet", "osvd") for q, t in zip(QUANTITIES, rng.uniform(5, 80, 2).tolist()
                                                                            + [rng.uniform(0.2, 0.8)])]
    volumes = pd.DataFrame(rows).assign(mean=lambda t: (t["estimate"] + t["truth"]) / 2,
                                        difference=lambda t: t["estimate"] - t["truth"])
    return plot_bland_altman(volumes, volume_agreement(volumes), methods=("stnet", "osvd"),
                             title="Hypoperfusion volumes of 6 fake subjects against the truth")


def _fake_subject(rng) -> dict:
    subject = {name: rng.uniform(0, 1, SHAPE) for name in ("pgm", "pwm", "pcsf", "delay")} | _maps(rng)
    subject["dsc"] = rng.uniform(100, 500, SHAPE + (20,))
    for name in ("brain_mask", "lesion_mask", "core_mask", "aif_mask", "vof_mask"):
        subject[name] = np.zeros(SHAPE, bool)
    subject["brain_mask"][:] = True
    subject["lesion_mask"][2:5, 2:5] = True
    subject["core_mask"][3, 3] = True
    subject["aif_mask"][1, 1] = True
    return subject


def _fake_region_curves(time_s) -> pd.DataFrame:
    return pd.concat([pd.DataFrame({"region": region, "time_s": time_s, "relative_signal": 1 - 0.1 * k * np.sin(time_s / 9),
                                    "concentration_mM": k * np.sin(time_s / 9) ** 2})
                      for k, region in enumerate(("AIF", "GM", "core", "true C_a"), start=1)], ignore_index=True)


def _fake_cohort_manifest(rng) -> pd.DataFrame:
    n = 6
    return pd.DataFrame({"has_lesion": [True, False] * 3, "hypoperfusion_ml": rng.uniform(10, 80, n),
                         "core_ml": rng.uniform(1, 10, n), "snr": rng.uniform(20, 60, n),
                         "snr_measured": rng.uniform(20, 60, n), "gm_drop": rng.uniform(0.3, 0.5, n),
                         "gm_cbf": rng.uniform(50, 70, n), "gm_cbv": rng.uniform(4, 5, n),
                         "wm_cbf": rng.uniform(20, 30, n), "wm_cbv": rng.uniform(2, 3, n)})


@pytest.mark.parametrize("name", list(_figures()))
def test_every_figure_is_labelled_for_a_paper(name):
    figure = _figures()[name]()
    _assert_fit(figure)
    assert any(ax.has_data() for ax in figure.axes), name


def test_timing_puts_the_papers_gpu_and_our_device_in_separate_panels():
    timing = pd.DataFrame({"method": ["stnet", "ttv", "osvd"], "device": "CPU test, 2 threads of 2 cores",
                           "seconds_per_10k_voxels": [2.0, 0.5, 0.02], "paper_seconds_per_10k_voxels": [0.77, 6.9, np.nan]})
    ours, paper = plotting.plot_timing(timing, labels={"stnet": "ST-Net"}).axes
    assert "measured" in ours.get_title() and "CPU test, 2 threads of 2 cores" in ours.get_title()
    assert "reported" in paper.get_title() and "A100" in paper.get_title()
    assert [p.get_height() for p in ours.patches] == [2.0, 0.5, 0.02]
    assert [p.get_height() for p in paper.patches] == [0.77, 6.9]  # no bar where the paper gives no time
    assert [t.get_text() for t in ours.get_xticklabels()] == ["ST-Net", "ttv", "osvd"]


def test_segmentation_metrics_are_named_with_their_units_as_written():
    figure = plotting.plot_segmentation_boxes(_results(), methods=("stnet", "osvd"))
    assert [ax.get_ylabel() for ax in figure.axes] == ["AUC", "Dice", "IoU", "HD95 [mm]"]


def test_a_map_grid_can_show_tmax_below_zero():
    rng = np.random.default_rng(2)
    maps = {"ST-Net": PerfusionMaps(**_maps(rng), method="stnet")}
    default, wide = (plotting.plot_map_grid(maps, ranges=ranges) for ranges in (None, {"tmax": (-4, 8)}))
    tmax_panel = list(MAP_NAMES).index("tmax")
    assert default.axes[tmax_panel].images[0].get_clim() == (0, 12)  # the clinical viewers' range
    assert wide.axes[tmax_panel].images[0].get_clim() == (-4, 8)
    assert wide.axes[0].images[0].get_clim() == default.axes[0].images[0].get_clim()  # CBV as it was
