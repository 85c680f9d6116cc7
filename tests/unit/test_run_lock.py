"""One writer per run directory (fairrun/rundir/lock.py): the lock file, stale locks, and refused launches
that leave the run directory untouched (its .hydra/ and run_config.yaml included)."""
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from fairrun.rundir.lock import LOCK, DirBusy, _start_ticks, acquire, hold, process_alive
from tests.conftest import TINY, fairrun_env, run_fairrun


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not process_alive(proc.pid)
    return proc.pid


def _write_lock(directory: Path, **fields) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    record = {"pid": 1, "host": socket.gethostname(), "started": "2026-01-01T12:00:00+00:00",
              "command": "fairrun train seed=0", "token": "t" * 32, **fields}
    (directory / LOCK).write_text(json.dumps(record))
    return directory / LOCK


def test_the_lock_names_its_holder_and_is_released(tmp_path):
    with hold(tmp_path / "run", "run", "launch elsewhere.") as lock:
        record = json.loads((tmp_path / "run" / LOCK).read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        assert record["started"] and record["token"] == lock.token
        with hold(tmp_path / "run"):  # the same process again (fairrun train, then run_training): nested
            pass
        assert (tmp_path / "run" / LOCK).exists()
    assert not (tmp_path / "run" / LOCK).exists()
    with pytest.raises(RuntimeError), hold(tmp_path / "run"):  # released on an error too
        raise RuntimeError
    assert not (tmp_path / "run" / LOCK).exists()


def test_a_live_holder_is_refused_a_dead_or_reused_one_taken_over(tmp_path, caplog):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = _write_lock(tmp_path / "live", pid=sleeper.pid, start_ticks=_start_ticks(sleeper.pid))
        with pytest.raises(DirBusy) as err:
            acquire(tmp_path / "live", "run", "launch into another run directory.")
        text = " ".join(str(err.value).split())
        assert f"PID {sleeper.pid} on host {socket.gethostname()}" in text and "fairrun train seed=0" in text
        assert f"kill {sleeper.pid}" in text and "launch into another run directory" in text
        assert json.loads(live.read_text())["pid"] == sleeper.pid  # untouched
        # the same PID, but a process that started at another time: the PID was reused, the lock is stale
        _write_lock(tmp_path / "reused", pid=sleeper.pid, start_ticks="1")
        if _start_ticks(sleeper.pid) is not None:
            acquire(tmp_path / "reused").release()
    finally:
        sleeper.kill()
        sleeper.wait()
    dead = _dead_pid()
    _write_lock(tmp_path / "stale", pid=dead)
    with caplog.at_level(logging.WARNING, logger="fairrun"):
        lock = acquire(tmp_path / "stale")
    assert json.loads((tmp_path / "stale" / LOCK).read_text())["pid"] == os.getpid()
    assert f"taking over the stale lock {tmp_path / 'stale' / LOCK}" in caplog.text
    assert f"PID {dead} on host" in caplog.text
    lock.release()


def test_a_lock_of_another_host_is_refused_with_the_way_to_remove_it(tmp_path):
    path = _write_lock(tmp_path / "run", host="node-17", pid=_dead_pid())
    with pytest.raises(DirBusy) as err:
        acquire(tmp_path / "run", "run", "launch into another run directory.")
    text = " ".join(str(err.value).split())
    assert "host node-17" in text and "cannot check from this host" in text
    assert f"delete {path} and launch again" in text and path.exists()
    # a requeued SLURM job takes over the lock of its own earlier attempt, on whichever node it ran
    _write_lock(tmp_path / "requeued", host="node-17", slurm_job_id="4242", slurm_restart_count="0")
    os.environ.update(SLURM_JOB_ID="4242", SLURM_RESTART_COUNT="1")
    acquire(tmp_path / "requeued").release()


RACE = """
import sys, time
from fairrun.rundir.lock import DirBusy, acquire
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
try:
    lock = acquire(sys.argv[1])
except DirBusy:
    print("busy")
else:
    print("won", flush=True)
    time.sleep(3)
    lock.release()
"""


def test_launches_racing_for_a_stale_lock_leave_exactly_one_holder(tmp_path):
    _write_lock(tmp_path / "run", pid=_dead_pid())
    start = time.time() + 2
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(tmp_path / "run"), str(start)],
                              stdout=subprocess.PIPE, text=True, env=fairrun_env()) for _ in range(5)]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outcomes == ["busy"] * 4 + ["won"], outcomes
    assert not (tmp_path / "run" / LOCK).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs gpu=cuda to fail")
def test_run_training_releases_the_lock_on_an_error(tiny_cfg, tmp_path):
    from fairrun.core.errors import FairrunError
    from fairrun.training import run_training

    with pytest.raises(FairrunError, match="gpu=cuda"):
        run_training(tiny_cfg("gpu=cuda"), tmp_path / "r")
    assert not (tmp_path / "r" / LOCK).exists()


def _snapshot(run_dir: Path) -> dict:
    files = [run_dir / "run_config.yaml", *sorted((run_dir / ".hydra").glob("*"))]
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended before {path} appeared: {proc.communicate()[1][-2000:]}"
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def test_one_writer_per_run_dir_and_refused_launches_write_nothing(tmp_path):
    """Launch A (seed 0) holds the run directory: B (seed 1) is refused while A runs (exit 2, naming A); A
    stopped with Ctrl-C releases it; a resume with another config is refused without rewriting
    run_config.yaml or .hydra/; A resumes and finishes with consistent files; and a relaunch with another lr
    is refused without rewriting .hydra/ (so fairrun report --by trainer.lr still says what the run used)."""
    run_dir = tmp_path / "D"
    args = [*TINY, "trainer.epochs=4", "trainer.lr=0.001", f"hydra.run.dir={run_dir}"]
    a = subprocess.Popen([sys.executable, "-m", "fairrun.cli", "train", *args, "seed=0"], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=fairrun_env())
    try:
        _wait_for(run_dir / LOCK, a)
        os.kill(a.pid, signal.SIGSTOP)  # A holds the lock, frozen: B meets it whatever the machine's speed
        try:
            b = run_fairrun("train", *args, "seed=1", cwd=tmp_path)
        finally:
            os.kill(a.pid, signal.SIGCONT)
        assert b.returncode == 2, b.stderr[-3000:]
        message = " ".join(b.stderr.split())
        assert "Traceback" not in b.stderr and f"the run directory {run_dir} is in use" in message, message
        assert f"PID {a.pid} on host {socket.gethostname()}" in message and "hydra.run.dir=NEW_DIR" in message
        assert a.poll() is None
        _wait_for(run_dir / "checkpoints" / "last.pt", a)
        a.send_signal(signal.SIGINT)  # Ctrl-C: last.pt saved, lock released
        _, err = a.communicate(timeout=240)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    assert a.returncode == 130, err[-3000:]
    assert not (run_dir / LOCK).exists() and not (run_dir / "done").exists()
    assert yaml.safe_load((run_dir / "run_config.yaml").read_text())["seed"] == 0
    assert "seed=0" in yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())

    # a refused resume (another seed) rewrites neither run_config.yaml nor .hydra/, and writes no error.txt
    before = _snapshot(run_dir)
    c = run_fairrun("train", *args, "seed=1", cwd=tmp_path)
    assert c.returncode == 2 and "Traceback" not in c.stderr, c.stderr[-3000:]
    message = " ".join(c.stderr.split())
    assert "already holds an unfinished run (checkpoints/last.pt) with a different configuration" in message
    assert "seed=0 in the run, 1 now" in message and "resume=false" in message
    assert _snapshot(run_dir) == before and not (run_dir / "error.txt").exists()
    assert not (run_dir / LOCK).exists()

    # A again: resumes and finishes; every file says seed 0
    again = run_fairrun("train", *args, "seed=0", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout + again.stderr
    results = pd.read_pickle(run_dir / "results.pkl")
    assert set(results["seed"]) == {0}
    assert yaml.safe_load((run_dir / "run_config.yaml").read_text())["seed"] == 0
    assert (run_dir / "done").exists() and not (run_dir / LOCK).exists()

    # another lr into the finished run: refused, .hydra/ untouched, the report still says 0.001
    before = _snapshot(run_dir)
    other_lr = [a for a in args if not a.startswith("trainer.lr=")]
    d = run_fairrun("train", *other_lr, "trainer.lr=0.1", "seed=0", cwd=tmp_path)
    assert d.returncode == 2 and "Traceback" not in d.stderr, d.stderr[-3000:]
    message = " ".join(d.stderr.split())
    assert "already holds a finished run with a different configuration" in message
    assert "trainer.lr=0.001 in the run, 0.1 now" in message
    assert _snapshot(run_dir) == before and not (run_dir / "error.txt").exists()
    from fairrun.report.cli import report_main

    assert report_main([str(run_dir), "--by", "trainer.lr", "--out", str(tmp_path / "report")]) == 0
    table = pd.read_csv(tmp_path / "report" / "table.csv")
    assert list(table["trainer.lr"]) == [0.001]
