"""Text files of a run directory: written atomically, the ones fairrun reads back (run_config.yaml)
checksummed and read verified."""
from __future__ import annotations

from pathlib import Path

from fairrun.rundir.atomic import atomic_write
from fairrun.rundir.checksums import read_verified
from fairrun.rundir.errors import IntegrityError, cure_for
from fairrun.rundir.layout import CHECKSUMMED_TEXT


def write_text(text: str, path: Path, checksum: bool | None = None) -> None:
    """Atomically write a UTF-8 text file; checksummed when ``checksum`` (default: the files fairrun
    reads back, :data:`~fairrun.rundir.layout.CHECKSUMMED_TEXT`)."""
    path = Path(path)
    atomic_write(path, text.encode("utf-8"), path.name in CHECKSUMMED_TEXT if checksum is None else checksum)


def read_text(path: Path) -> str:
    """A checksummed text file (run_config.yaml), verified; IntegrityError when missing or damaged."""
    path = Path(path)
    data, _ = read_verified(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise IntegrityError(f"{path} is damaged: it is not UTF-8 text ({err.reason} at byte {err.start}). "
                             f"{cure_for(path)}") from err
