"""Sweep directories (fairrun/sweep/summary.py): one sweep at a time, no other sweep into a directory that holds one,
a summary that counts a job finished only when its results read back, and local_parallel workers that stop
when their launcher is killed."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from fairrun.rundir.lock import LOCK, process_alive
from fairrun.sweep import job_status, slot_dir_name
from tests.conftest import fairrun_env, run_fairrun

TINY = ["dataset.n_train=300", "dataset.n_val=100", "dataset.n_test=200", "dataset.image_size=16",
        "trainer.epochs=1", "gpu=cpu", "model=logreg", "eval.bootstrap=0"]


def _mtimes(sweep: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in sorted(sweep.rglob("*")) if p.is_file() and p.name != LOCK}


def _popen(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fairrun.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=fairrun_env(), start_new_session=True)


def _damage_results(job: Path) -> None:
    """Truncate the job's results (the pickle, and the table fairrun reads back where there is one)."""
    for name in ("results.pkl", "results.json"):
        if (job / name).exists():
            data = (job / name).read_bytes()
            (job / name).write_bytes(data[:len(data) // 2])


def test_summary_counts_a_job_with_unreadable_results_as_failed(tmp_path):
    job = tmp_path / "7"
    job.mkdir()
    (job / "done").write_text("")
    (job / "results.pkl").write_bytes(b"\x80\x04\x95\x10\x00\x00")  # a truncated pickle
    status = job_status(job, ["seed=7"])
    assert status.state == "failed" and "results.pkl" in status.error, status
    from fairrun.report.collect import job_status as report_status

    assert report_status(job) == "failed"


def test_a_second_sweep_into_a_sweep_dir_is_refused_and_the_same_sweep_resumes(tmp_path):
    sweep = tmp_path / "S"
    a_args = ["train", "-m", *TINY, "seed=0,1", f"hydra.sweep.dir={sweep}"]
    a = _popen(*a_args, cwd=tmp_path)
    try:
        deadline = time.time() + 240
        while not (sweep / LOCK).exists():
            assert a.poll() is None and time.time() < deadline, a.communicate()[1][-3000:]
            time.sleep(0.02)
        os.killpg(a.pid, signal.SIGSTOP)  # sweep A runs (frozen): its directory is in use
        try:
            same = run_fairrun(*a_args, cwd=tmp_path)  # the identical sweep, at the same time
        finally:
            os.killpg(a.pid, signal.SIGCONT)
        _, a_err = a.communicate(timeout=300)
    finally:
        if a.poll() is None:
            os.killpg(a.pid, signal.SIGKILL)
            a.wait()
    assert same.returncode == 2 and "Traceback" not in same.stderr, same.stderr[-3000:]
    message = " ".join(same.stderr.split())
    assert f"the sweep directory {sweep} is in use" in message and f"PID {a.pid}" in message, message
    assert "hydra.sweep.dir=NEW_DIR" in message
    assert a.returncode == 0, a_err[-3000:]
    assert sorted(p.parent.name for p in sweep.glob("*/done")) == ["0", "1"] and not (sweep / LOCK).exists()

    # sweep B (other seeds) into A's directory: refused before anything is written; A's jobs stay A's
    before, multirun = _mtimes(sweep), (sweep / "multirun.yaml").read_text()
    b = run_fairrun("train", "-m", *TINY, "seed=2,3", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert b.returncode == 2 and "Traceback" not in b.stderr, b.stderr[-3000:]
    message = " ".join(b.stderr.split())
    assert f"the sweep directory {sweep} already holds another sweep" in message, message
    assert "seed=0,1" in message and "seed=2,3" in message and "hydra.sweep.dir=NEW_DIR" in message
    assert f"fairrun train -m {' '.join(TINY)} seed=0,1 hydra.sweep.dir={sweep}" in message
    assert _mtimes(sweep) == before and (sweep / "multirun.yaml").read_text() == multirun
    assert [yaml.safe_load((sweep / j / ".hydra" / "overrides.yaml").read_text())[-1] for j in "01"] == \
        ["seed=0", "seed=1"]

    # the same sweep again resumes it (nothing to do); with job 1's results damaged, the summary says so
    _damage_results(sweep / "1")
    again = run_fairrun(*a_args, cwd=tmp_path)
    assert again.returncode == 1, again.stderr[-3000:]
    assert "2 job(s), 1 finished (1 already before this launch), 1 failed" in again.stdout, again.stdout
    assert re.search(rf"failed: {re.escape(str(sweep / '1'))}: .*results", again.stdout), again.stdout
    assert not (sweep / LOCK).exists()


def _children(pid: int) -> set:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="lists processes through /proc")
def test_local_parallel_workers_stop_when_their_launcher_is_killed(tmp_path):
    sweep = tmp_path / "P"
    long = [a for a in TINY if not a.startswith("trainer.epochs")] + ["trainer.epochs=500"]
    run = _popen("train", "-m", *long, "seed=0,1", "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2",
                 f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    try:
        deadline = time.time() + 240
        while not ((sweep / "0" / LOCK).exists() and (sweep / "1" / LOCK).exists()):
            assert run.poll() is None and time.time() < deadline, run.communicate()[1][-3000:]
            time.sleep(0.05)
        workers = {int(yaml.safe_load((sweep / j / LOCK).read_text())["pid"]) for j in "01"}
        assert len(workers) == 2 and workers <= _children(run.pid)
        os.kill(run.pid, signal.SIGKILL)  # the launcher only, as the OOM killer or `kill -9 <pid>` would
        run.wait()
        deadline = time.time() + 15
        while any(process_alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(process_alive(pid) for pid in workers), "workers went on after their launcher died"
        # ... and gave their run directories' locks back on the way out
        assert not (sweep / "0" / LOCK).exists() and not (sweep / "1" / LOCK).exists()
    finally:
        try:
            os.killpg(run.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        shutil.rmtree(os.path.join(tempfile.gettempdir(), slot_dir_name(run.pid, 2)), ignore_errors=True)
