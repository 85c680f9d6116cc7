"""Checksum sidecars (``<file>.sha256``, ``sha256sum -c`` format) and verified reads of the files they
cover."""
from __future__ import annotations

import logging
import re
from pathlib import Path

from fairrun.core.fingerprint import fingerprint
from fairrun.rundir.errors import IntegrityError, cure_for

log = logging.getLogger("fairrun")

CHECKSUM_SUFFIX = ".sha256"
_warned: set[str] = set()


def checksum_path(path: Path) -> Path:
    """The sidecar holding ``path``'s SHA-256: ``<file>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def sha256(data: bytes) -> str:
    """The SHA-256 hex digest of ``data``."""
    return fingerprint(data, length=None)


def parse_record(text: str) -> list[str] | None:
    """The SHA-256 digests a sidecar accepts (``sha256sum`` lines: one, or two while a write is in flight),
    or None when it is damaged."""
    lines = [line for line in text.splitlines() if line.strip()]
    digests = [re.fullmatch(r"\s*([0-9a-f]{64})(?:\s+\*?\S.*)?\s*", line) for line in lines]
    if not lines or len(lines) > 2 or not all(digests):
        return None
    return [match.group(1) for match in digests]


def record(digests: list[str], name: str) -> bytes:
    """The bytes of a sidecar accepting ``digests`` for the file ``name`` (one ``sha256sum`` line each)."""
    return "".join(f"{digest}  {name}\n" for digest in digests).encode()


def recorded(side: Path) -> list[str] | None:
    """The digests the sidecar ``side`` accepts; None when it is missing, unreadable or damaged."""
    try:
        return parse_record(side.read_text(errors="replace"))
    except OSError:
        return None


def _warn_unverified(path: Path) -> None:
    key = str(Path(path).resolve())
    if key not in _warned:
        _warned.add(key)
        log.warning("%s has no recorded checksum (%s is missing: written by an older fairrun), so it is read "
                    "without an integrity check", path, checksum_path(path).name)


def read_verified(path: Path, require_record: bool = False) -> tuple[bytes, bool]:
    """``path``'s bytes and whether they matched the checksum fairrun recorded when writing them.

    Raises :class:`IntegrityError` when the file is missing or unreadable, when its sidecar is
    damaged, or when the bytes do not match it. Without a sidecar the bytes are returned unverified,
    with a logged warning (unless ``require_record``: then the caller decides what to say).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(f"{path} is missing. {cure_for(path)}") from None
    except OSError as err:
        raise IntegrityError(f"cannot read {path}: {err.strerror or err}. Check the file's permissions; "
                             f"{cure_for(path)}") from err
    side = checksum_path(path)
    try:
        text = side.read_text(errors="replace")
    except FileNotFoundError:
        if not require_record:
            _warn_unverified(path)
        return data, False
    except OSError as err:
        raise IntegrityError(f"cannot read {side}, the checksum record of {path.name}: "
                             f"{err.strerror or err}. Check the file's permissions; "
                             f"{cure_for(path)}") from err
    expected = parse_record(text)
    if expected is None:
        raise IntegrityError(f"{side}, the checksum record fairrun wrote for {path.name}, is damaged (not a "
                             f"SHA-256 line), so {path} cannot be verified. {cure_for(path)}")
    actual = sha256(data)
    if actual not in expected:
        size = "0 bytes: empty" if not data else f"{len(data)} bytes"
        raise IntegrityError(f"{path} is damaged ({size}): its SHA-256 ({actual[:16]}…) differs from the "
                             f"one fairrun recorded when it wrote the file "
                             f"({side.name}: {expected[0][:16]}…), so it was truncated, corrupted or changed "
                             f"afterwards. {cure_for(path)}")
    return data, True
