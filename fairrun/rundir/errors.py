"""The errors of reading and writing run-directory files, each one paragraph naming the file and the cure."""
from __future__ import annotations

import errno
import os
from pathlib import Path

from fairrun.core.errors import FairrunError
from fairrun.rundir.layout import BEST, LAST, RESULTS, RESULTS_SAFE, RUN_CONFIG, run_dir_of


class IntegrityError(FairrunError):
    """A run-directory file fairrun reads is missing, damaged, or fails its checksum."""


class WriteError(FairrunError):
    """A run-directory file could not be written (disk full, file-size limit, read-only location)."""


def cure_for(path: Path) -> str:
    """What the user can do about a damaged or missing ``path`` (one or two sentences)."""
    path = Path(path)
    run_dir = run_dir_of(path)
    again = (f"launch the same fairrun train command again with resume=false (for a single run add "
             f"hydra.run.dir={run_dir}), which deletes the run's checkpoints and results and trains it "
             f"from scratch")
    if path.parent.name == "checkpoints" and path.name == LAST.name:
        return f"To start this run over, {again}."
    if path.parent.name == "checkpoints" and path.name == BEST.name:
        return f"To rewrite best.pt, {again}."
    if path.name in (RESULTS, RESULTS_SAFE):
        return f"To write the results again, {again}; or move {run_dir} out of the way."
    if path.name == RUN_CONFIG:
        return (f"If {run_dir} is a fairrun train run directory, {again} (that rewrites {RUN_CONFIG}); "
                f"fairrun eval needs run_dir= to point at a directory written by fairrun train.")
    return "Delete it and run the command that wrote it again."


def parse_reason(err: BaseException) -> str:
    """A short, safe description of why a file could not be parsed."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if "weights_only" in text.lower() or "weights only" in text.lower() or len(text) > 160:
        text = ""  # torch's advice here (weights_only=False) would run arbitrary code: never pass it on
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def write_error(err: OSError, path: Path) -> WriteError:
    """A one-paragraph WriteError for an OSError met while writing ``path``."""
    path = Path(path)
    code = err.errno
    kept = (" The previous version of the file is kept intact." if path.exists() else "")
    again = "then run the same command again (a training run resumes from its last checkpoint)"
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        what = "no space left on the device" if code == errno.ENOSPC else "the disk quota is exhausted"
        return WriteError(f"{what} writing {path} ({os.strerror(code)}).{kept} Free some space there "
                          f"(df -h {path.parent}) or write elsewhere, {again}.")
    if code == errno.EFBIG:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        limit = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft} bytes"
        return WriteError(f"the file-size limit was reached writing {path} ({os.strerror(code)}; the limit, "
                          f"ulimit -f, is {limit}).{kept} Raise the limit (ulimit -f unlimited), {again}.")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "a read-only file system" if code == errno.EROFS else "not writable by this user"
        return WriteError(f"cannot write {path}: {os.strerror(code)} ({path.parent} is {why}).{kept} "
                          f"Write somewhere writable: fairrun train takes hydra.run.dir=DIR "
                          f"(hydra.sweep.dir=DIR with -m), fairrun eval takes out_dir=DIR and fairrun report "
                          f"takes --out DIR.")
    name = errno.errorcode.get(code, "") if code else ""
    return WriteError(f"cannot write {path}: {err.strerror or err}{f' ({name})' if name else ''}.{kept} "
                      f"Fix the cause, {again}.")
