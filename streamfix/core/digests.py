"""File digests: one way to fingerprint a file's bytes for caches and resume records."""

from __future__ import annotations

import hashlib
from pathlib import Path

CHUNK = 1 << 20  # read a MiB at a time: files may be gigabytes


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
