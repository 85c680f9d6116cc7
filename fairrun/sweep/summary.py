"""The jobs of a sweep and the end-of-sweep summary: :class:`SweepSummary` (a Hydra callback,
``hydra.callbacks.sweep_summary`` in ``conf/train.yaml``) runs in the launching process at the end of a multirun,
whatever the launcher: it reads every job directory of the sweep, prints how many jobs finished and failed,
and makes the exit code 1 when any did not finish. It also holds the sweep directory's lock and refuses a
different sweep into the same directory."""
from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from fairrun.core.errors import FairrunError, SweepFailed, paragraph
from fairrun.sweep.resources import slot_dir_name

log = logging.getLogger("fairrun")

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


# -- the jobs of a sweep ---------------------------------------------------------------------------

def sweep_jobs(config: DictConfig) -> Optional[list[list[str]]]:
    """The override list of every job the basic sweeper launches for ``config`` (a multirun's composed config,
    with ``hydra``), in job-number order; None for another sweeper."""
    from fairrun.report.collect import expand_sweep

    sweeper = config.hydra.sweeper
    if sweeper.get("_target_") != BASIC_SWEEPER:
        return None
    params = OmegaConf.to_container(sweeper.params, resolve=True) if sweeper.get("params") else {}
    return expand_sweep(params, list(config.hydra.overrides.task))


@dataclass
class JobStatus:
    """One job of a sweep as its directory tells it."""

    overrides: list
    run_dir: Optional[Path]  # None: never started
    state: str  # finished | failed | unfinished | not started
    error: str = ""  # first paragraph of error.txt
    skipped: bool = False  # finished before this multirun started


@dataclass
class Summary:
    sweep_dir: Path
    jobs: list = field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(job.state == state for job in self.jobs)

    @property
    def ok(self) -> bool:
        return all(job.state == "finished" for job in self.jobs)

    def text(self) -> str:
        finished, failed = self.count("finished"), self.count("failed")
        other = len(self.jobs) - finished - failed
        skipped = sum(job.skipped for job in self.jobs)
        head = (f"fairrun: sweep {self.sweep_dir}: {len(self.jobs)} job(s), {finished} finished"
                + (f" ({skipped} already before this launch)" if skipped else "")
                + f", {failed} failed" + (f", {other} did not finish" if other else "") + ".")
        lines = [head]
        for job in self.jobs:
            if job.state == "failed":
                lines.append(f"  failed: {job.run_dir}: {job.error}")
            elif job.state == "unfinished":
                lines.append(f"  did not finish (no done marker, no error.txt: stopped from outside?): "
                             f"{job.run_dir}")
            elif job.state == "not started":
                lines.append(f"  not started: {' '.join(job.overrides)}")
        if not self.ok:
            lines.append(f"  Launch the same command again with hydra.sweep.dir={self.sweep_dir} to run those "
                         f"again: finished jobs are skipped, unfinished ones resume from checkpoints/last.pt.")
        lines.append(f"  One table of every run: fairrun report {self.sweep_dir}")
        return "\n".join(lines)


def job_dirs(sweep_dir: Path) -> dict[tuple, Path]:
    """Every job directory under ``sweep_dir`` (one or two levels down), keyed by its sorted overrides."""
    found = {}
    for pattern in ("*/.hydra/overrides.yaml", "*/*/.hydra/overrides.yaml"):
        for path in sorted(sweep_dir.glob(pattern)):
            try:
                overrides = yaml.safe_load(path.read_text()) or []
            except (OSError, yaml.YAMLError):
                continue
            found[tuple(sorted(map(str, overrides)))] = path.parent.parent
    return found


def job_status(run_dir: Optional[Path], overrides: list, started: float = 0.0, limit: int = 300) -> JobStatus:
    """What a job's directory says (:func:`fairrun.report.collect.job_status`), with the first paragraph of
    its error and whether it had finished before this launch (``started``)."""
    from fairrun.report.collect import error_summary
    from fairrun.report.collect import job_status as state_of

    if run_dir is None:
        return JobStatus(list(overrides), None, "not started")
    state = state_of(run_dir)
    if state == "failed":
        error = error_summary(run_dir).removeprefix("fairrun: error: ")
        return JobStatus(list(overrides), run_dir, state, error if len(error) <= limit else error[:limit - 3] + "...")
    skipped = state == "finished" and (run_dir / "done").stat().st_mtime < started - 1
    return JobStatus(list(overrides), run_dir, state, skipped=skipped)


def summarize(config: DictConfig, started: float = 0.0) -> Summary:
    """Read the directories of every job of the multirun described by ``config``."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    found = job_dirs(sweep_dir) if sweep_dir.is_dir() else {}
    expected = sweep_jobs(config)
    summary = Summary(sweep_dir)
    if expected is None:  # another sweeper: every job directory there
        summary.jobs = [job_status(path, list(key), started) for key, path in found.items()]
    else:
        summary.jobs = [job_status(found.get(tuple(sorted(job))), job, started) for job in expected]
    return summary


def _sweep_definition(hydra_node) -> dict:
    """What decides a multirun's jobs and their numbering: the command line's task overrides (in order) and
    the sweeper's params, as YAML writes them (interpolations such as ``${fairrun_methods:}`` unresolved)."""
    def plain(node):
        return yaml.safe_load(OmegaConf.to_yaml(node)) if isinstance(node, (DictConfig, ListConfig)) else node

    overrides = (hydra_node.get("overrides") or {}).get("task") or []
    params = (hydra_node.get("sweeper") or {}).get("params") or {}
    return {"overrides": [str(o) for o in plain(overrides) or []], "params": plain(params) or {}}


def check_same_sweep(config: DictConfig, sweep_dir: Path) -> None:
    """Raise FairrunError when ``sweep_dir`` already holds a sweep (its multirun.yaml) with other overrides:
    this launch would number other jobs 0, 1, ... and overwrite that sweep's job folders. The same sweep again
    (to resume it) passes."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return
    try:
        saved = _sweep_definition((yaml.safe_load(path.read_text()) or {}).get("hydra") or {})
    except (OSError, yaml.YAMLError, AttributeError, TypeError) as err:
        raise FairrunError(f"the sweep directory {sweep_dir} holds a multirun.yaml that cannot be read "
                           f"({err}), so fairrun cannot tell whether this launch is the same sweep; "
                           f"launching into it could overwrite its jobs. Give this sweep a directory of its "
                           f"own (hydra.sweep.dir=NEW_DIR).")
    now = _sweep_definition(config.hydra)
    if saved == now:
        return
    what = [f"overrides {' '.join(saved['overrides']) or '(none)'}; this launch: "
            f"{' '.join(now['overrides']) or '(none)'}"]
    if saved["params"] != now["params"]:
        what.append(f"sweeper params {json.dumps(saved['params'])}; this launch: {json.dumps(now['params'])}")
    same = " ".join(shlex.quote(o) for o in saved["overrides"])
    raise FairrunError(f"the sweep directory {sweep_dir} already holds another sweep ({path}: "
                       f"{'; '.join(what)}). Launching into it would give its job folders 0/, 1/, ... to "
                       f"other jobs and overwrite them, so nothing was launched. Give this sweep a directory "
                       f"of its own (hydra.sweep.dir=NEW_DIR); to resume the sweep that is there, launch it "
                       f"again with exactly its overrides, in the same order: fairrun train -m {same} "
                       f"hydra.sweep.dir={sweep_dir}")


class SweepSummary(Callback):
    """At the start of a multirun: the sweep directory's lock (one sweep at a time writes into it) and a
    refusal of a different sweep into a directory that holds one. At the end: print the jobs finished and
    failed; exit code 1 if any did not finish."""

    def __init__(self) -> None:
        self.started = 0.0
        self.lock = None

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        """Runs in the launching process before the sweeper writes multirun.yaml or any job starts. A
        callback's exceptions are only warnings in Hydra: a refusal exits here (code 2), with one
        paragraph."""
        from fairrun.rundir.lock import acquire, sweep_dir_cure

        self.started = time.time()
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            self.lock = acquire(sweep_dir, "sweep", sweep_dir_cure(sweep_dir))
            check_same_sweep(config, sweep_dir)
        except FairrunError as err:
            if self.lock is not None:
                self.lock.release()
                self.lock = None
            print(paragraph(f"fairrun: error: {err}"), file=sys.stderr)
            raise SystemExit(2) from None

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        try:
            self._summarize(config)
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None

    def _summarize(self, config: DictConfig) -> None:
        import shutil

        for lock_dir in Path(tempfile.gettempdir()).glob(slot_dir_name(os.getpid(), "*")):
            shutil.rmtree(lock_dir, ignore_errors=True)  # local_parallel's slot locks of this launch
        try:
            summary = summarize(config, self.started)
        except Exception as err:  # the summary must never hide the jobs' own outcome
            log.warning("fairrun: could not summarise the sweep: %s", err)
            return
        sys.stdout.flush()
        print(summary.text(), flush=True)
        if not summary.ok:
            raise SweepFailed(1)
