"""One fingerprint function for everything fairrun caches or compares: run configs (checkpoints, relaunch
checks), the decoded-image cache, the GAN and VAE stages, gan_debias' stage key, and file checksums.

Every fingerprint is SHA-256 over the given parts in order: a mapping or list as canonical JSON (sorted keys;
values JSON cannot hold are written with ``str``), a string as UTF-8, bytes as they are.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional, Union

BLOCK = 16 << 20  # file checksums read 16 MiB at a time


def _update(digest, part) -> None:
    if isinstance(part, (bytes, bytearray, memoryview)):
        digest.update(part)
    elif isinstance(part, str):
        digest.update(part.encode())
    else:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())


def fingerprint(*parts, length: Optional[int] = 16) -> str:
    """The first ``length`` hex digits (all 64 with ``length=None``) of SHA-256 over ``parts``."""
    digest = hashlib.sha256()
    for part in parts:
        _update(digest, part)
    text = digest.hexdigest()
    return text if length is None else text[:length]


def file_sha256(path: Union[str, Path]) -> str:
    """The full SHA-256 of a file's bytes, read in blocks (a cache's image array can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()
