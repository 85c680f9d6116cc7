"""Results and prediction tables: written as checksummed pickles (for users), results also as their safe
twin (``results.json``, the file fairrun reads back); read back without unpickling anything fairrun did not
write."""
from __future__ import annotations

import io
import logging
from pathlib import Path

import pandas as pd

from fairrun.rundir.atomic import atomic_write
from fairrun.rundir.checksums import checksum_path, read_verified
from fairrun.rundir.errors import IntegrityError, cure_for, parse_reason
from fairrun.rundir.frames import frame_from_json, frame_to_json
from fairrun.rundir.layout import RESULTS_SAFE, SAFE_TWINS

log = logging.getLogger("fairrun")


def write_pickle(frame: pd.DataFrame, path: Path) -> None:
    """Atomically pickle a DataFrame (for users), with its checksum; results.pkl also gets its safe twin.

    The twin (results.json, see :func:`~fairrun.rundir.frames.frame_to_json`) is written first, so that a
    crash leaves a twin at least as new as the pickle.
    """
    path = Path(path)
    twin = SAFE_TWINS.get(path.name)
    if twin is not None:
        write_safe_frame(frame, path.with_name(twin))
    buffer = io.BytesIO()
    frame.to_pickle(buffer)
    atomic_write(path, buffer.getvalue(), checksum=True)


def write_safe_frame(frame: pd.DataFrame, path: Path) -> bool:
    """Write ``frame`` as checksummed JSON at ``path``; False (and no file) when it cannot be exact."""
    data = frame_to_json(frame)
    if data is None:
        log.warning("%s not written: the table holds values JSON cannot keep exactly; fairrun reads the "
                    "checksummed pickle instead", path)
        Path(path).unlink(missing_ok=True)
        checksum_path(path).unlink(missing_ok=True)
        return False
    atomic_write(path, data, checksum=True)
    return True


def read_results(path: Path) -> pd.DataFrame:
    """A run's results table, read from a format that cannot carry code. ``path``: its results.pkl.

    Reads the checksummed safe twin (results.json) when there is one. Without it (a run of an older
    fairrun, or a table JSON cannot hold exactly) the pickle is unpickled only when its checksum
    matches the record fairrun wrote beside it. That record protects against damaged files and
    against a pickle swapped in without it (e.g. copied from elsewhere); it does not protect against
    someone who can write to the run directory and rewrites the record too. A pickle without a
    record is refused: ``python -m fairrun.rundir trust RUN_DIR`` converts a results.pkl you trust.
    """
    path = Path(path)
    twin = path.with_name(SAFE_TWINS.get(path.name, RESULTS_SAFE))
    if twin.exists() or checksum_path(twin).exists():
        data, _ = read_verified(twin)
        return frame_from_json(data, twin)
    data, verified = read_verified(path, require_record=True)
    if not verified:
        cure = cure_for(path)
        raise IntegrityError(
            f"{path} has no safe twin ({twin.name}) and no checksum recorded by fairrun "
            f"({checksum_path(path).name}), so fairrun will not unpickle it: unpickling runs whatever code a "
            f"pickle holds. If you trust this file (you wrote it with an older fairrun), convert it once "
            f"with python -m fairrun.rundir trust {path.parent}; otherwise, {cure[0].lower()}{cure[1:]}")
    try:
        frame = pd.read_pickle(io.BytesIO(data))  # checksum-verified: the bytes fairrun itself wrote
    except Exception as err:
        raise IntegrityError(f"{path} cannot be read ({parse_reason(err)}). {cure_for(path)}") from err
    if not isinstance(frame, pd.DataFrame):
        raise IntegrityError(f"{path} holds a {type(frame).__name__}, not the pandas DataFrame fairrun train "
                             f"writes. {cure_for(path)}")
    return frame
