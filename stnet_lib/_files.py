"""Small file helpers shared by every layer (imports nothing from the package)."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["sha256_file"]


def sha256_file(path) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks so that a large series is never held whole."""
    digest = hashlib.sha256()
    with open(Path(path), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
