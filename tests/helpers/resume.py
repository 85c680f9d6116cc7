"""A stand-in for Ctrl-C, shared by the tests that interrupt a run and resume it."""
from __future__ import annotations

from contextlib import contextmanager


class StopAfter:
    """Replaces ``fairrun.training.run.StopFlag``: requests a stop after ``n`` checks (one per training step)."""

    exit_code = 130

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    @property
    def requested(self) -> bool:
        self.calls += 1
        return self.calls > self.n

    @contextmanager
    def installed(self):
        yield self


def resume_after_interrupt(cfg, run_dir, monkeypatch, steps: int):
    """Train ``cfg`` into ``run_dir``, stopped (as by Ctrl-C) after ``steps`` steps, then resume it.

    Returns the resumed run's results; the interruption must raise ``Interrupted``.
    """
    import pytest

    import fairrun.training.run as train_module
    from fairrun.core.errors import Interrupted
    from fairrun.training import run_training

    monkeypatch.setattr(train_module, "StopFlag", lambda: StopAfter(steps))
    with pytest.raises(Interrupted):
        run_training(cfg, run_dir)
    monkeypatch.undo()
    return run_training(cfg, run_dir)


def assert_same_results(a, b) -> None:
    """Two results tables are equal exactly, except the run directory and the wall time."""
    import pandas as pd

    volatile = ["run_dir", "train_seconds"]
    pd.testing.assert_frame_equal(a.drop(columns=volatile), b.drop(columns=volatile), check_exact=True)
