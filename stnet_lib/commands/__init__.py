"""Sub-commands of ``stnet``: each module exposes ``add_parser(subparsers)`` and ``run(args) -> int``."""
