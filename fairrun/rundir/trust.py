"""``python -m fairrun.rundir trust RUN_DIR ...``: vouch for an older fairrun's results.pkl, writing the
checksummed safe twin that fairrun reads back (see :func:`~fairrun.rundir.tables.read_results`)."""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pandas as pd

from fairrun.core.errors import FairrunError
from fairrun.rundir.atomic import atomic_write
from fairrun.rundir.checksums import checksum_path, sha256
from fairrun.rundir.errors import IntegrityError
from fairrun.rundir.layout import RESULTS, RESULTS_SAFE
from fairrun.rundir.tables import write_safe_frame

USAGE = ("usage: python -m fairrun.rundir trust RUN_DIR [RUN_DIR ...]\n"
         "  unpickles each run's results.pkl (only do this for files you trust: a pickle can run code)\n"
         "  and writes results.json, the checksummed table fairrun reads back")


def trust_results(run_dir: Path) -> Path:
    """Unpickle ``run_dir``'s results.pkl (the user vouches for it) and write its checksummed safe twin."""
    path = Path(run_dir) / RESULTS
    frame = pd.read_pickle(path)
    if not isinstance(frame, pd.DataFrame):
        raise IntegrityError(f"{path} holds a {type(frame).__name__}, not a pandas DataFrame.")
    twin = path.with_name(RESULTS_SAFE)
    if not write_safe_frame(frame, twin):
        record = f"{sha256(path.read_bytes())}  {path.name}\n".encode()
        atomic_write(checksum_path(path), record, checksum=False)
        return checksum_path(path)
    return twin


def main(argv: list[str] | None = None) -> int:
    """The ``trust`` command: trust each RUN_DIR given; its exit code (2 on a usage error or a failure)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] != "trust":
        print(USAGE, file=sys.stderr)
        return 2
    for run_dir in argv[1:]:
        try:
            print(f"wrote {trust_results(Path(run_dir))}")
        except (FairrunError, OSError, pickle.UnpicklingError, EOFError) as err:
            print(f"fairrun.rundir trust: error: {run_dir}: {err}", file=sys.stderr)
            return 2
    return 0
