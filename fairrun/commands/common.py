"""What every subcommand's Hydra app shares: a user mistake becomes one paragraph and exit code 2 (recorded in
the run directory's error.txt when there is one), Ctrl-C / SIGTERM exit codes 130 / 143, and whether the
command's own work has started (Hydra's composition errors before that also exit with code 2)."""
from __future__ import annotations

import shutil
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


# What a launch writes into its run directory before any data is read: Hydra's job log file (*.log), the
# error.txt of a refusal, and .hydra/ (the accepted config: fairrun.commands.train.write_hydra_files).
LAUNCH_FILES = ("error.txt",)
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def _launch_entry(entry: Path, empty_logs: bool) -> bool:
    if entry.is_symlink():
        return False
    if entry.is_dir():
        return not empty_logs and entry.name == ".hydra" and \
            all(f.is_file() and not f.is_symlink() and f.name in HYDRA_FILES for f in entry.iterdir())
    return entry.is_file() and ((entry.suffix == ".log" and (not empty_logs or entry.stat().st_size == 0)) or
                                (not empty_logs and entry.name in LAUNCH_FILES))


def _only_launch_files(run_dir: Path, empty_logs: bool) -> bool:
    return all(_launch_entry(entry, empty_logs) for entry in Path(run_dir).iterdir())


def launched_fresh(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds nothing but what Hydra made for this launch before the task ran: the
    directory and its empty job log file (so nothing of an earlier launch is there)."""
    try:
        return Path(run_dir).is_dir() and _only_launch_files(run_dir, empty_logs=True)
    except OSError:
        return False


def remove_launch_dir(run_dir: Path) -> bool:
    """Remove ``run_dir`` (and the parents Hydra made for it that are left empty, up to the current directory)
    if it holds nothing but what a launch writes before it reads any data (the job log, error.txt, .hydra/: a
    dataset whose files are missing) and no part of a run (:func:`fairrun.rundir.lock.holds_a_run`); whether it was removed."""
    from fairrun.rundir.lock import holds_a_run

    run_dir = Path(run_dir)
    try:
        if not run_dir.is_dir() or holds_a_run(run_dir) or not _only_launch_files(run_dir, empty_logs=False):
            return False
        _detach_log_files(run_dir)
        for entry in run_dir.iterdir():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        run_dir.rmdir()
        here, parent = Path.cwd().resolve(), run_dir.resolve().parent
        while parent != here and here in parent.parents and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    except OSError:  # another process writes there now, or a read-only folder: leave the rest as it is
        return False
    return True


def _detach_log_files(run_dir: Path) -> None:
    """Close and remove the logging handlers that write into ``run_dir`` (Hydra's job log), so that nothing
    logged later in this process reopens a file of the removed directory."""
    import logging

    folder = Path(run_dir).resolve()
    names = list(logging.root.manager.loggerDict)
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in names]
    for logger in loggers:
        for handler in list(getattr(logger, "handlers", [])):
            if isinstance(handler, logging.FileHandler) and \
                    Path(handler.baseFilename).resolve().parent == folder:
                logger.removeHandler(handler)
                handler.close()


@contextmanager
def discard_refused_launch(run_dir: Path, fresh: bool):
    """On a refusal (exit code 2) of a launch whose run directory was ``fresh`` (:func:`launched_fresh`),
    remove that directory again (:func:`remove_launch_dir`), so a typo leaves no run directory behind. Enclose the
    hold of the directory's lock, so that the lock file is gone first."""
    try:
        yield
    except SystemExit as exit_:
        if exit_.code == 2 and fresh:
            remove_launch_dir(run_dir)
        raise
