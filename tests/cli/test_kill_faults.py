"""Fault injection: ``kill -9`` of ``fairrun train`` just before and just after each of a run's atomic renames.

Every file fairrun writes in a run directory goes through a temporary file and one ``os.replace`` (results,
predictions, checkpoints, run_config.yaml, .hydra/, each checksum sidecar, ``done``). The driver
(:mod:`tests.helpers.kill_at_rename`) SIGKILLs a real CLI run at the K-th rename; the same command relaunched into the
same directory must then take over the dead run's lock, clean its temporaries, resume, and end with results
identical to an uninterrupted run's; no killed state may ever be read as complete (a damaged or half-written
file is either replaced or refused, never used).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fairrun import rundir
from tests.conftest import TINY, compose_train, run_forked
from tests.helpers.resume import assert_same_results

ARGS = [*TINY, "eval.bootstrap=50"]
CHUNKS = 4
REPO = Path(__file__).resolve().parents[2]


def _env() -> dict:
    return {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",  # the test process's 1 thread
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def kill_run(run_dir: Path, kill_at: int, when: str, log: Path) -> subprocess.CompletedProcess:
    """``fairrun train ARGS hydra.run.dir=run_dir`` in a fresh interpreter, SIGKILLed at rename ``kill_at``."""
    return subprocess.run([sys.executable, "-m", "tests.helpers.kill_at_rename", str(kill_at), when, str(log), "--",
                           *ARGS, f"hydra.run.dir={run_dir}"], cwd=run_dir.parent, env=_env(),
                          capture_output=True, text=True, timeout=300)


def forked_kill_run(run_dir: Path, kill_at: int, when: str, log: Path) -> subprocess.CompletedProcess:
    """``kill_run`` by a fork of the warm server of tests.conftest.run_fairrun (tests/helpers/fork_server.py): the
    same real process killed by SIGKILL, without ~3.5 s of imports per run."""
    return run_forked(["train", *ARGS, f"hydra.run.dir={run_dir}"], run_dir.parent, _env(), 300,
                      kill_at=kill_at, when=when, log=str(log))


def relaunch(run_dir: Path):
    """The same run relaunched into the same directory (in-process, 1 thread like the killed child), with the
    command line's overrides as a CLI relaunch has them (the parameter columns of results.pkl; a run killed
    before it wrote .hydra/overrides.yaml has no record of them)."""
    from unittest import mock

    from fairrun.config import validate_run_config
    from fairrun.training import run_training

    with mock.patch("fairrun.training.results.job_overrides", return_value=list(ARGS)):
        return run_training(validate_run_config(compose_train(list(ARGS))), run_dir)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted CLI run of ARGS, and the list of its renames (destination per rename)."""
    root = tmp_path_factory.mktemp("kill_reference")
    log = root / "renames.log"
    proc = kill_run(root / "run", 0, "after", log)
    assert proc.returncode == 0, proc.stderr[-3000:]
    renames = [line.split("\t", 1)[1] for line in log.read_text().splitlines()]
    return rundir.read_results(root / "run" / rundir.RESULTS), [Path(p).relative_to(root / "run") for p in renames]


def kind(path: Path) -> str:
    """What a stray temporary of ``path`` is: a checksum sidecar, a Hydra file, or the file itself (the
    sidecars and .hydra/ files are written by the same code, each kind once is enough for strays)."""
    if path.name.endswith(".sha256"):
        return "sidecar"
    return ".hydra" if path.parts[0] == ".hydra" else str(path)


def cases(renames: list[Path]) -> list[tuple[int, str]]:
    """After every rename; before the first rename of every kind of file (before rename K equals after K-1
    plus a stray temporary, so this covers each kind of stray once: every data file, one sidecar, one
    .hydra/ file)."""
    after = [(k, "after") for k in range(1, len(renames) + 1)]
    firsts = {}
    for k, path in enumerate(renames, start=1):
        firsts.setdefault(kind(path), k)
    return after + [(k, "before") for k in sorted(firsts.values())]


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_kill_at_any_rename_then_relaunch_gives_the_uninterrupted_results(reference, tmp_path, chunk):
    expected, renames = reference
    assert len(renames) >= 15, renames  # .hydra/, run_config, checkpoints, predictions, results, sidecars, done
    for kill_at, when in cases(renames)[chunk::CHUNKS]:
        case = f"kill -9 {when} rename {kill_at} ({renames[kill_at - 1]})"
        run_dir = tmp_path / f"{when}{kill_at}" / "run"
        run_dir.parent.mkdir()
        proc = forked_kill_run(run_dir, kill_at, when, run_dir.parent / "renames.log")
        assert proc.returncode == -9, (case, proc.returncode, proc.stderr[-2000:])
        assert (run_dir / "fairrun.lock").is_file(), case  # the dead run's lock is left behind
        results = relaunch(run_dir)
        assert_same_results(results, expected)
        assert_same_results(rundir.read_results(run_dir / rundir.RESULTS), expected)
        assert (run_dir / "done").is_file() and not (run_dir / "fairrun.lock").exists(), case
        strays = [p.name for p in run_dir.rglob(".*.tmp")]
        assert not strays, (case, strays)
        for name in ("results.pkl", "results.json", "predictions.pkl", "run_config.yaml", "checkpoints/best.pt",
                     "checkpoints/last.pt"):
            _, recorded = rundir.read_verified(run_dir / name)  # complete, and equal to its checksum record
            assert recorded, (case, name)
