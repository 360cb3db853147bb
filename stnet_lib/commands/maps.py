"""``stnet maps``: perfusion maps of one DSC scan, written as NIfTI beside a JSON sidecar."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..constants import K_H, RHO_G_PER_ML
from ..io import MAP_FILES, load_scan, save_maps
from ..pipeline import ALL_METHODS, compute_maps
from .._validation import StnetInputError

log = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("maps", help="CBV, CBF, MTT, Tmax maps of one DSC scan",
                                   description="Compute CBV, CBF, MTT and Tmax maps of a DSC-MRI series.")
    parser.add_argument("--dsc", required=True, type=Path, help="4-D DSC series (x, y, z, t), NIfTI")
    parser.add_argument("--aif-mask", required=True, type=Path, help="arterial voxels, NIfTI on the series' grid")
    parser.add_argument("--vof-mask", type=Path, help="venous-output voxels for k_AV (eq. 8)")
    parser.add_argument("--brain-mask", type=Path, help="voxels to compute (computed from the series if omitted)")
    parser.add_argument("--te-ms", type=float, help="echo time [ms] (required)")
    parser.add_argument("--tr-s", type=float, help="frame interval [s] (default: the header's 4th zoom)")
    parser.add_argument("--field-t", type=float, default=1.5, help="field strength [T] (default 1.5)")
    parser.add_argument("--method", default="osvd", choices=ALL_METHODS, help="deconvolution method or stnet")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a method option, repeatable: threshold=0.15 (sSVD, cSVD), oi_threshold=0.05 (oSVD), "
                             "weight_spatial=0.03 or n_iter=150 (TTV, fields of TTVConfig)")
    parser.add_argument("--checkpoint", type=Path, help="ST-Net checkpoint (.pt), for --method stnet")
    parser.add_argument("--kh", type=float, default=K_H, help=f"haematocrit factor (default {K_H:.3f}; 1 for OSIPI)")
    parser.add_argument("--rho", type=float, default=RHO_G_PER_ML, help="tissue density [g/ml] (default 1.04; 1 for OSIPI)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace maps already in --out")
    return parser


#: compute_maps' own keywords, which are not method options, and what to do instead.
_NOT_OPTIONS = {"kh": "use --kh", "rho": "use --rho", "device": "use --device", "checkpoint": "use --checkpoint",
                "baseline": "the pre-bolus frames are detected from the series",
                "arterial_quadratic": "the arterial conversion is fixed", "keep_residue": "residues are not written"}


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


def run(args) -> int:
    existing = [name for name in MAP_FILES if (args.out / name).exists()]
    if existing and not args.overwrite:
        raise StnetInputError(f"{args.out} already holds {', '.join(existing)}: pass --overwrite or another --out")
    if args.method == "stnet" and args.checkpoint is None:
        raise StnetInputError("--method stnet needs --checkpoint (a .pt file written by `stnet train`)")
    method_options = parse_options(args.option)
    if method_options and args.method == "stnet":
        raise StnetInputError("--option sets deconvolution options; ST-Net takes none (drop --option)")
    scan = load_scan(args.dsc, args.aif_mask, args.vof_mask, args.brain_mask, args.te_ms, args.tr_s, field_t=args.field_t)
    options = {"checkpoint": args.checkpoint} if args.method == "stnet" else {"kh": args.kh, "rho": args.rho,
                                                                              **method_options}
    maps = compute_maps(scan, args.method, device=args.device, **options)
    maps.params.update(dsc=str(args.dsc), aif_mask=str(args.aif_mask))
    save_maps(maps, args.out, affine=scan.affine, header=scan.header, overwrite=args.overwrite)
    log.info("wrote %s", args.out)
    print(f"wrote {', '.join(MAP_FILES)} to {args.out}")
    return 0
