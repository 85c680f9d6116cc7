"""Atomic writes: a temporary file in the same directory renamed over the target, its checksum sidecar kept
consistent at every moment; and the removal of the temporaries a killed writer leaves."""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from fairrun.rundir.checksums import checksum_path, record, recorded, sha256
from fairrun.rundir.errors import write_error

log = logging.getLogger("fairrun")

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, data: bytes | Callable[[str], Any], checksum: bool = False) -> None:
    """Write ``data`` through a temporary file in the same directory, then rename it over ``path``.

    ``data``: the bytes, or a function that writes the temporary file whose path it is given (for
    writers such as ``Image.save``; never checksummed). With ``checksum``, the sidecar ``<file>.sha256`` is
    first rewritten to accept both the file in place and the new one (two lines), then the file is renamed,
    then the sidecar is rewritten with the new digest alone (each step atomic): a process killed at any
    moment leaves a file that its record accepts, never a record that condemns a good file (tested by
    killing ``fairrun train`` at every rename, ``tests/cli/test_kill_faults.py``). A file in place without a
    record (an older fairrun's) keeps none until the new one is in place. An OSError becomes a
    :class:`~fairrun.rundir.errors.WriteError`; the previous version of ``path`` is untouched until the
    rename.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise write_error(err, path) from err
    try:
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give results the usual permissions
        if callable(data):
            data(tmp)
            checksum = False
        else:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # surfaces late write errors (quota, network file systems) here
        if checksum:
            new, before = sha256(data), recorded(checksum_path(path))
            if before:  # accept the file in place and the new one while the rename is in flight
                both = [new, *[d for d in before if d != new][:1]]
                atomic_write(checksum_path(path), record(both, path.name))
            else:  # none, or damaged: a damaged record must not condemn the new file
                checksum_path(path).unlink(missing_ok=True)
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise write_error(err, path) from err
        raise
    if checksum:
        atomic_write(checksum_path(path), record([new], path.name), checksum=False)


def remove_orphaned_temporaries(run_dir: Path) -> int:
    """Delete the ``.<name>.*.tmp`` files that atomic writes leave when a process is killed mid-write
    (anywhere below the run directory: ``checkpoints/``, ``.hydra/``, a staged method's folders); call only
    while holding the run directory's lock, so no live writer owns them. Returns how many were removed."""
    removed = 0
    for tmp in Path(run_dir).rglob(".*.tmp") if Path(run_dir).is_dir() else []:
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("%s: removed %d temporary file(s) left by an interrupted write", run_dir, removed)
    return removed
