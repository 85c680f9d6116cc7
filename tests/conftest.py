"""Shared test helpers: a tiny, fast run config and a way to call the `fairrun` CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import tempfile
from hydra import compose, initialize_config_module

# Decoded-image caches of test fixtures go to a throw-away folder, never to ~/.cache/fairrun
# (subprocesses started by run_fairrun inherit it).
os.environ["FAIRRUN_CACHE"] = tempfile.mkdtemp(prefix="fairrun-test-cache-")

# A run that takes a few seconds on 2 CPU cores.
# Under pytest-xdist (`pytest -n 2`) every worker trains with one thread, so two workers share two cores
# instead of oversubscribing them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

TINY_CNN = ["model.width=8", "model.blocks=2"]
TINY = [
    "dataset.n_train=600", "dataset.n_val=200", "dataset.n_test=300", "dataset.image_size=16",
    "trainer.epochs=2", "trainer.batch_size=64", "gpu=cpu", *TINY_CNN,
]


def fairrun_env() -> dict:
    """The environment of CLI subprocesses: a fixed thread count, so runs compare bit for bit."""
    return {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "2"}


def run_fairrun(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the fairrun CLI in a subprocess (as a user would) and capture its output."""
    return subprocess.run([sys.executable, "-m", "fairrun.cli", *args], cwd=cwd, env=fairrun_env(),
                          capture_output=True, text=True, timeout=timeout)


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
