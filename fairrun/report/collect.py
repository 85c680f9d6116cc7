"""Find the run directories under the report's paths, read their results and tell each job's status.

A run directory (one per single run, one per multirun job) is finished when it holds ``done`` and
``results.pkl``, failed when it holds ``error.txt`` but no ``done``, and unfinished otherwise (a killed
or still running job: ``.hydra/`` or ``run_config.yaml``, maybe a ``results.pkl`` without ``done``).
A sweep directory (``multirun.yaml``) also tells which jobs Hydra's BasicSweeper was asked for, so a
job number without a directory is missing.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from fairrun import rundir
from fairrun.core.environment import KEY_FIELDS, differences, results_columns
from fairrun.core.errors import FairrunError
from fairrun.training.results import GROUP_CHOICES, IDENTITY_KEYS

RESULTS, DONE, ERROR, RUN_CONFIG = "results.pkl", "done", "error.txt", "run_config.yaml"
OVERRIDES = Path(".hydra") / "overrides.yaml"
MULTIRUN = "multirun.yaml"
STATUSES = ("finished", "failed", "unfinished", "missing")
# Sub-directories of a run (or of a report) that never hold another run: not walked.
_NOT_RUNS = {".hydra", "checkpoints", "tb", "plots", ".submitit", "__pycache__"}


@dataclass
class Collection:
    """What the report's paths hold: the finished runs' rows and one status row per job."""

    results: pd.DataFrame  # every row of every finished results.pkl, plus `job` and `overrides`
    jobs: pd.DataFrame  # job, status, overrides, error (and path: the run directory, '' when missing)
    sweeps: list[Path] = field(default_factory=list)  # directories with a multirun.yaml
    notes: list[str] = field(default_factory=list)  # things the report could not work out, for the user


def natural_key(text: str) -> list:
    """Sort key that orders embedded numbers numerically: job '2' before job '10'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text))]


def _hydra_job_name(run_dir: Path) -> str | None:
    """The Hydra job name recorded in ``.hydra/hydra.yaml`` (``train`` for fairrun train), or None."""
    try:
        with open(run_dir / ".hydra" / "hydra.yaml") as f:
            return str(yaml.safe_load(f)["hydra"]["job"]["name"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):  # unreadable or absent: unknown
        return None


def is_run_dir(path: Path) -> bool:
    """True when ``path`` is a fairrun train run directory (finished or not).

    It holds results.pkl, done or run_config.yaml, or a ``.hydra/`` folder of a ``train`` job (a job
    killed before it wrote anything else; other fairrun commands' Hydra folders do not count).
    """
    if any((path / name).is_file() for name in (RESULTS, DONE, RUN_CONFIG)):
        return True
    if (path / ".hydra").is_dir():
        return _hydra_job_name(path) in (None, "train")
    return False


def unreadable_results(run_dir: Path) -> str:
    """'' when the run's results read back (:func:`read_results`), else why not (one paragraph)."""
    try:
        read_results(run_dir)
    except FairrunError as err:
        return " ".join(str(err).split())
    except Exception as err:  # noqa: BLE001 - whatever the reader meets, the run's results are unusable
        return f"cannot read {run_dir / RESULTS}: {type(err).__name__}: {err}"
    return ""


def job_status(run_dir: Path) -> str:
    """``finished`` (done + results.pkl that reads back), ``failed`` (error.txt and no done, or results that
    do not read back: :func:`error_summary` says why) or ``unfinished``."""
    if (run_dir / DONE).is_file() and (run_dir / RESULTS).is_file():
        return "failed" if unreadable_results(run_dir) else "finished"
    if (run_dir / ERROR).is_file():
        return "failed"
    return "unfinished"


def read_overrides(run_dir: Path) -> list[str]:
    """The job's Hydra overrides (``.hydra/overrides.yaml``), or [] when absent or unreadable."""
    try:
        with open(run_dir / OVERRIDES) as f:
            items = yaml.safe_load(f) or []
        return [str(item) for item in items]
    except (OSError, yaml.YAMLError, TypeError):
        return []


def error_summary(run_dir: Path) -> str:
    """The failure's message: why a finished run's results do not read back, else the first paragraph of
    error.txt, on one line (no traceback)."""
    if (run_dir / DONE).is_file() and (run_dir / RESULTS).is_file():
        problem = unreadable_results(run_dir)
        if problem:
            return f"fairrun: error: {problem}"
    try:
        text = (run_dir / ERROR).read_text(errors="replace")
    except OSError:
        return ""
    lines = []
    for line in text.splitlines():
        if not line.strip():
            if lines:
                break
            continue
        if line.startswith("Traceback"):
            break
        lines.append(line.strip())
    return " ".join(lines)


def find_run_dirs(root: Path) -> tuple[list[Path], list[Path]]:
    """Every run directory and every sweep directory (``multirun.yaml``) at or under ``root``.

    Run directories are leaves: the walk does not descend into them.
    """
    runs, sweeps = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if MULTIRUN in filenames:
            sweeps.append(here)
        if is_run_dir(here):
            runs.append(here)
            dirnames[:] = []
            continue
        dirnames[:] = sorted((d for d in dirnames if d not in _NOT_RUNS), key=natural_key)
    return runs, sweeps


def expand_sweep(params: dict, task: list) -> list[list[str]]:
    """The overrides of every job of a basic-sweeper multirun, in Hydra's job-number order.

    ``params`` is ``hydra.sweeper.params`` (key -> comma-separated values), ``task`` the command-line
    overrides; both are expanded as Hydra's BasicSweeper does (its own override parser and
    ``split_arguments``: the cartesian product, last key fastest).
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    arguments = [f"{key}={value}" for key, value in (params or {}).items()] + [str(t) for t in task or []]
    overrides = OverridesParser.create().parse_overrides(arguments)
    return [list(job) for job in BasicSweeper.split_arguments(overrides, None)[0]]


def expected_jobs(sweep_dir: Path) -> list[list[str]]:
    """The overrides of every job a multirun asked for, from its ``multirun.yaml`` (:func:`expand_sweep`).

    Raises FairrunError when the file cannot be read or expanded (e.g. a sweep over ``glob(...)``).
    """
    try:
        with open(sweep_dir / MULTIRUN) as f:
            hydra_cfg = (yaml.safe_load(f) or {}).get("hydra") or {}
        return expand_sweep((hydra_cfg.get("sweeper") or {}).get("params") or {},
                            (hydra_cfg.get("overrides") or {}).get("task") or [])
    except Exception as err:  # anything here means "cannot tell which jobs are missing"
        raise FairrunError(f"cannot expand the jobs of {sweep_dir / MULTIRUN}: {err}") from err


def _job_name(run_dir: Path, root: Path, prefix: str) -> str:
    rel = run_dir.relative_to(root).as_posix()
    name = root.name if rel == "." else rel
    return f"{prefix}/{name}" if prefix else name


def _prefix(root: Path, paths: list[Path]) -> str:
    """'' for a single PATH; else the PATH relative to the paths' common folder, so jobs stay distinct."""
    if len(paths) < 2:
        return ""
    common = os.path.commonpath([str(Path(p).resolve()) for p in paths])
    rel = os.path.relpath(root.resolve(), common)
    return root.resolve().name if rel == "." else Path(rel).as_posix()


def read_results(run_dir: Path) -> pd.DataFrame:
    """A finished run's results, from its checksummed results.json (fairrun never unpickles a file it
    cannot vouch for: see :func:`fairrun.rundir.read_results`); FairrunError naming the file when it is
    missing, damaged or refused."""
    return rundir.read_results(run_dir / RESULTS)


def read_environment(run_dir: Path) -> list[dict]:
    """The segments of a run's ``environment.json`` (fairrun.core.environment), or [] when the run has
    none (runs of older fairrun versions) or it cannot be read."""
    import json

    try:
        return list(json.loads(rundir.read_text(run_dir / rundir.ENVIRONMENT))["segments"])
    except (FairrunError, OSError, ValueError, KeyError, TypeError):
        return []


def environment_notes(results: pd.DataFrame, jobs_resumed_elsewhere: list[str]) -> list[str]:
    """Warnings when one table mixes environments: per key field (package versions, torch's CPU capability,
    the device) with more than one value among the runs, how many runs have each; and the jobs resumed
    under another environment than they started in."""
    notes = []
    for field_name in KEY_FIELDS:
        column = f"env_{field_name}"
        if column not in results or "job" not in results:
            continue
        per_job = results.drop_duplicates("job")[column].fillna("unknown").astype(str)
        counts = per_job.value_counts()
        if len(counts) > 1:
            notes.append(f"the runs ran in different environments: {field_name} "
                         + ", ".join(f"{value} ({n} run{'s' * (n > 1)})" for value, n in counts.items())
                         + ": a difference between rows may come from the software or the CPU kernels, not "
                           "the method (environment.json of each run)")
    if jobs_resumed_elsewhere:
        notes.append("resumed under another environment than they started in: "
                     + ", ".join(jobs_resumed_elsewhere))
    return notes


def collect(paths: list[Path]) -> Collection:
    """Read every run directory under ``paths`` (each a sweep, a folder of runs, or one run directory).

    ``job`` is the run directory relative to its PATH (prefixed with the PATH, relative to the
    paths' common folder, when several paths are given, so jobs stay distinct); ``overrides`` joins the job's Hydra overrides with spaces.
    Raises FairrunError for a path that does not exist or that holds no run directory.
    """
    frames, jobs, all_sweeps, notes, mixed = [], [], [], [], []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise FairrunError(f"PATH {str(root)!r} does not exist. Give a sweep directory (the one with "
                               f"multirun.yaml and job folders 0/, 1/, ...), a folder of run directories "
                               f"(e.g. outputs/) or one run directory (with results.pkl).")
        if not root.is_dir():
            raise FairrunError(f"PATH {str(root)!r} is a file, not a directory. Give a sweep directory, a "
                               f"folder of run directories (e.g. outputs/) or one run directory.")
        prefix = _prefix(root, paths)
        runs, sweeps = find_run_dirs(root)
        all_sweeps += sweeps
        seen = set()
        for run_dir in runs:
            seen.add(run_dir.resolve())
            job = _job_name(run_dir, root, prefix)
            overrides = " ".join(read_overrides(run_dir))
            status = job_status(run_dir)
            error = error_summary(run_dir) if status == "failed" else ""
            if status == "finished":
                try:
                    frame = read_results(run_dir).copy()
                except FairrunError as err:  # one unreadable run is listed as failed; the others are reported
                    status, error = "failed", f"cannot read its results: {err}"
                else:
                    frame.insert(0, "overrides", overrides)
                    frame.insert(0, "job", job)
                    segments = read_environment(run_dir)
                    if segments:
                        for column, value in results_columns(segments[-1]).items():
                            if column not in frame:  # runs of older versions: environment.json only
                                frame[column] = value
                        if any(differences(a, b) for a, b in zip(segments, segments[1:])):
                            mixed.append(job)
                    frames.append(frame)
            elif (run_dir / RESULTS).is_file():
                error = error or "results.pkl without the done marker: the run did not finish"
            elif (run_dir / DONE).is_file():
                error = error or "the done marker without results.pkl: results.pkl was deleted or lost"
            jobs.append({"job": job, "status": status, "overrides": overrides, "error": error,
                         "path": str(run_dir)})
        for sweep in sweeps:
            try:
                expected = expected_jobs(sweep)
            except FairrunError as err:
                notes.append(f"{err}; missing jobs are not counted for this sweep.")
                continue
            for num, overrides in enumerate(expected):
                job_dir = sweep / str(num)
                if job_dir.resolve() not in seen and not job_dir.exists():
                    jobs.append({"job": _job_name(job_dir, root, prefix), "status": "missing",
                                 "overrides": " ".join(overrides), "error": "", "path": ""})
        if not runs:
            found = "a multirun.yaml but no job directory" if sweeps else "no run directory"
            raise FairrunError(f"PATH {str(root)!r} holds {found}: no results.pkl, done marker, "
                               f"run_config.yaml or .hydra/ folder was found under it. Give a sweep "
                               f"directory (multirun.yaml and job folders 0/, 1/, ...), a folder of run "
                               f"directories (e.g. outputs/) or one run directory.")
    job_frame = pd.DataFrame(jobs, columns=["job", "status", "overrides", "error", "path"])
    job_frame = job_frame.iloc[sorted(range(len(job_frame)), key=lambda i: natural_key(job_frame["job"].iat[i]))]
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["job", "overrides"])
    results = fill_parameters(results)
    notes += environment_notes(results, mixed)
    return Collection(results=results, jobs=job_frame.reset_index(drop=True), sweeps=all_sweeps, notes=notes)


def status_counts(jobs: pd.DataFrame) -> dict[str, int]:
    """Number of jobs per status, in the order finished, failed, unfinished, missing."""
    counts = jobs["status"].value_counts()
    return {status: int(counts.get(status, 0)) for status in STATUSES}


def _value(text: str):
    """An override's value as the config would hold it: a number where the text is one (``3``, ``0.1``,
    ``1e-2``), else ``yaml.safe_load``'s reading (``true`` a bool, ``null`` None); a list or mapping as its
    text, and the text itself where YAML cannot read it."""
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def override_parameters(overrides: list[str]) -> dict:
    """The ``section.key`` parameter columns of a run written before results.pkl carried them, from its
    overrides: every overridden key that is neither a config-group choice, a Hydra key, nor an identity column
    already (:data:`fairrun.training.results.IDENTITY_KEYS`), with its value read as YAML."""
    params = {}
    for item in overrides:
        if "=" not in item:
            continue
        key, value = item.split("=", 1)
        key = key.lstrip("+~")
        if "/" in key or key.startswith("hydra") or key in GROUP_CHOICES or key in IDENTITY_KEYS:
            continue
        params[key] = _value(value)
    return params


def fill_parameters(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` (rows of many runs) with the gaps of its parameter columns filled from each row's
    ``overrides`` (:func:`override_parameters`): a run of an older fairrun version, written before results.pkl
    carried ``method.lam`` or ``imbalance.size``, gets its overridden value there beside newer runs that have
    the column. A table without such columns is returned unchanged (no column is added)."""
    if results.empty or "overrides" not in results:
        return results
    parsed = [override_parameters(str(text).split()) for text in results["overrides"].fillna("")]
    for column in {key for row in parsed for key in row if key in results}:
        gaps = results[column].isna()
        if gaps.any():
            fill = pd.Series([row.get(column) for row in parsed], index=results.index)
            results[column] = results[column].where(~gaps, fill)
    return results


def override_columns(results: pd.DataFrame) -> pd.DataFrame:
    """One column per override key found in the ``overrides`` column (values numeric where all are).

    Lets ``--by trainer.lr`` group on a swept key. A leading ``+``, ``++`` or ``~`` is dropped from the key.
    Where results.pkl has the key as a column (``method.lam``, ``imbalance.size``: the validated config's
    value) or as an identity column (``imbalance.ratio`` is ``imbalance_ratio``), its values are used for
    the rows that have them; the override text fills the others (runs of older fairrun versions).
    """
    rows = []
    for text in results.get("overrides", pd.Series(dtype=str)).fillna(""):
        row = {}
        for item in str(text).split():
            if "=" in item:
                key, value = item.split("=", 1)
                row[key.lstrip("+~")] = value
        rows.append(row)
    frame = pd.DataFrame(rows, index=results.index)
    for column in frame.columns:
        numeric = pd.to_numeric(frame[column], errors="coerce")
        if numeric.notna().sum() == frame[column].notna().sum():
            frame[column] = numeric
        written = IDENTITY_KEYS.get(column, column)
        if written in results and written not in ("overrides", "job"):
            frame[column] = results[written].where(results[written].notna(), frame[column])
    return frame
