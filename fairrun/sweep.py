"""Sweeps: the ``+sweep=...`` presets' method list, each job's failure handling, and the end-of-sweep summary.

* ``conf/sweep/*.yaml`` are Hydra sweeper params (``hydra.sweeper.params``); ``+sweep=methods`` lists the
  methods through the ``${fairrun_methods:}`` resolver (:func:`methods_resolver`, registered by
  :mod:`fairrun.resolvers` at start-up of every command), which keeps only the methods that suit the
  configured dataset and target.
* :func:`run_sweep_job` runs one job of a multirun: a failing job writes ``<job dir>/error.txt`` and returns,
  so the launcher goes on with the other jobs; Ctrl-C still stops the sweep.
* :class:`SweepSummary` (a Hydra callback, ``hydra.callbacks.sweep_summary`` in ``conf/train.yaml``) runs in
  the launching process at the end of a multirun, whatever the launcher: it reads every job directory of the
  sweep, prints how many jobs finished and failed, and makes the exit code 1 when any did not finish.
* :class:`JobResources` (``hydra.callbacks.job_resources``) gives each job of a multirun its CPU threads and, under
  ``hydra/launcher=local_parallel``, its GPU, in the process that runs the job, before CUDA starts.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from fairrun.resolvers import register_resolvers
from fairrun.errors import FairrunError, SweepFailed, paragraph

log = logging.getLogger("fairrun")

ERROR = "error.txt"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


# -- +sweep=methods -------------------------------------------------------------------------------

def describe_dataset(dataset) -> tuple[int, int]:
    """(classes of the target, protected groups) of a validated dataset config, from metadata only
    (on-disk datasets: the annotation files; synthetic: a handful of generated images)."""
    from fairrun.data.groups import check_attributes, group_names
    from fairrun.data.registry import DATASETS

    entry = DATASETS[dataset.name]
    if entry.read_table is None:  # synthetic: the attribute values do not depend on the split sizes
        from fairrun.data.synthetic import make_synthetic

        small = max(16, 4 * dataset.num_groups)
        values = make_synthetic(dataclasses.replace(dataset, n_train=small, n_val=small, n_test=small,
                                                    image_size=16, group_proportions=None,
                                                    label_group_corr=0.0))["train"].attribute_values
    else:
        from fairrun.data.files import table_and_splits

        values = table_and_splits(dataset, entry.read_table)[0].attribute_values
    check_attributes(values, dataset.target, dataset.protected)
    return len(values[dataset.target]), len(group_names(values, dataset.protected))


_METHODS_CACHE: dict[str, str] = {}


def methods_for(run_node: DictConfig) -> str:
    """The comma-separated method sweep for a composed ``fairrun train`` config (without ``hydra``)."""
    from fairrun.config import validate_run_config

    key = json.dumps(OmegaConf.to_container(run_node, resolve=False), sort_keys=True, default=str)
    if key in _METHODS_CACHE:
        return _METHODS_CACHE[key]
    run = validate_run_config(run_node)  # an invalid base config is reported as itself, not as "no method"
    try:
        num_classes, num_groups = describe_dataset(run.dataset)
    except FairrunError as err:
        log.warning("+sweep=methods: the dataset's metadata could not be read (%s); methods are not filtered by "
                    "the target's classes or the number of groups", " ".join(str(err).split()))
        num_classes = num_groups = None
    names, refused = suitable_methods(run_node, num_classes, num_groups)
    if not names:
        raise FairrunError("+sweep=methods: no method suits this configuration: " +
                           "; ".join(f"{name}: {why}" for name, why in refused.items()))
    for name, why in refused.items():
        log.info("+sweep=methods leaves out method=%s: %s", name, why)
    _METHODS_CACHE[key] = ",".join(names)
    return _METHODS_CACHE[key]


def _task_config_from_overrides(hydra_node: DictConfig) -> DictConfig:
    """Compose the task config again from ``hydra.overrides.task`` (sweeps and ``+sweep=`` left out): under
    ``--cfg hydra`` Hydra resolves the hydra node alone."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not GlobalHydra.instance().is_initialized():
        raise FairrunError("${fairrun_methods:} needs the composed fairrun train config (dataset, method, ...).")
    overrides = OverridesParser.create().parse_overrides(list(hydra_node.overrides.task))
    keep = [o.input_line for o in overrides if not o.is_sweep_override() and o.key_or_group != "sweep"]
    return compose(config_name=hydra_node.job.config_name, overrides=keep)


def suitable_methods(run_cfg, num_classes: int | None, num_groups: int | None) -> tuple[list[str], dict[str, str]]:
    """The registered methods that can train on ``run_cfg``'s dataset, target and settings.

    ``run_cfg`` is a composed ``fairrun train`` config without its ``hydra`` node (an OmegaConf DictConfig);
    each method is tried with its shipped defaults (``conf/method/<name>.yaml``) in place of ``run_cfg.method``:
    it suits when the whole run config validates (the method's own range checks and ``validate_run`` rules,
    e.g. DP-SGD refuses AMP) and the method accepts a target of ``num_classes`` classes and ``num_groups``
    protected groups (e.g. FairALM's TPR constraint needs a binary target); ``None`` skips that check.
    Presets whose file name differs from the method they configure (``dpsgd_study``) are not methods.

    Returns ``(names, refused)``: the suitable names, ``erm`` (the baseline) first, then alphabetically,
    and ``{name: reason}`` for the others.
    """
    from importlib import resources

    from omegaconf import OmegaConf

    from fairrun.config import validate_run_config
    from fairrun.errors import FairrunError
    from fairrun.methods import build_method
    from fairrun.methods.registry import METHODS, RUNTIME_NEEDS

    conf = resources.files("fairrun.conf") / "method"
    names = sorted(METHODS, key=lambda name: (name != "erm", name))
    suitable, refused = [], {}
    for name in names:
        option = conf / f"{name}.yaml"
        if not option.is_file():
            refused[name] = f"no conf/method/{name}.yaml"
            continue
        candidate = OmegaConf.create(OmegaConf.to_container(run_cfg, resolve=False))
        method_node = OmegaConf.create(option.read_text())
        method_node.pop("defaults", None)  # its trainer/model recipe (dpsgd) is composed by Hydra in the job
        candidate.method = method_node
        try:
            run = validate_run_config(candidate)
            if num_classes is not None and num_groups is not None:
                build_method(run.method, num_classes=num_classes, num_groups=num_groups)
                needs = RUNTIME_NEEDS.get(name)
                if needs and (num_classes, num_groups) != needs:
                    raise FairrunError(f"method={name} needs a {needs[0]}-class target and {needs[1]} protected "
                                       f"groups; this configuration has {num_classes} classes and {num_groups} "
                                       f"groups.")
        except FairrunError as err:
            refused[name] = " ".join(str(err).split())
            continue
        suitable.append(name)
    return suitable, refused


def methods_resolver(_root_: DictConfig) -> str:
    """``${fairrun_methods:}`` (``hydra.sweeper.params.method`` of conf/sweep/methods.yaml) for a root."""
    container = OmegaConf.to_container(_root_, resolve=False)
    container.pop("hydra", None)
    if "dataset" not in container and "hydra" in _root_:
        return methods_for(_task_config_from_overrides(_root_.hydra))
    return methods_for(OmegaConf.create(container))


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
        from fairrun.rundir_lock import acquire, sweep_dir_cure

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


# -- one job of a multirun: its CPU threads and GPU --------------------------------------------------

JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
_SLOT: dict = {}  # per worker process: {"dir": lock folder, "slot": k, "fd": the held lock file}


def usable_cores() -> int:
    """The cores this process may run on (SLURM's cgroup, taskset), not all the machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def visible_gpus() -> list[str]:
    """The launching process' GPUs as ``CUDA_VISIBLE_DEVICES`` entries (ids or UUIDs), counted without starting
    CUDA. Kept in ``FAIRRUN_GPU_TOKENS`` so that worker processes, which inherit it and then narrow their own
    ``CUDA_VISIBLE_DEVICES`` to one GPU, still see the whole list."""
    if "FAIRRUN_GPU_TOKENS" not in os.environ:
        import torch

        count = torch.cuda.device_count()  # through NVML where it can: CUDA is not initialised
        listed = os.environ.get("CUDA_VISIBLE_DEVICES")
        tokens = ([t.strip() for t in listed.split(",") if t.strip()][:count] if listed is not None
                  else [str(i) for i in range(count)])
        os.environ["FAIRRUN_GPU_TOKENS"] = ",".join(tokens)
    return [t for t in os.environ["FAIRRUN_GPU_TOKENS"].split(",") if t]


def selected_gpus(gpus) -> list[str]:
    """``hydra.callbacks.job_resources.gpus``: null = every visible GPU, else indices into them."""
    visible = visible_gpus()
    if gpus is None:
        return visible
    chosen = list(gpus)
    bad = [g for g in chosen if not isinstance(g, int) or isinstance(g, bool) or not 0 <= g < len(visible)]
    if bad:
        raise FairrunError(f"Invalid value for 'hydra.callbacks.job_resources.gpus': {chosen}. Accepted: null "
                           f"(every visible GPU) or a list of indices from 0 to {len(visible) - 1} "
                           f"({len(visible)} visible GPU(s): {', '.join(visible) or 'none'}).")
    return [visible[g] for g in chosen]


def parallel_jobs(gpus=None) -> int:
    """``${fairrun_parallel_jobs:<gpus>}``, local_parallel's default ``n_jobs``: one job per GPU, or 2 without."""
    return len(selected_gpus(None if gpus is None else list(gpus))) or 2


def slot_dir_name(launcher_pid, n_jobs) -> str:
    """The lock folder (in the temporary directory) of local_parallel's slots for one launching process."""
    return f"fairrun-slots-{os.getuid()}-{launcher_pid}-{n_jobs}"


def take_slot(lock_dir: str, slots: int) -> int:
    """This worker process' slot: the first free lock file ``slot-k`` in ``lock_dir``, held (flock) until the
    process ends. A worker keeps its slot, and so its GPU, for every job it runs; a dead worker frees it."""
    import fcntl

    if _SLOT.get("dir") == lock_dir:
        return _SLOT["slot"]
    if _SLOT:
        os.close(_SLOT.pop("fd"))
        _SLOT.clear()
    os.makedirs(lock_dir, exist_ok=True)
    for slot in range(slots):
        fd = os.open(os.path.join(lock_dir, f"slot-{slot}"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _SLOT.update(dir=lock_dir, slot=slot, fd=fd)
        return slot
    log.warning("local_parallel: all %d slots in %s are taken; this job shares slot 0", slots, lock_dir)
    return 0


def parallel_share(slot: int, n_jobs: int, gpus: list, threads_per_job: Optional[int], cores: int):
    """(GPU, CPU threads) of the worker in ``slot`` when ``n_jobs`` jobs run at once on ``cores`` cores and
    share the GPUs ``gpus`` (``CUDA_VISIBLE_DEVICES`` entries): slot k gets ``gpus[k % len(gpus)]`` (None
    without GPUs) and ``threads_per_job`` threads, or its share of the cores."""
    gpu = gpus[slot % len(gpus)] if gpus else None
    return gpu, int(threads_per_job or max(1, cores // n_jobs))


LAUNCHER_PID = "FAIRRUN_LAUNCHER_PID"  # local_parallel: the launching process, for its workers
_WATCH: dict = {}  # per worker process: launcher (PID), ticks (its start time), parent, thread
_ORPHANED = threading.Lock()


def _orphaned(launcher: int) -> None:
    """The launching process died (kill -9): give back this worker's run-directory locks and end the worker,
    so no orphan goes on training into the sweep unseen (a relaunch resumes the job from checkpoints/last.pt).
    Once per process (the watching thread and the signal handler may both get here); nothing buffered is
    written (the main thread may be inside a write to sys.stderr)."""
    _ORPHANED.acquire(timeout=5)
    try:
        from fairrun.rundir_lock import release_all

        release_all()
        message = (f"fairrun: the launching process (PID {launcher}) is gone: local_parallel worker "
                   f"{os.getpid()} stops its job. Launch the same command again to resume the sweep.\n")
        os.write(2, message.encode())
    finally:
        os._exit(1)


def _launcher_gone() -> bool:
    from fairrun.rundir_lock import process_alive

    return os.getppid() != _WATCH["parent"] or not process_alive(_WATCH["launcher"], _WATCH["ticks"])


def _watch() -> None:
    while True:
        time.sleep(0.25)
        if _launcher_gone():
            _orphaned(_WATCH["launcher"])


def _on_parent_death(signum, frame) -> None:
    """The kernel's signal (PR_SET_PDEATHSIG) that the thread which started this worker ended: the launcher
    dies (its threads end one by one, so this may come while the process is still there), or only that
    thread ended and the launcher goes on (then nothing happens)."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        if _launcher_gone():
            _orphaned(_WATCH["launcher"])
        time.sleep(0.02)


def watch_launcher() -> None:
    """In a local_parallel worker process (once): end the worker as soon as its launching process dies.

    The launcher is ``$FAIRRUN_LAUNCHER_PID`` (set by :class:`JobResources` before the workers start), else
    the parent. A daemon thread polls it (a changed ``getppid()``, or the PID gone, every 0.25 s); on Linux
    the kernel also signals the worker at once when its parent goes (``prctl(PR_SET_PDEATHSIG)``, with a
    real-time signal that nothing else sends)."""
    if _WATCH:
        return
    from fairrun.rundir_lock import _start_ticks, parent_death_signal

    parent = os.getppid()
    try:
        launcher = int(os.environ.get(LAUNCHER_PID) or parent)
    except ValueError:
        launcher = parent
    _WATCH.update(launcher=launcher, ticks=_start_ticks(launcher), parent=parent)
    death = getattr(signal, "SIGRTMIN", None)
    if death is not None and threading.current_thread() is threading.main_thread() and parent == launcher:
        death += 3
        if signal.getsignal(death) in (signal.SIG_DFL, None):
            signal.signal(death, _on_parent_death)
            parent_death_signal(death)
    if parent == 1 or _launcher_gone():
        _orphaned(launcher)  # gone before the watch began
    _WATCH["thread"] = threading.Thread(target=_watch, daemon=True, name="fairrun-launcher-watch")
    _WATCH["thread"].start()


class JobResources(Callback):
    """Before each job of a multirun (in the process that runs it): its CPU threads and, under
    ``hydra/launcher=local_parallel`` (Hydra's joblib launcher), its GPU; then one log line saying what it got.

    local_parallel: each worker process holds one slot ``k`` of ``n_jobs`` for its lifetime and runs on GPU
    ``gpus[k % len(gpus)]`` (``CUDA_VISIBLE_DEVICES``, set before the worker starts CUDA), so N jobs share M GPUs
    evenly; each job gets ``threads_per_job`` threads (default: usable cores // n_jobs), through
    ``torch.set_num_threads`` and ``OMP/MKL_NUM_THREADS``. Other launchers (basic, SLURM): without
    ``OMP_NUM_THREADS``, torch is kept to the cores the job may use (SLURM's ``cpus_per_task``).
    """

    def __init__(self, gpus=None, threads_per_job: Optional[int] = None) -> None:
        self.gpus = None if gpus is None else list(gpus)
        self.threads_per_job = threads_per_job

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        """Check ``gpus`` in the launching process (a callback's exceptions are only warnings in Hydra), and
        tell local_parallel's workers (through their environment) which process launched them."""
        if config.hydra.launcher.get("_target_") == JOBLIB_LAUNCHER:
            os.environ[LAUNCHER_PID] = str(os.getpid())
            try:
                selected_gpus(self.gpus)
            except FairrunError as err:

                print(paragraph(f"fairrun: error: {err}"), file=sys.stderr)
                raise SystemExit(2) from None

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        import torch

        launcher = config.hydra.launcher
        if launcher.get("_target_") == JOBLIB_LAUNCHER:
            watch_launcher()
            n_jobs = int(launcher.n_jobs)
            n_jobs = n_jobs if n_jobs > 0 else max(1, usable_cores() + 1 + n_jobs)  # joblib: -1 = every core
            # one set of slots per launching process (the loky workers' parent)
            lock_dir = os.path.join(tempfile.gettempdir(), slot_dir_name(os.getppid(), n_jobs))
            slot = take_slot(lock_dir, n_jobs)
            os.environ["FAIRRUN_JOB_SLOT"] = str(slot)
            gpu, threads = parallel_share(slot, n_jobs, selected_gpus(self.gpus), self.threads_per_job,
                                          usable_cores())
            if gpu is not None:
                if torch.cuda.is_initialized() and os.environ.get("CUDA_VISIBLE_DEVICES") != gpu:
                    log.warning("CUDA already started in this worker; it cannot move to GPU %s", gpu)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                os.environ[name] = str(threads)
            torch.set_num_threads(threads)
        elif self.threads_per_job:
            torch.set_num_threads(int(self.threads_per_job))
        elif "OMP_NUM_THREADS" not in os.environ and 0 < usable_cores() < torch.get_num_threads():
            torch.set_num_threads(usable_cores())
        log.info("job %s: %d CPU thread(s), CUDA_VISIBLE_DEVICES=%s%s", config.hydra.job.num,
                 torch.get_num_threads(), os.environ.get("CUDA_VISIBLE_DEVICES", "(not set: all)"),
                 f", slot {os.environ['FAIRRUN_JOB_SLOT']}" if "FAIRRUN_JOB_SLOT" in os.environ else "")


def failure_text(err: BaseException) -> str:
    """error.txt for an exception: one paragraph; for an unexpected exception also its traceback."""

    if isinstance(err, FairrunError):
        return paragraph(f"fairrun: error: {err}") + "\n"
    import torch

    if isinstance(err, torch.cuda.OutOfMemoryError):
        message = (f"out of GPU memory ({' '.join(str(err).split())[:300]}). Lower trainer.batch_size or "
                   f"trainer.eval_batch_size, pass gpu.data_on_device=false, or run fewer jobs per GPU "
                   f"(hydra.launcher.n_jobs).")
    else:
        message = f"unexpected {type(err).__name__}: {err}"
    trace = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return paragraph(f"fairrun: error: {message}") + "\n\n" + trace


def run_sweep_job(work: Callable[[], object], run_dir: Path, job_num, sweep_dir: Path) -> None:
    """Run one job of a multirun. A failure is written to ``<run dir>/error.txt`` and logged, and the job
    returns, so the sweep goes on; Ctrl-C or SIGTERM (after the job saved checkpoints/last.pt) stops the
    sweep with code 130 or 143."""
    from fairrun.errors import Interrupted

    try:
        work()
    except Interrupted as err:
        print(paragraph(f"fairrun: interrupted: {err}. The sweep stopped; launch the same command again with "
                         f"hydra.sweep.dir={sweep_dir} to resume it (finished jobs are skipped)."),
              file=sys.stderr)
        raise SystemExit(err.exit_code) from None
    except Exception as err:  # noqa: BLE001 - every failure stays in its job
        text = failure_text(err)
        if not getattr(err, "record_in_run_dir", True):  # the directory holds another run: left untouched
            print(paragraph(f"fairrun: error: job {job_num} not run: {' '.join(str(err).split())}"),
                  file=sys.stderr)
            return
        where = run_dir / ERROR
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            where.write_text(text)
        except OSError as write_err:  # a full disk or read-only dir: the log line below is then the record
            where = f"not recorded in {where}: {write_err.strerror or write_err}"
        log.error("job %s failed (%s): %s", job_num, where, " ".join(text.split("\n\n")[0].split()))
    finally:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()


def _fairrun_methods(*, _root_):
    """``${fairrun_methods:}``: the comma-separated methods that suit the composed config."""
    return methods_resolver(_root_)


# this module's resolvers, registered on import (fairrun.cli imports it at start-up: see fairrun.resolvers)
register_resolvers({"fairrun_methods": _fairrun_methods, "fairrun_parallel_jobs": parallel_jobs})
