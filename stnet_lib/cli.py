"""The ``stnet`` command: ``stnet maps | simulate | train | evaluate ...``.

Bad input (:class:`StnetInputError`) prints one line, ``stnet: error: ...``, and exits with status 2,
as argparse does for a bad option; nothing is written in that case.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__
from ._validation import StnetInputError

__all__ = ["main", "COMMANDS"]

#: Sub-command modules in ``stnet_lib.commands``, in the order ``stnet --help`` lists them.
COMMANDS = ("simulate", "train", "convert", "maps", "evaluate", "report", "weights")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stnet", description="Quantitative DSC-MRI perfusion: maps, synthetic cohorts, ST-Net training, evaluation.")
    parser.add_argument("--version", action="version", version=f"stnet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"stnet_lib.commands.{name}")
        module.add_parser(subparsers).set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``stnet`` with ``argv`` (default: the process arguments); return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except StnetInputError as error:
        print(f"stnet: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
