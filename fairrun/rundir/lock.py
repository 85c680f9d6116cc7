"""One writer per run directory and per sweep directory: a lock file, and the refusals that protect them.

``fairrun train`` holds ``<run dir>/fairrun.lock`` from before it writes anything into a run directory until
it exits (normally, on an error, on Ctrl-C); a multirun's launching process holds ``<sweep dir>/fairrun.lock``
for the whole sweep. A second launch into a directory that is in use is refused with one paragraph naming the
holder (exit code 2), and writes nothing there.

The lock file is created with ``O_CREAT | O_EXCL``, which is atomic on local file systems and on NFS (v3 and
later), where ``fcntl``/``flock`` locks are unreliable. It records the holder's PID, host, the process' start
time (``/proc``, to tell a reused PID), the time it was taken and the command. A lock is *stale* when:

* its host is this host and its process is gone (or the PID now belongs to another process): it is taken over,
  with a log line;
* it was written by an earlier attempt of this SLURM job (same ``SLURM_JOB_ID``, lower
  ``SLURM_RESTART_COUNT``: a requeued job), on whichever node.

A lock of another host cannot be checked from here, so it is never taken over: the message says how to delete
it if the user is sure that process no longer runs. Taking over a stale lock goes through a short-lived
``fairrun.lock.takeover`` file (also ``O_EXCL``), so two launches that find the same stale lock cannot both
take it.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Optional

from fairrun.core.errors import ConfigError

log = logging.getLogger("fairrun")

LOCK = "fairrun.lock"
TAKEOVER = LOCK + ".takeover"
# An empty or unreadable lock younger than this is being written by its creator right now: wait for it.
_BEING_WRITTEN_S = 5.0
# A takeover file older than this was left by a process killed while taking over a stale lock.
_TAKEOVER_STALE_S = 30.0


class RunDirRefused(ConfigError):
    """This launch may not write into the directory (it is in use, or holds a run of another configuration).

    Reported like any user error (one paragraph, exit code 2), but never recorded in the directory
    (``error.txt``): the directory belongs to someone else's run."""

    record_in_run_dir = False


class DirBusy(RunDirRefused):
    """The directory's lock is held by another process (alive, or on another host)."""


def _host() -> str:
    return socket.gethostname()


def _proc_stat(pid: int) -> Optional[list[str]]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None where unavailable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def _start_ticks(pid: int) -> Optional[str]:
    """When process ``pid`` started (clock ticks since boot, /proc/<pid>/stat field 22), or None."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def process_alive(pid, start_ticks: Optional[str] = None) -> bool:
    """Whether process ``pid`` of this host still runs (not a zombie; the same process when its start time is
    known, not a later one that got the same PID)."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    except OSError:
        return False
    fields = _proc_stat(pid)
    if fields is not None:
        if fields[0] == "Z":  # exited, not yet reaped
            return False
        if start_ticks is not None and len(fields) > 19 and fields[19] != str(start_ticks):
            return False  # the PID was reused
    return True


def _read(path: Path) -> Optional[dict]:
    """The lock's record; {} when it is empty or unreadable (being written, or damaged); None when gone."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        record = json.loads(text)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _command() -> str:
    """This process' command line as the user typed it (``fairrun train ...``, not ``fairrun-train ...``)."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if name.startswith("fairrun-"):
        name = "fairrun " + name[len("fairrun-"):].replace("-", " ")
    return " ".join([name, *sys.argv[1:]])


def describe(holder: dict) -> str:
    """``PID 123 on host h (started 2026-01-01 12:00:00: fairrun train ...)``."""
    command = str(holder.get("command") or "").strip()
    if len(command) > 160:
        command = command[:157] + "..."
    started = holder.get("started") or "at an unknown time"
    return (f"PID {holder.get('pid', '?')} on host {holder.get('host', '?')} (started {started}"
            + (f": {command}" if command else "") + ")")


def stale_reason(holder: dict) -> Optional[str]:
    """Why the lock ``holder`` no longer protects anything, or None while its process may still run."""
    if holder.get("host") == _host():
        pid = holder.get("pid")
        if pid == os.getpid() and holder.get("token") not in {lock.token for lock in _HELD.values()}:
            return f"it names this very process (PID {pid}) but was not taken by it"
        if not process_alive(pid, holder.get("start_ticks")):
            return f"its process (PID {pid} on this host) is no longer running"
        return None
    job = os.environ.get("SLURM_JOB_ID")
    if job and str(holder.get("slurm_job_id")) == job:
        try:
            restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
            earlier = int(holder.get("slurm_restart_count") or 0) < restarts
        except ValueError:
            earlier = False
        if earlier:
            return f"it was written by an earlier attempt of SLURM job {job} (requeued since)"
    return None


class DirLock:
    """A lock held by this process on one directory (see :func:`acquire`)."""

    def __init__(self, path: Path, record: dict) -> None:
        self.path = path
        self.record = record
        self.token = record["token"]
        self.pid = os.getpid()
        self.depth = 1  # the same process may take it again (run_training inside fairrun train): counted

    def release(self) -> None:
        """Give the lock back (remove the file, if it is still this lock's); the last of nested holds does."""
        if self.pid != os.getpid():  # a forked child inherited the object: the lock is its parent's
            return
        self.depth -= 1
        if self.depth > 0:
            return
        _HELD.pop(str(self.path), None)
        current = _read(self.path)
        if current is not None and current.get("token") == self.token:
            try:
                self.path.unlink()
            except OSError as err:
                log.warning("could not remove the lock %s: %s", self.path, err)


_HELD: dict[str, DirLock] = {}  # lock path -> the lock this process holds there
_CREATING: dict[str, Path] = {}  # lock files this process has just created and is writing


def release_all() -> None:
    """Give back every lock this process holds (at exit; and before a worker whose launcher died exits),
    including one it is still writing (a signal handler may run between its creation and its record)."""
    for path in list(_CREATING.values()):
        Path(path).unlink(missing_ok=True)
    for lock in list(_HELD.values()):
        lock.depth = 1
        lock.release()


atexit.register(release_all)


def _take_over(path: Path, holder: dict) -> bool:
    """Remove the stale lock ``holder`` at ``path``, unless another process is taking it over right now."""
    guard = path.with_name(TAKEOVER)
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        if _age(guard) > _TAKEOVER_STALE_S:
            guard.unlink(missing_ok=True)
        else:
            time.sleep(0.05)
        return False
    try:
        os.write(fd, f"{os.getpid()} {_host()}\n".encode())
        os.close(fd)
        current = _read(path)
        if current is not None and current.get("token") == holder.get("token"):
            path.unlink(missing_ok=True)  # still the stale lock (not a fresh one taken meanwhile)
        return True
    finally:
        guard.unlink(missing_ok=True)


def acquire(directory: Path, what: str = "run", cure: str = "") -> DirLock:
    """Take ``<directory>/fairrun.lock`` for this process, or raise :class:`DirBusy` naming its holder.

    ``what`` names the directory in messages (``run``, ``sweep``); ``cure`` is the sentence that tells the
    user where else to launch. A lock this process already holds is taken again (and must be released as
    often).
    """
    directory = Path(directory)
    path = directory / LOCK
    held = _HELD.get(str(path))
    if held is not None and held.pid == os.getpid():
        held.depth += 1
        return held
    record = {
        "pid": os.getpid(), "host": _host(), "start_ticks": _start_ticks(os.getpid()),
        "started": datetime.now().astimezone().isoformat(timespec="seconds"), "command": _command(),
        "what": what, "token": uuid.uuid4().hex,
    }
    if os.environ.get("SLURM_JOB_ID"):
        record.update(slurm_job_id=os.environ["SLURM_JOB_ID"],
                      slurm_restart_count=os.environ.get("SLURM_RESTART_COUNT", "0"))
    data = (json.dumps(record, indent=1) + "\n").encode()
    deadline = time.monotonic() + 30
    while True:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pass  # held, or left behind: see below
        except OSError as err:
            raise RunDirRefused(f"cannot create the lock file {path} of the {what} directory {directory}: "
                                f"{err.strerror or err} (fairrun writes nothing into a directory it cannot "
                                f"lock). Write somewhere writable: {cure}") from err
        else:
            _CREATING[str(path)] = path  # ours from now on, though not yet complete: see release_all
            try:
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as err:
                path.unlink(missing_ok=True)
                raise RunDirRefused(f"cannot write the lock file {path} of the {what} directory {directory}: "
                                    f"{err.strerror or err}. Write somewhere writable: {cure}") from err
            finally:
                _CREATING.pop(str(path), None)
            lock = DirLock(path, record)
            _HELD[str(path)] = lock
            return lock
        holder = _read(path)
        if holder is None:  # released meanwhile: try again
            continue
        if not holder:
            if _age(path) < _BEING_WRITTEN_S and time.monotonic() < deadline:
                time.sleep(0.1)  # its creator is writing it
                continue
            raise DirBusy(f"the {what} directory {directory} is locked by {path}, which cannot be read "
                          f"(empty or damaged), so fairrun cannot tell who holds it and writes nothing "
                          f"there. Either {cure} or, if you are sure no fairrun command writes into "
                          f"{directory}, delete {path} and launch again.")
        reason = stale_reason(holder)
        if reason is None:
            raise DirBusy(_busy_message(directory, path, holder, what, cure))
        if _take_over(path, holder):
            log.warning("fairrun: taking over the stale lock %s of %s: %s", path, describe(holder), reason)
        if time.monotonic() > deadline:
            raise DirBusy(f"could not take the lock {path} of the {what} directory {directory}: other "
                          f"processes keep taking it. Wait for them, or {cure}")


def _busy_message(directory: Path, path: Path, holder: dict, what: str, cure: str) -> str:
    same_host = holder.get("host") == _host()
    text = (f"the {what} directory {directory} is in use by another fairrun process: {describe(holder)} "
            f"holds its lock {path}. Two launches into one directory would mix their files, so this one "
            f"writes nothing there.")
    if same_host:
        text += f" Wait for that process to finish (or stop it: kill {holder.get('pid')}), or {cure}"
    else:
        text += (f" Wait for it to finish, or {cure} fairrun cannot check from this host ({_host()}) "
                 f"whether a process on {holder.get('host')} still runs: if you are sure it no longer does "
                 f"(e.g. that machine was shut down), delete {path} and launch again.")
    return text


@contextmanager
def hold(directory: Path, what: str = "run", cure: str = ""):
    """``with hold(run_dir):`` the directory's lock for the duration of the block (see :func:`acquire`)."""
    lock = acquire(directory, what, cure)
    try:
        yield lock
    finally:
        lock.release()


def holds_a_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` already holds (part of) a training run: results, done, run config, checkpoints."""
    return any((Path(run_dir) / name).exists()
               for name in ("done", "results.pkl", "results.json", "run_config.yaml", "checkpoints"))


def run_dir_cure(run_dir: Path) -> str:
    return f"launch into another run directory (hydra.run.dir=NEW_DIR; {run_dir} is the one in use)."


def sweep_dir_cure(sweep_dir: Path) -> str:
    return f"give this sweep a directory of its own (hydra.sweep.dir=NEW_DIR; {sweep_dir} is the one in use)."


# -- a run of another configuration --------------------------------------------------------------------

# What RunConfig.fingerprint leaves out: settings that do not change a run's results.
_NOT_FINGERPRINTED = ("resume", "eval_datasets", "gpu.num_workers", "gpu.data_on_device")


def _flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def config_differences(saved, new, limit: int = 4) -> str:
    """The keys whose values differ between two RunConfigs, e.g. ``trainer.lr=0.001 in the run, 0.1 now``."""
    old_values, new_values = _flat(saved.to_dict()), _flat(new.to_dict())
    missing = object()

    def shown(value) -> str:
        return "(absent)" if value is missing else json.dumps(value, default=str)

    differ = []
    for key in sorted(set(old_values) | set(new_values)):
        if any(key == skip or key.startswith(skip + ".") for skip in _NOT_FINGERPRINTED):
            continue
        before, after = old_values.get(key, missing), new_values.get(key, missing)
        if shown(before) != shown(after):
            differ.append(f"{key}={shown(before)} in the run, {shown(after)} now")
    if not differ:
        return "its recorded fingerprint differs"
    more = f"; and {len(differ) - limit} more key(s)" if len(differ) > limit else ""
    return "; ".join(differ[:limit]) + more


# -- a worker whose launcher died ---------------------------------------------------------------------

def parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``); False
    where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, int(sig), 0, 0, 0) == 0  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False
