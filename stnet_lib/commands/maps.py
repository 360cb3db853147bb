"""``stnet maps``: perfusion maps of one DSC scan (a NIfTI with its sidecar, or a DICOM folder), as NIfTI + maps.json.

Beside the maps: ``summary.json`` (hypoperfusion volumes, HIR, rCBF core: :mod:`stnet_lib.summary`),
``rcbf.nii.gz``, ``rcbv.nii.gz`` and ``qc.png`` (:mod:`stnet_lib.qc`), written all or nothing
(:func:`stnet_lib.batch.save_scan_outputs`). With ``--manifest``, every subject of a cohort
(:func:`stnet_lib.batch.map_cohort`): exit status 2 for bad input (nothing written), 1 when a
subject failed (the others are mapped; the failures are listed last), else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
from pathlib import Path

from ..batch import SUMMARY_FILES, map_cohort, save_scan_outputs
from ..constants import K_H, RHO_G_PER_ML
from ..io import MAP_FILES, load_scan
from ..leakage import LEAKAGE_METHODS
from ..pipeline import ALL_METHODS, compute_maps
from ..qc import summary_lines
from ..summary import SummaryConfig
from ..weights import shipped_checkpoint
from .._validation import StnetInputError

log = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("maps", help="CBV, CBF, MTT, Tmax maps of one DSC scan",
                                   description="Compute CBV, CBF, MTT and Tmax maps of a DSC-MRI series.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dsc", type=Path, help="4-D DSC series (x, y, z, t), NIfTI; its BIDS sidecar X.json "
                        "(EchoTime, RepetitionTime, MagneticFieldStrength, SliceTiming) is read when present")
    source.add_argument("--dicom", type=Path, help="DICOM folder of the DSC series (converted with dcm2niix)")
    source.add_argument("--manifest", type=Path, help="a cohort's data_manifest.csv: every subject (or --subject) "
                        "mapped into --out/<subject_id>/, resumably, with --out/summary.csv")
    parser.add_argument("--series", type=int, help="series number to use when --dicom holds several")
    parser.add_argument("--aif-mask", type=Path, help="arterial voxels, NIfTI on the series' grid (default: automatic)")
    parser.add_argument("--vof-mask", type=Path, help="venous-output voxels for k_AV (eq. 8); without it k_AV = 1 "
                        "(a VOF found automatically is written as vof_mask.nii.gz but not applied: pass it here to apply it)")
    parser.add_argument("--brain-mask", type=Path, help="voxels to compute (computed from the series if omitted)")
    parser.add_argument("--te-ms", type=float, help="echo time [ms] (default: the sidecar's EchoTime)")
    parser.add_argument("--tr-s", type=float, help="frame interval [s] (default: the sidecar's, else the header's)")
    parser.add_argument("--field-t", type=float, help="field strength [T] (default: the sidecar's, else 1.5 "
                        "with a warning)")
    parser.add_argument("--method", default="osvd", choices=ALL_METHODS, help="deconvolution method or stnet")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a method option, repeatable: threshold=0.15 (sSVD, cSVD), oi_threshold=0.05 (oSVD), "
                             "weight_spatial=0.03 or n_iter=150 (TTV, fields of TTVConfig)")
    parser.add_argument("--checkpoint", type=Path, help="ST-Net checkpoint (.pt), for --method stnet (default: the "
                        "trained ST-Net that ships with stnet, `stnet weights`)")
    parser.add_argument("--uncertainty", action="store_true",
                        help="with --method stnet: per-voxel SD maps cbv_sd, cbf_sd, tmax_sd (Monte-Carlo dropout, "
                             "calibrated on validation subjects; stnet_lib.network.uncertainty)")
    parser.add_argument("--no-aif-alignment", action="store_true",
                        help="with --method stnet: read the arterial curve where it is, even when the tissue arrives "
                             "with it (by default it is moved earlier into the network's trained range and Tmax "
                             "corrected by as much; stnet_lib.network.alignment)")
    parser.add_argument("--kh", type=float, default=K_H, help=f"haematocrit factor (default {K_H:.3f}; 1 for OSIPI)")
    parser.add_argument("--rho", type=float, default=RHO_G_PER_ML, help="tissue density [g/ml] (default 1.04; 1 for OSIPI)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--motion-correct", action="store_true",
                        help="register every frame rigidly onto the pre-bolus frames first (writes motion.csv, motion.png)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (with --manifest: <subject_id>/ "
                        "folders and summary.csv in it)")
    parser.add_argument("--overwrite", action="store_true", help="replace maps already in --out")
    add_summary_arguments(parser)
    cohort = parser.add_argument_group("whole cohorts (with --manifest)")
    cohort.add_argument("--jobs", type=int, default=1, help="subjects mapped at once, in separate processes")
    cohort.add_argument("--subject", help="map only this subject_id (one task of a cluster job array)")
    return parser


def add_summary_arguments(parser) -> None:
    """The summary's thresholds, the QC page and the leakage correction."""
    parser.add_argument("--tmax-thresholds", default="4,6,8,10", metavar="S,S,...",
                        help="Tmax thresholds [s] of the volumes in summary.json (default 4,6,8,10)")
    parser.add_argument("--hir-thresholds", default="10,6", metavar="HIGH,LOW",
                        help="hypoperfusion intensity ratio = vol(Tmax > HIGH)/vol(Tmax > LOW) (default 10,6)")
    parser.add_argument("--rcbf-threshold", type=float, default=0.3,
                        help="core estimate: rCBF below this fraction of the reference (default 0.3)")
    parser.add_argument("--no-qc", action="store_true", help="do not draw qc.png")
    parser.add_argument("--leakage-correction", choices=LEAKAGE_METHODS, default="none",
                        help="correct the tissue ΔR2* for contrast leakage (tumours): bsw = Boxerman–Schmainda–"
                        "Weisskoff, bidirectional = with back-flux (Leu 2016); writes k2.nii.gz [1/s] (default none)")


#: compute_maps' own keywords, which are not method options, and what to do instead.
_NOT_OPTIONS = {"kh": "use --kh", "rho": "use --rho", "device": "use --device", "checkpoint": "use --checkpoint",
                "baseline": "the pre-bolus frames are detected from the series",
                "arterial_quadratic": "the arterial conversion is fixed", "keep_residue": "residues are not written",
                "leakage_correction": "use --leakage-correction"}


def parse_options(pairs: list[str]) -> dict:
    """``["n_iter=150", "dtype=float64"]`` → ``{"n_iter": 150, "dtype": "float64"}`` (int, float, else text)."""
    options = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise StnetInputError(f"--option {pair!r} is not NAME=VALUE: write e.g. --option threshold=0.15")
        if name.strip() in _NOT_OPTIONS:
            raise StnetInputError(f"--option {name.strip()} is not a method option: {_NOT_OPTIONS[name.strip()]}")
        for kind in (int, float, str):
            try:
                options[name.strip()] = kind(text.strip())
                break
            except ValueError:
                continue
    return options


@contextlib.contextmanager
def series_path(args):
    """Yield the NIfTI series to read and its source record: ``--dsc`` as it is, or ``--dicom`` converted
    by dcm2niix into a temporary folder (removed afterwards)."""
    if args.dicom is None:
        if args.series is not None:
            raise StnetInputError("--series picks a series of a DICOM folder: use it with --dicom")
        yield args.dsc, None
        return
    from ..dicom import load_dicom_series

    with tempfile.TemporaryDirectory(prefix="stnet-dicom-") as work:
        series, nifti, _ = load_dicom_series(args.dicom, args.series, work)
        yield nifti, series.record()


def _thresholds(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise StnetInputError(f"{flag} {text!r} is not a comma-separated list of seconds: write e.g. {flag} 4,6,8,10")


def summary_config(args) -> SummaryConfig:
    """The summary's thresholds from the command line (checked by :class:`SummaryConfig`)."""
    return SummaryConfig(tmax_thresholds_s=_thresholds(args.tmax_thresholds, "--tmax-thresholds"),
                         hir_thresholds_s=_thresholds(args.hir_thresholds, "--hir-thresholds"),
                         rcbf_threshold=args.rcbf_threshold)


def compute_options(args) -> dict:
    """compute_maps' keywords from the command line: ST-Net's checkpoint, or kh, rho and --option's."""
    checkpoint = args.checkpoint
    if args.method == "stnet" and checkpoint is None:  # the trained ST-Net that ships, its sha256 checked
        try:
            checkpoint = shipped_checkpoint()
        except StnetInputError as error:
            raise StnetInputError(f"--method stnet needs --checkpoint (a .pt file written by `stnet train`): {error}")
    method_options = parse_options(args.option)
    if method_options and args.method == "stnet":
        raise StnetInputError("--option sets deconvolution options; ST-Net takes none (drop --option)")
    if args.method == "stnet" and args.leakage_correction != "none":
        raise StnetInputError("--leakage-correction applies to the deconvolution methods; ST-Net reads the "
                              "uncorrected series (use e.g. --method osvd)")
    if getattr(args, "uncertainty", False) and args.method != "stnet":
        raise StnetInputError("--uncertainty is ST-Net's (Monte-Carlo dropout): use it with --method stnet")
    if getattr(args, "no_aif_alignment", False) and args.method != "stnet":
        raise StnetInputError("--no-aif-alignment is ST-Net's: use it with --method stnet")
    if args.method == "stnet":
        return {"checkpoint": checkpoint, **({"uncertainty": True} if getattr(args, "uncertainty", False) else {}),
                **({"align_aif": False} if getattr(args, "no_aif_alignment", False) else {})}
    leakage = {} if args.leakage_correction == "none" else {"leakage_correction": args.leakage_correction}
    return {"kh": args.kh, "rho": args.rho, **leakage, **method_options}


def print_summary(values: dict) -> None:
    """The summary as a two-column table on stdout."""
    rows = [line.partition(": ") for line in summary_lines(values)]
    width = max(len(name) for name, _, _ in rows)
    print("\n".join(f"  {name:<{width}}  {value}" for name, _, value in rows))


def run(args) -> int:
    if args.manifest is not None:
        return run_cohort(args)
    if args.jobs != 1 or args.subject is not None:
        raise StnetInputError("--jobs and --subject map a cohort: use them with --manifest")
    existing = [name for name in (*MAP_FILES, *SUMMARY_FILES) if (args.out / name).exists()]
    if existing and not args.overwrite:
        raise StnetInputError(f"{args.out} already holds {', '.join(existing)}: pass --overwrite or another --out")
    options, config = compute_options(args), summary_config(args)
    with series_path(args) as (dsc, dicom_record):
        scan = load_scan(dsc, args.aif_mask, args.vof_mask, args.brain_mask, args.te_ms, args.tr_s,
                         field_t=args.field_t, given_as="flag")
    if dicom_record is not None:
        scan.provenance["source"], scan.path = dicom_record, args.dicom
        scan.provenance["sidecar"]["path"] = "written by dcm2niix from the DICOM series (not kept)"
    maps = compute_maps(scan, args.method, device=args.device, motion_correct=args.motion_correct, **options)
    maps.params.update(dsc=str(args.dsc or args.dicom), aif_mask=str(args.aif_mask or "automatic"))
    values = save_scan_outputs(scan, maps, args.out, overwrite=args.overwrite, summary_config=config,
                               qc=not args.no_qc, title=f"Quality control: {Path(args.dsc or args.dicom).name}, "
                                                          f"{args.method}")
    log.info("wrote %s", args.out)
    written = sorted(path.name for path in args.out.iterdir() if not path.name.startswith("."))
    print(f"wrote {', '.join(written)} to {args.out}")
    print_summary(values)
    return 0


#: Flags that describe one scan; a manifest gives them per subject.
_SCAN_FLAGS = ("series", "aif_mask", "vof_mask", "brain_mask", "te_ms", "tr_s", "field_t")


def run_cohort(args) -> int:
    """``stnet maps --manifest``: every subject (or ``--subject``), resumably; 1 if any subject failed."""
    given = [f"--{name.replace('_', '-')}" for name in _SCAN_FLAGS if getattr(args, name) is not None]
    if given:
        raise StnetInputError(f"{', '.join(given)} describe one scan; with --manifest each subject's come from its "
                              "row (columns aif_mask, te_ms, ...): drop them")
    if args.overwrite:
        raise StnetInputError("--overwrite has no use with --manifest: a subject whose inputs or parameters "
                              "changed is mapped again, the others are kept (delete a subject's folder to redo it)")
    status = map_cohort(args.manifest, args.out, method=args.method, options=compute_options(args), jobs=args.jobs,
                        subject=args.subject, qc=not args.no_qc, summary_config=summary_config(args),
                        motion_correct=getattr(args, "motion_correct", False), device=args.device)
    for row in status.itertuples():
        print(f"  {row.subject_id}  {row.status}")
    counts = status["status"].value_counts()
    print(f"{counts.get('done', 0)} mapped, {counts.get('skipped', 0)} already done (skipped), "
          f"{counts.get('failed', 0)} failed; table: {status.attrs['summary_table']}")
    failed = status[status["status"] == "failed"]
    for row in failed.itertuples():
        print(f"stnet: subject {row.subject_id} failed: {row.message}", file=sys.stderr)
    return 1 if len(failed) else 0
