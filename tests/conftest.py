"""Shared fixtures of the whole suite: a tiny, fast run config and a way to call the `fairrun` CLI.

The suite is laid out by layer: ``unit/`` (one module of fairrun at a time, no training beyond a few
steps), ``integration/`` (runs trained in-process: every method and model, checkpoints, resume),
``cli/`` (the `fairrun` command in subprocesses: sweeps, reports, faults), ``evidence/`` (seeds of a method
against ERM on tests/helpers/evidence.py's set-ups; marked ``slow``) and ``helpers/`` (dataset fixtures in
each dataset's official format, the evidence runner, the fault-injection driver). ``pytest -m "not slow"``
leaves the evidence out for a quick loop; CI runs everything.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import tempfile
from hydra import compose, initialize_config_module

# Decoded-image caches of test fixtures go to a throw-away folder, never to ~/.cache/fairrun
# (subprocesses started by run_fairrun inherit it). One per process, xdist workers included (a test may count
# its own cache misses); each process removes its own when its session ends.
_OWN_CACHE_DIR = os.environ["FAIRRUN_CACHE"] = tempfile.mkdtemp(prefix="fairrun-test-cache-")

# Runs of tests/helpers/evidence.py are shared by the xdist workers of one session (set here, in the process
# that starts them, so every worker inherits the same folder; see tests/helpers/evidence.py). A folder made here
# (about 250 MB of runs) is removed when the session ends; one given in the environment is kept.
_OWN_EVIDENCE_DIR = None
if "FAIRRUN_EVIDENCE_DIR" not in os.environ:
    _OWN_EVIDENCE_DIR = os.environ["FAIRRUN_EVIDENCE_DIR"] = tempfile.mkdtemp(prefix="fairrun-evidence-")


def pytest_collection_modifyitems(config, items):
    """Every test under tests/evidence/ is marked ``slow``, and the evidence tests are spread evenly through
    the run: they share ERM baselines trained once under a file lock (tests/helpers/evidence.py), so two
    pytest-xdist workers reaching them together would wait for each other instead of running other tests."""
    evidence = [item for item in items if Path(str(item.fspath)).parent.name == "evidence"]
    for item in evidence:
        item.add_marker(pytest.mark.slow)
    others = [item for item in items if Path(str(item.fspath)).parent.name != "evidence"]
    if evidence and others:
        step = len(others) / len(evidence)
        spread = []
        for i, item in enumerate(others):
            while len(spread) - i < len(evidence) and (len(spread) - i) * step <= i:
                spread.append(evidence[len(spread) - i])
            spread.append(item)
        spread += evidence[len(spread) - len(others):]
        items[:] = spread
    # The longest tests (a whole study each, about a minute) first, so that neither pytest-xdist worker is left
    # running one of them alone at the end.
    first = [item for item in items if "end_to_end_with_tiny" in item.nodeid]
    items[:] = first + [item for item in items if item not in first]


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_OWN_CACHE_DIR, ignore_errors=True)
    if _OWN_EVIDENCE_DIR and not os.environ.get("PYTEST_XDIST_WORKER"):
        shutil.rmtree(_OWN_EVIDENCE_DIR, ignore_errors=True)


# In-process training uses one CPU thread in every test, with or without pytest-xdist: CPU results
# depend on the thread count, so a number must not depend on how the suite is run (alone, `pytest -n 2`)
# or on what ran before in the same process. Set at import too, for module-scoped fixtures that train
# (they run before the autouse fixture below).
TEST_THREADS = 1
torch.set_num_threads(TEST_THREADS)


@pytest.fixture(autouse=True)
def _fixed_global_state():
    """Before each test: one torch thread. After it: torch's thread count and ``os.environ`` as they were
    (fairrun code run in-process, e.g. fairrun.sweep.JobResources, may change both), so no test sees
    what an earlier one left behind."""
    threads, environ = torch.get_num_threads(), dict(os.environ)
    torch.set_num_threads(TEST_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if dict(os.environ) != environ:
            os.environ.clear()
            os.environ.update(environ)


# A run that takes a few seconds on one CPU core.
TINY_CNN = ["model.width=8", "model.blocks=2"]
TINY = [
    "dataset.n_train=600", "dataset.n_val=200", "dataset.n_test=300", "dataset.image_size=16",
    "trainer.epochs=2", "trainer.batch_size=64", "gpu=cpu", *TINY_CNN,
]


def fairrun_env(threads: int = 1) -> dict:
    """The environment of CLI subprocesses: a fixed thread count, so runs compare bit for bit; one by default, as
    the in-process tests use, because two pytest-xdist workers each running 2-thread subprocesses oversubscribe
    2 cores (OpenMP's waiting threads then slow every run several times)."""
    return {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": str(threads)}


_FORK_SERVER: list = []
REPO = Path(__file__).resolve().parents[1]


def _fork_server() -> subprocess.Popen:
    """This process's warm fork server (tests/helpers/fork_server.py), started on first use, ended at exit."""
    import atexit
    import json

    if _FORK_SERVER and _FORK_SERVER[0].poll() is None:
        return _FORK_SERVER[0]
    env = {**fairrun_env(1), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    server = subprocess.Popen([sys.executable, "-m", "tests.helpers.fork_server"], env=env, cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert json.loads(server.stdout.readline()) == {"ready": True}
    _FORK_SERVER[:] = [server]
    atexit.register(lambda: (server.stdin.close(), server.wait(timeout=30)))
    return server


def run_fairrun(*args: str, cwd: Path, timeout: float = 300, threads: int = 1) -> subprocess.CompletedProcess:
    """Run the fairrun CLI in its own process (as a user would) and capture its output (``threads``: see
    :func:`fairrun_env`). The process is a fork of a warm server that has imported torch and fairrun once
    (tests/helpers/fork_server.py: ~3.5 s saved per command); ``FAIRRUN_TEST_FORK=0`` starts a fresh interpreter
    each time instead."""
    env = fairrun_env(threads)
    if os.environ.get("FAIRRUN_TEST_FORK", "1") == "0":
        return subprocess.run([sys.executable, "-m", "fairrun.cli", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
    return run_forked(args, cwd, env, timeout)


def run_forked(args, cwd: Path, env: dict, timeout: float, **extra) -> subprocess.CompletedProcess:
    """``fairrun ARGS`` in a fork of this process's warm server (tests/helpers/fork_server.py); ``extra``: the
    fault-injection keys ``kill_at``, ``when``, ``log``."""
    import json
    import signal

    server = _fork_server()
    with tempfile.TemporaryDirectory(prefix="fairrun-fork-") as folder:
        request = {"args": [str(a) for a in args], "cwd": str(Path(cwd).resolve()), "env": env, "timeout": timeout,
                   "out": os.path.join(folder, "out"), **extra}
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        answer = json.loads(server.stdout.readline())
    if answer["returncode"] == -signal.SIGALRM:
        raise subprocess.TimeoutExpired(["fairrun", *args], timeout, answer["stdout"], answer["stderr"])
    return subprocess.CompletedProcess(["fairrun", *args], answer["returncode"], answer["stdout"], answer["stderr"])


def run_fairrun_in_process(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``fairrun ARGS`` in this process (its exit code, stdout and stderr), for commands that print and exit
    (help, refusals): the same code path as the console script without a new interpreter (~5 s of imports and
    Hydra start-up each). Anything that trains belongs in :func:`run_fairrun`."""
    import contextlib
    import io

    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from fairrun.cli import run_command

    out, err, code, before = io.StringIO(), io.StringIO(), 0, os.getcwd()
    saved_argv = list(sys.argv)
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                run_command(list(args))
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        os.chdir(before)
        sys.argv = saved_argv
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None  # a later test must not see this command's launch directory
    return subprocess.CompletedProcess(["fairrun", *args], code, out.getvalue(), err.getvalue())


def compose_train(overrides: list[str]):
    """Compose `fairrun train`'s config with Hydra's compose API."""
    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


@pytest.fixture
def tiny_cfg():
    """A validated tiny RunConfig (for in-process training tests)."""
    from fairrun.config import validate_run_config

    def make(*extra: str):
        base = TINY if not any(e.startswith("model=") for e in extra) else \
            [o for o in TINY if o not in TINY_CNN]
        return validate_run_config(compose_train(base + list(extra)))

    return make
