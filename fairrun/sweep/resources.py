"""Each job's CPU threads and GPU: :class:`JobResources` (``hydra.callbacks.job_resources``) runs in the process
that runs the job, before CUDA starts; under ``hydra/launcher=local_parallel`` the jobs share the selected GPUs
through slots, and a worker stops when its launcher dies."""
from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
import time
from typing import Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from fairrun.core.errors import FairrunError, paragraph

log = logging.getLogger("fairrun")


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
        from fairrun.rundir.lock import release_all

        release_all()
        message = (f"fairrun: the launching process (PID {launcher}) is gone: local_parallel worker "
                   f"{os.getpid()} stops its job. Launch the same command again to resume the sweep.\n")
        os.write(2, message.encode())
    finally:
        os._exit(1)


def _launcher_gone() -> bool:
    from fairrun.rundir.lock import process_alive

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
    from fairrun.rundir.lock import _start_ticks, parent_death_signal

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
