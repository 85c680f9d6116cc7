"""What every subcommand's Hydra app shares: a user mistake becomes one paragraph and exit code 2 (recorded in
the run directory's error.txt when there is one), Ctrl-C / SIGTERM exit codes 130 / 143, and whether the
command's own work has started (Hydra's composition errors before that also exit with code 2)."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from fairrun.core.errors import FairrunError, Interrupted, paragraph

_started = [False]


def task_started() -> bool:
    """Whether the running command's own work began (so an exit code 1 is not Hydra's composition error)."""
    return _started[0]


def mark_started() -> None:
    _started[0] = True


def report_user_error(err: Exception, run_dir: Path | None = None) -> None:
    """Print a user mistake as one paragraph (no traceback) and record it in the run dir."""
    text = paragraph(f"fairrun: error: {err}")
    print(text, file=sys.stderr)
    # a refusal to write into a run directory (in use, another run's) is not that directory's error
    if run_dir is not None and Path(run_dir).is_dir() and getattr(err, "record_in_run_dir", True):
        try:
            (Path(run_dir) / "error.txt").write_text(text + "\n")
        except OSError as write_err:  # a full disk or read-only dir: the message above is what counts
            print(f"fairrun: (could not also record it in {Path(run_dir) / 'error.txt'}: "
                  f"{write_err.strerror or write_err})", file=sys.stderr)


@contextmanager
def user_errors(run_dir: Path | None = None):
    """Turn FairrunError into exit code 2 and Ctrl-C / SIGTERM into exit code 130 / 143, each with a clear
    message."""
    mark_started()
    try:
        yield
    except FairrunError as err:
        report_user_error(err, run_dir)
        sys.exit(2)
    except Interrupted as err:
        print(paragraph(f"fairrun: interrupted: {err}. Run the same command again (for a single run, "
                         f"with hydra.run.dir={run_dir}) to resume."), file=sys.stderr)
        sys.exit(err.exit_code)
