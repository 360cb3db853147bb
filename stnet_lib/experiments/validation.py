"""External validation, a study: OSIPI's DSC digital reference object and a real DSC slice.

(The input checks are :mod:`stnet_lib._validation`.)

* OSIPI DSC DRO (``osipi_dsc/dsc_data.csv``, Apache-2.0; Chakwizira et al., MAGMA 2022): 14
  noise-free-ish tissue/arterial concentration pairs with known CBV and CBF; OSIPI's pass rule
  |CBV − ref| ≤ 1 + 0.1·ref and |CBF − ref| ≤ 15 + 0.1·ref, with k_H = ρ = 1.
* A real DSC slice (``real_dsc/moyamoya_cerebellum_dsc.nii.gz``, MIT; Huang et al., Sci Rep
  2021): no reference, so the check is that the maps are finite and physiological. Its TE is not
  recorded; ``TYPICAL_TE_MS`` is used and said so. No AIF is drawn: the automatic AIF/VOF of
  :mod:`stnet_lib.aif` is used, as on a user's own scan (issue #14).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from ..constants import K_H, RHO_G_PER_ML
from ..curves import prepare_curves
from ..curve_qc import arterial_qc_figure
from ..deconvolution import METHODS, deconvolve
from ..io import Scan, load_scan
from ..maps import cbv_eq4
from ..metrics.correlation import pcc, scc
from ..paths import SHARED_DATA_DIR
from ..pipeline import compute_maps, scan_concentrations
from ..signal import concentration_to_delta_r2, delta_r2_to_signal
from .implied_tmax import cohort_offsets, corrected_readings, osipi_implied_tmax, tmax_consistency

__all__ = ["OSIPI_CSV", "REAL_DSC", "TYPICAL_TE_MS", "PHYSIOLOGICAL_RANGES", "OSIPI_SIGNAL", "osipi_results",
           "osipi_case_scan", "osipi_signal_results", "real_scan", "real_scan_summary",
           "real_scan_aif_figure", "real_scan_sentence", "real_scan_agreement", "area_ratio_cbv",
           "span_read_s", "eq4_window_ceiling", "generalisation_table", "OSIPI_TMAX_S",
           "alignment_sentence", "osipi_tmax_sentence", "OSIPI_AIF_DELAYS_S", "osipi_tmax_by_delay",
           "osipi_tmax_by_delay_summary", "real_scan_tmax_consistency", "osipi_implied_tmax_summary",
           "tmax_consistency_sentence", "real_scan_tmax_readings"]

OSIPI_CSV = SHARED_DATA_DIR / "osipi_dsc" / "dsc_data.csv"
REAL_DSC = SHARED_DATA_DIR / "real_dsc" / "moyamoya_cerebellum_dsc.nii.gz"
#: TE of the real slice is not recorded: 30 ms is typical of 3 T DSC (Boxerman et al. 2020).
TYPICAL_TE_MS = 30.0
#: Brain-median ranges taken as physiological for an adult grey/white-matter mixture.
PHYSIOLOGICAL_RANGES = {"cbv": (1.0, 10.0), "cbf": (10.0, 100.0), "mtt": (2.0, 15.0), "tmax": (0.0, 6.0)}


def osipi_results(methods, csv_path: Path = OSIPI_CSV, **options) -> pd.DataFrame:
    """One row per DRO case × method: reference and estimated CBV/CBF, errors, OSIPI pass flags.

    A spatial method (TTV) gets each case as a 1×1×1 volume, where its spatial term is idle.
    """
    rows = []
    for case, c_tissue, c_aif in _osipi_cases(csv_path):
        for method in methods:
            curves = c_tissue.reshape(1, 1, 1, -1) if METHODS[method].spatial else c_tissue
            maps = deconvolve(curves, c_aif, case.tr, method, kh=1.0, rho=1.0, keep_residue=False, **options.get(method, {}))
            rows.append(_osipi_row(case, method, *(float(getattr(maps, name).ravel()[0]) for name in ("cbv", "cbf", "tmax"))))
    return pd.DataFrame(rows)


def _osipi_cases(csv_path: Path):
    """Each DRO case (a row of the CSV) with its tissue and arterial concentration curves."""
    for case in pd.read_csv(csv_path).itertuples():
        yield case, *(np.array(text.split(), dtype=float) for text in (case.C_tis, case.C_aif))


def _osipi_row(case, method: str, cbv: float, cbf: float, tmax: float) -> dict:
    """One result row with OSIPI's pass rule: |CBV − ref| ≤ 1 + 0.1·ref, |CBF − ref| ≤ 15 + 0.1·ref,
    and the Tmax [s], whose truth is 0 (:data:`OSIPI_TMAX_S`)."""
    return {"case": case.label, "method": method, "cbv_ref": case.cbv, "cbv": cbv, "cbf_ref": case.cbf, "cbf": cbf,
            "cbv_pass": abs(cbv - case.cbv) <= 1 + 0.1 * case.cbv, "cbf_pass": abs(cbf - case.cbf) <= 15 + 0.1 * case.cbf,
            "tmax": tmax}


#: OSIPI's Tmax truth [s]: every case is "delay0_dispersion0", and its residue (a transit-time distribution's
#: survival function, 1 at t = 0) peaks at t = 0.
OSIPI_TMAX_S = 0.0


#: The series each OSIPI case becomes for a method that reads signals (ST-Net): TE [ms], field [T], S0.
OSIPI_SIGNAL = {"te_ms": 30.0, "field_t": 3.0, "s0": 1000.0}


def osipi_case_scan(c_tissue_mM: np.ndarray, c_aif_mM: np.ndarray, tr_s: float, *, size: int = 9) -> Scan:
    """One OSIPI case as a DSC series: a ``size``×``size`` slab of the tissue curve (a uniform patch
    for every voxel ST-Net reads) beside a 2-voxel-wide arterial column, through eq. 2 forward
    (tissue linear, arterial blood quadratic, at :data:`OSIPI_SIGNAL`'s field) and eq. 1 forward."""
    te_ms, field_t, s0 = OSIPI_SIGNAL["te_ms"], OSIPI_SIGNAL["field_t"], OSIPI_SIGNAL["s0"]
    n_frames = len(c_tissue_mM)
    delta_r2 = np.zeros((size, size + 3, 1, n_frames))
    delta_r2[:, :size, 0] = concentration_to_delta_r2(c_tissue_mM, kind="tissue", field_t=field_t)
    delta_r2[:, size + 1:, 0] = concentration_to_delta_r2(c_aif_mM, kind="arterial", field_t=field_t)
    signal = delta_r2_to_signal(delta_r2, np.full(delta_r2.shape[:3], s0), te_ms).astype(np.float32)
    brain, aif = np.zeros(signal.shape[:3], bool), np.zeros(signal.shape[:3], bool)
    brain[:, :size], aif[:, size + 1:] = True, True
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    return Scan(signal, affine, None, te_ms, float(tr_s), aif, brain, field_t=field_t)


def _slab_centre(scan: Scan) -> tuple[int, int, int]:
    """The middle voxel of :func:`osipi_case_scan`'s uniform tissue slab (its patch is all tissue)."""
    return scan.brain_mask.shape[0] // 2, scan.brain_mask.shape[0] // 2, 0


def osipi_signal_results(methods, csv_path: Path = OSIPI_CSV, **options) -> pd.DataFrame:
    """:func:`osipi_results` for methods that read a series (ST-Net; any method through the signal path).

    Each case becomes :func:`osipi_case_scan`; the maps go through :func:`stnet_lib.pipeline.compute_maps`
    and the slab's central voxel is compared. A method trained on our convention (ST-Net:
    k_H = 0.73, ρ = 1.04 in its targets) is brought to OSIPI's k_H = ρ = 1 by ρ/k_H; the
    deconvolution methods are run with k_H = ρ = 1 directly. ``options[method]``: its options
    (``"stnet"`` needs ``checkpoint``).
    """
    rows = []
    for case, c_tissue, c_aif in _osipi_cases(csv_path):
        scan = osipi_case_scan(c_tissue, c_aif, case.tr)
        centre = _slab_centre(scan)
        for method in methods:
            if method == "stnet":
                maps, scale = compute_maps(scan, method, **options.get(method, {})), RHO_G_PER_ML / K_H
            else:
                maps, scale = compute_maps(scan, method, kh=1.0, rho=1.0, **options.get(method, {})), 1.0
            rows.append(_osipi_row(case, method, float(maps.cbv[centre]) * scale, float(maps.cbf[centre]) * scale,
                                   float(maps.tmax[centre])))
    return pd.DataFrame(rows)


#: Delays [s] by which :func:`osipi_tmax_by_delay` moves each OSIPI case's AIF later (truth Tmax = −delay).
OSIPI_AIF_DELAYS_S = (0.0, 1.0, 2.0, 3.0)


def osipi_tmax_by_delay(methods, delays_s=OSIPI_AIF_DELAYS_S, csv_path: Path = OSIPI_CSV, **options) -> pd.DataFrame:
    """Tmax on OSIPI's cases with their AIF moved later by each delay: tissue that leads its AIF, with a truth.

    Every OSIPI case has no delay and no dispersion (Tmax 0 s). Its arterial concentration moved
    ``delay`` later (linear interpolation, zero before the start) makes the tissue peak ``delay`` before
    the AIF: the true Tmax is −delay, the situation of the real slice's automatic AIF (decision 0079).
    Each case goes through :func:`osipi_case_scan` and :func:`stnet_lib.pipeline.compute_maps`;
    ``options[method]`` are a method's options. One row per case × delay × method (``tmax`` of the
    slab's middle voxel, ``truth_s``, ``error_s``).
    """
    rows = []
    for case, c_tissue, c_aif in _osipi_cases(csv_path):
        time_s = np.arange(len(c_aif)) * case.tr
        for delay in delays_s:
            scan = osipi_case_scan(c_tissue, np.interp(time_s - delay, time_s, c_aif, left=0.0), case.tr)
            centre = _slab_centre(scan)
            for method in methods:
                tmax = float(compute_maps(scan, method, **options.get(method, {})).tmax[centre])
                rows.append({"case": case.label, "method": method, "delay_s": float(delay), "truth_s": 0.0 - float(delay),
                             "tmax": tmax, "error_s": tmax + float(delay)})
    return pd.DataFrame(rows)


def osipi_tmax_by_delay_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per method and AIF delay: the median Tmax and the median |error| over OSIPI's cases [s]."""
    grouped = table.assign(abs_error_s=table["error_s"].abs()).groupby(["method", "truth_s"], sort=False)
    return grouped.agg(median_tmax_s=("tmax", "median"), median_abs_error_s=("abs_error_s", "median"),
                       cases=("tmax", "size")).reset_index()


def real_scan(path: Path = REAL_DSC, te_ms: float = TYPICAL_TE_MS) -> Scan:
    """The real slice as ``stnet maps`` reads it: no AIF drawn, brain mask from the series.

    :func:`real_scan_summary` then maps it through :func:`stnet_lib.pipeline.compute_maps`, which
    drops the non-steady first frame and finds the AIF and VOF automatically (:mod:`stnet_lib.aif`),
    the path a user's own scan takes.
    """
    return load_scan(path, te_ms=te_ms, given_as="TE of the validation study (not recorded)")


def real_scan_summary(scan: Scan, methods, **options) -> tuple[pd.DataFrame, dict]:
    """Brain medians (and interquartile ranges) of every method's maps, with the physiological check.

    The scan is prepared once (:func:`stnet_lib.curves.prepare_curves`), so every method gets the
    same frames and the same automatically found AIF (and VOF); ``options[method]`` are its
    options for :func:`stnet_lib.pipeline.compute_maps` (``"stnet"`` needs ``checkpoint``).
    Returns the table and the maps per method (their ``params`` record the AIF found).
    """
    rows, all_maps = [], {}
    brain = scan.brain_mask
    prepared = prepare_curves(scan)  # one preparation, one automatic AIF, for every method
    for method in methods:
        maps = compute_maps(prepared, method, **options.get(method, {}))
        all_maps[method] = maps
        for name, (low, high) in PHYSIOLOGICAL_RANGES.items():
            values = getattr(maps, name)[brain]
            q25, median, q75 = np.nanpercentile(values, [25, 50, 75])
            rows.append({"method": method, "map": name, "median": median, "q25": q25, "q75": q75,
                         "finite_fraction": float(np.isfinite(values).mean()), "range": f"{low:g}–{high:g}",
                         "physiological": bool(low <= median <= high)})
    return pd.DataFrame(rows), all_maps


def real_scan_aif_figure(scan: Scan, maps):
    """Where the automatic AIF (and VOF) of the real slice are, and their curves beside the brain's."""
    volumes = maps.extra_volumes
    vof = volumes.get("vof_mask")
    return arterial_qc_figure(scan.signal.mean(axis=-1, dtype=np.float64), volumes["aif_mask"] > 0,
                              None if vof is None else vof > 0, maps.params,
                              title=f"Automatic AIF and VOF of the real DSC slice {Path(scan.path).name}")


def real_scan_sentence(maps) -> str:
    """One sentence for the report: the AIF and VOF found, the frames dropped, the baseline."""
    params = maps.params
    search, first, last = params["aif_search"], *params["baseline_frames"]
    vof = params.get("vof") or {}
    return (f"AIF found automatically ({search['method']}): {params['aif']['voxels']} voxels, first moment at frame "
            f"{search['aif_first_moment_frames']:.1f}; VOF {vof.get('voxels', 0)} voxels"
            f"{'' if vof.get('used') else ' (not used)'}. Frames dropped before steady state: "
            f"{params.get('frames_dropped', 0)}; baseline frames {first}–{last - 1} of the prepared series.")


def alignment_sentence(maps) -> str:
    """One sentence for the report: how far ST-Net moved the arterial curve (decision 0079); "" for other maps."""
    params = maps.params
    if "aif_advance_s" not in params:
        return ""
    lag, reference, advance = params["arrival_lag_s"], params.get("arrival_lag_reference_s"), params["aif_advance_s"]
    alignment, wanted = params.get("aif_alignment", "on"), params.get("aif_advance_wanted_s", advance)
    if alignment != "on":
        return f"ST-Net read the AIF as found (alignment {alignment})."
    if lag is None:
        return "ST-Net read the AIF as found: the brain's mean curve has no rise to time."
    timing = (f"the brain's mean rises {lag:.2f} s after the AIF found, against {reference:.2f} s in its training "
              "subjects (median; `docs/decisions/0079-aif-alignment.md`)")
    if advance == 0 and wanted == 0:
        return f"ST-Net read the AIF as found: {timing}."
    limit = f" ({wanted:g} s wanted, limited by the AIF's own rise or the tail training held)" if wanted > advance else ""
    return f"ST-Net read the AIF {advance:g} s earlier{limit} and took {advance:g} s off its Tmax: {timing}."


def osipi_tmax_sentence(osipi: pd.DataFrame) -> str:
    """One sentence for the report: each method's median |Tmax| on OSIPI's cases, whose truth is 0 s."""
    error = osipi.assign(error=(osipi["tmax"] - OSIPI_TMAX_S).abs()).groupby("method", sort=False)["error"].median()
    return ("Tmax: every case has no delay and no dispersion, so its truth is 0 s; median |Tmax| over the cases: "
            + ", ".join(f"{method} {value:.2f} s" for method, value in error.items()) + ".")


def area_ratio_cbv(scan: Scan, found, span_s: float | None = None) -> np.ndarray:
    """Eq. 4's CBV [ml/100g] of every brain voxel (NaN outside), from the AIF that ``found`` (a
    method's PerfusionMaps) located and the scan's own VOF, as the maps (an automatically found VOF
    is not applied, decision 0075): the CBV that needs no deconvolution and no network.

    ``span_s``: integrate only the prepared frames at times k·TR ≤ ``span_s`` [s] (the non-steady
    frames already dropped), the part of the series a method with a fixed time grid reads
    (:func:`span_read_s`); None: the whole series."""
    return _eq4_cbv(scan, _found_concentrations(scan, found), span_s)


def real_scan_tmax_consistency(scan: Scan, maps: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each method's Tmax on the real slice beside the Tmax its own MTT implies (:mod:`.implied_tmax`,
    decision 0082), with the AIF every method used (``maps["osvd"]``'s); and the brain mean's trade-off."""
    conc = _found_concentrations(scan, maps["osvd"])
    return tmax_consistency(conc.c_tissue, conc.c_aif, scan.tr_s, scan.brain_mask, maps)


def osipi_implied_tmax_summary(csv_path: Path = OSIPI_CSV, delays_s=(0.0, 1.0, 2.0, 3.0)) -> pd.DataFrame:
    """The implied-Tmax check's error on OSIPI's cases at their true MTT, per true Tmax [s]: median, min, max."""
    table = osipi_implied_tmax(_osipi_cases(csv_path), delays_s)
    return (table.groupby("truth_s", sort=False)["error_s"]
            .agg(median_error_s="median", min_error_s="min", max_error_s="max", cases="size").reset_index())


def real_scan_tmax_readings(consistency: pd.DataFrame, manifest_path, methods: dict, n_subjects: int = 40) -> pd.DataFrame:
    """The real slice's brain-median Tmax relative to its automatic AIF, read two ways per method and corrected
    by what each method and the check gave on the cohort's first ``n_subjects`` physiological test subjects,
    whose Tmax is known (:func:`.implied_tmax.cohort_offsets`, :func:`.implied_tmax.corrected_readings`).
    ``methods``: method → :func:`stnet_lib.pipeline.compute_maps` options, for methods in ``consistency``."""
    from ..manifest import load_manifest

    offsets = cohort_offsets(load_manifest(manifest_path), methods, n_subjects=n_subjects)
    return corrected_readings(consistency, offsets)


def tmax_consistency_sentence(consistency: pd.DataFrame, osipi_check: pd.DataFrame | None = None,
                              readings: pd.DataFrame | None = None) -> str:
    """Sentences for the report: the Tmax the curves imply at each method's MTT, how much later each reads,
    the check's error on OSIPI, and (``readings``, :func:`real_scan_tmax_readings`) the corrected readings."""
    table = consistency.set_index("method")
    later = ", ".join(f"{method} {row.difference_s:+.2f} s" for method, row in table.iterrows())
    text = (f"At each method's own MTT the curves imply a brain-median Tmax of {table['implied_tmax_median_s'].min():.2f} "
            f"to {table['implied_tmax_median_s'].max():.2f} s (`docs/decisions/0082-tmax-implied-by-mtt.md`); each "
            f"method's median Tmax minus the Tmax implied at its own MTT: {later}.")
    if osipi_check is not None:
        low, high = osipi_check["min_error_s"].min(), osipi_check["max_error_s"].max()
        timing = (f"{-high:.2f}–{-low:.2f} s early" if high < 0 else f"{low:+.2f} to {high:+.2f} s from the truth")
        text += (f" On OSIPI's {int(osipi_check['cases'].max())} cases, at their true MTT and Tmax 0 to "
                 f"{osipi_check['truth_s'].min():g} s, the check reads {timing} (implied − true; their residue is "
                 "not exponential).")
    if readings is not None and len(readings):
        values = readings[["tmax_less_its_bias_s", "implied_less_its_offset_s"]].to_numpy()
        bias = ", ".join(f"{row.method} {row.tmax_bias_s:+.2f} s" for row in readings.itertuples())
        text += (f" On {int(readings['subjects'].min())} synthetic test subjects with their true arterial mask, whose "
                 f"Tmax is known, each method's brain-median Tmax minus the truth was {bias}. Each method's Tmax less "
                 f"that bias, and the Tmax implied at its MTT less the check's offset there, put this slice's "
                 f"brain-median Tmax relative to its automatic AIF at {np.nanmin(values):.2f} to {np.nanmax(values):.2f} s "
                 f"(`validation_real_dsc_tmax_readings.csv`).")
    return text


def _found_concentrations(scan: Scan, found):
    """The scan's concentrations with the AIF that ``found`` located (eq. 1–2; once for every span)."""
    return scan_concentrations(dataclasses.replace(scan, aif_mask=found.extra_volumes["aif_mask"] > 0))


def _eq4_cbv(scan: Scan, conc, span_s: float | None = None) -> np.ndarray:
    """:func:`area_ratio_cbv` from concentrations already computed."""
    frames = slice(None) if span_s is None else slice(0, int(np.floor(span_s / scan.tr_s + 1e-6)) + 1)
    cbv = np.full(scan.brain_mask.shape, np.nan)
    cbv[scan.brain_mask] = cbv_eq4(conc.c_tissue[:, frames], conc.c_aif[frames], scan.tr_s, k_av=conc.k_av)
    return cbv


def span_read_s(maps) -> float | None:
    """The span [s] of the prepared series that produced ``maps``: ST-Net's time grid,
    (n_frames − 1)·dt_s, where it is shorter than the scan; None where the method read every frame
    (the deconvolution methods, and a network whose grid reaches past the scan's end)."""
    params = maps.params
    if "dt_s" not in params or "n_frames" not in params:
        return None
    grid_s = (params["n_frames"] - 1) * params["dt_s"]
    scan_s = (params["scan_frames"] - 1) * params["scan_tr_s"]
    return grid_s if grid_s < scan_s else None


def eq4_window_ceiling(scan: Scan, found, span_s: float) -> float:
    """Pearson r over the brain between eq. 4's CBV over the first ``span_s`` [s] of the prepared
    series and over all of it (AIF of ``found``): what any method that reads only that window can
    reach against the whole series' eq. 4 (the later recirculation differs between voxels)."""
    conc = _found_concentrations(scan, found)
    return pcc(_eq4_cbv(scan, conc, span_s), _eq4_cbv(scan, conc), mask=scan.brain_mask)


def real_scan_agreement(scan: Scan, maps: dict) -> pd.DataFrame:
    """The real-slice generalisation checks: each method beside the references a real scan has.

    No truth exists, so each method's maps are compared over the brain with what does not depend on
    a deconvolution or on a network: CBV with eq. 4's area ratio (Pearson r) over the whole series
    and over the frames the method read (``cbv_pearson_eq4_frames_read``: ST-Net reads its time
    grid, 58.8 s with the quick profile's weights, of the real slice's 96 s; ``span_read_s``, NaN
    for every frame), and CBF and Tmax with
    cSVD's and oSVD's in rank (Spearman r; a method's comparison with itself is left empty). Every
    map uses the AIF and VOF found for oSVD (the same for every method: :func:`real_scan_summary`).

    Parameters
    ----------
    scan : Scan
        :func:`real_scan`.
    maps : dict
        Method → PerfusionMaps of :func:`real_scan_summary` (``"osvd"`` and ``"csvd"`` among them).
    """
    brain, conc = scan.brain_mask, _found_concentrations(scan, maps["osvd"])
    area_cbv = _eq4_cbv(scan, conc)
    rows = []
    for method, m in maps.items():
        span = span_read_s(m)
        read_cbv = area_cbv if span is None else _eq4_cbv(scan, conc, span)
        row = {"method": method, "cbv_pearson_eq4": pcc(area_cbv, m.cbv, mask=brain),
               "cbv_pearson_eq4_frames_read": pcc(read_cbv, m.cbv, mask=brain),
               "span_read_s": np.nan if span is None else span}
        for reference in ("csvd", "osvd"):
            for name in ("cbf", "tmax"):
                row[f"{name}_spearman_{reference}"] = (np.nan if method == reference else
                                                      scc(getattr(maps[reference], name), getattr(m, name), mask=brain))
        rows.append(row)
    return pd.DataFrame(rows)


def generalisation_table(osipi: pd.DataFrame | None, agreement: pd.DataFrame | None, summary: pd.DataFrame | None,
                         methods=("stnet", "osvd"), consistency: pd.DataFrame | None = None) -> pd.DataFrame:
    """ST-Net beside oSVD on the data neither was made from: one row per method.

    Columns: OSIPI cases passing on CBV and on CBF (of ``osipi``, :func:`osipi_results` and
    :func:`osipi_signal_results` together) and the median |Tmax − 0| [s] over its cases (truth
    :data:`OSIPI_TMAX_S`), and on the real slice the agreement of
    :func:`real_scan_agreement` with cSVD as the rank reference, the brain medians of
    :func:`real_scan_summary`, and (``consistency``, :func:`real_scan_tmax_consistency`) the median
    Tmax minus the Tmax implied at the method's own MTT. A data set that is absent leaves its columns out.
    """
    rows = []
    for method in methods:
        row = {"method": method}
        if osipi is not None:
            cases = osipi[osipi["method"] == method]
            row.update(osipi_cbv_pass=f"{int(cases['cbv_pass'].sum())}/{len(cases)}",
                       osipi_cbf_pass=f"{int(cases['cbf_pass'].sum())}/{len(cases)}",
                       osipi_tmax_abs_error_median_s=float((cases["tmax"] - OSIPI_TMAX_S).abs().median()))
        if agreement is not None:
            found = agreement.set_index("method").loc[method]
            row.update(real_cbv_pearson_eq4=found["cbv_pearson_eq4"],
                       real_cbv_pearson_eq4_frames_read=found["cbv_pearson_eq4_frames_read"],
                       real_cbf_spearman_csvd=found["cbf_spearman_csvd"],
                       real_tmax_spearman_csvd=found["tmax_spearman_csvd"])
        if summary is not None:
            medians = summary[summary["method"] == method].set_index("map")["median"]
            row.update({f"real_median_{name}": medians[name] for name in ("cbv", "cbf", "mtt", "tmax")})
        if consistency is not None:
            row["real_tmax_minus_implied_s"] = consistency.set_index("method").loc[method, "difference_s"]
        rows.append(row)
    return pd.DataFrame(rows)
