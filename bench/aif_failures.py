"""Automatic AIF (issue #14): why subjects fail — the chosen voxels against the simulation's own.

For subjects of ``bench/automatic_aif.py``'s cohort, prepares each scan once (cached under ``--cache``),
then for the automatic AIF prints the CBF ratio (oSVD brain median, automatic / true arterial mask, no
VOF), the chosen voxels' kinds (true AIF voxel, large/pial artery, vein, tissue) with their blood
fractions, how many are saturated, and the first-pass ΔR2* area of the mean curve against the true
mask's (decision 0050, "Background and the mean of ten", reads these rows).

    python bench/aif_failures.py [--seed 800] [--subjects 80] [--cache /tmp/aifcache]
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import nibabel as nib
import numpy as np

from automatic_aif import subject_scans
from stnet_lib.aif import ArterialSearch, find_arterial_masks
from stnet_lib.curves import prepare_curves
from stnet_lib.io import Scan
from stnet_lib.masking import search_region
from stnet_lib.pipeline import compute_maps


def cached_subject(seed: int, has_lesion: bool, cache: str) -> dict:
    """The prepared scan (aligned, non-steady frames dropped), its masks and the true mask's CBF median."""
    path = os.path.join(cache, f"{seed}_{int(has_lesion)}.npz")
    if os.path.exists(path):
        return dict(np.load(path))
    scans, subject = subject_scans("quick", seed, has_lesion)
    prepared = prepare_curves(scans["true"])
    true = compute_maps(scans["true"], "osvd")
    brain = scans["auto"].brain_mask & np.isfinite(true.cbf)
    label = subject.masks["vessel"]
    out = dict(signal=prepared.scan.signal.astype(np.float32),
               baseline=np.array([prepared.baseline.start, prepared.baseline.stop]), brain=scans["auto"].brain_mask,
               cbf_brain=brain, aif=subject.masks["aif"], vof=subject.masks["vof"], label=label,
               vessel_fraction=subject.tissue["vessel"], affine=subject.affine,
               acq=np.array([subject.te_ms, subject.tr_s, subject.field_t]), reference=np.nanmedian(true.cbf[brain]),
               aif_f=np.array(subject.params["vessel_partial_volume"]["aif"]))
    np.savez(path, **out)
    return out


def scan_of(d: dict, aif_mask) -> Scan:
    te, tr, field = d["acq"]
    return Scan(d["signal"], d["affine"], nib.Nifti1Header(), float(te), float(tr), aif_mask, d["brain"],
                field_t=float(field))


def ratio_of(d: dict, aif_mask) -> float:
    maps = compute_maps(scan_of(d, aif_mask), "osvd", baseline=slice(*d["baseline"]))
    return float(np.nanmedian(maps.cbf[d["cbf_brain"]]) / d["reference"])


def select(d: dict, config: ArterialSearch = ArterialSearch()):
    te, tr, _ = d["acq"]
    return find_arterial_masks(d["signal"], search_region(d["brain"]), slice(*d["baseline"]), te_ms=float(te),
                               tr_s=float(tr), find_vof=False, config=config)


def curve_features(d: dict, mask) -> tuple[float, float, float, float]:
    """Of the mask's mean signal: ΔR2* area, peak, half-max arrival [frames] and full width at half maximum [frames]."""
    te = float(d["acq"][0])
    b = slice(*d["baseline"])
    s = d["signal"][mask].mean(axis=0).astype(np.float64)
    r = -np.log(np.clip(s / s[b].mean(), 1e-3, None)) / (te / 1000)
    w = r[max(b.stop - 1, 0):]
    peak = int(np.argmax(w))
    above = np.flatnonzero(w >= 0.5 * w[peak])
    first_pass = w[: max(2, int(np.ceil(15 / d["acq"][1])))]
    return float(np.trapezoid(first_pass)), float(w[peak]), float(above[0]), float(above[-1] - above[0] + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=800)
    parser.add_argument("--subjects", type=int, default=80)
    parser.add_argument("--cache", default="/tmp/aifcache")
    args = parser.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    for i in range(args.subjects):
        d = cached_subject(args.seed + i, i % 4 != 3, args.cache)
        sel = select(d)
        m = sel.aif_mask
        r = ratio_of(d, m)
        kinds = np.where(d["aif"][m], "A", np.where(d["vof"][m], "V",
                                                     np.where(d["label"][m] == 1, "a", np.where(d["label"][m] == 2, "v", "t"))))
        fr = np.round(d["vessel_fraction"][m], 2).tolist()
        fa, ft = curve_features(d, m), curve_features(d, d["aif"])
        print(f"{args.seed + i} ratio {r:.3f} {'FAIL' if abs(r - 1) > 0.15 else 'ok  '} n {m.sum()} "
              f"kinds {''.join(kinds)} frac {fr} trueF {np.round(d['aif_f'], 2).tolist()} "
              f"area {fa[0] / ft[0]:.2f} peak {fa[1] / ft[1]:.2f} arr {fa[2] - ft[2]:+.0f} fwhm {fa[3]:.0f}/{ft[3]:.0f} "
              f"sat {sel.record['aif_saturated_voxels']} te {d['acq'][0]:.0f} B0 {d['acq'][2]}", flush=True)


if __name__ == "__main__":
    main()
