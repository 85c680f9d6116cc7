"""``trainer.select`` (the validation metric that picks best.pt) and ``trainer.patience`` (early stopping)."""
from __future__ import annotations

import logging
import math

import pytest

from fairrun import rundir
from fairrun.metrics import registry
from fairrun.training import run_training
from fairrun.training.loop import Trainer
from tests.helpers.resume import assert_same_results, resume_after_interrupt

FAST = ("model=mlp", "model.hidden=[32]", "trainer.lr=0.01")


def _history(run_dir) -> list[dict]:
    return rundir.load_checkpoint(run_dir / rundir.LAST)["loop"]["history"]


def _script(monkeypatch, column: str, values: list[float]) -> None:
    """Replace ``column`` of the validation metrics of successive evaluations by ``values``."""
    original, calls = Trainer.validate, []

    def scripted(self, writer):
        original(self, writer)
        self.val_metrics[column] = values[len(calls)]
        calls.append(column)
        return self.val_metrics[self.cfg.trainer.select], self.val_metrics["worst_group_acc"]

    monkeypatch.setattr(Trainer, "validate", scripted)


@pytest.mark.parametrize("select", ["worst_group_acc", "balanced_accuracy", "acc_gap"])
def test_the_kept_epoch_is_the_best_by_the_selected_metric(tiny_cfg, tmp_path, select):
    run_dir = tmp_path / select
    results = run_training(tiny_cfg(*FAST, "trainer.epochs=4", f"trainer.select={select}"), run_dir)
    history = _history(run_dir)
    values = [h[f"val_{select}"] for h in history]
    best = registry.best_index(select, values)  # higher or lower by the metric's direction, first of ties
    assert (results["selected_by"] == select).all()
    assert (results["best_epoch"] == history[best]["epoch"]).all()
    assert (results["selected_value"] == values[best]).all()
    assert rundir.load_checkpoint(run_dir / rundir.BEST)["epoch"] == history[best]["epoch"]


def test_a_gap_is_minimised_and_a_nan_value_is_never_best(tiny_cfg, tmp_path, monkeypatch):
    _script(monkeypatch, "acc_gap", [float("nan"), 0.3, float("nan"), 0.2, 0.25])
    row = run_training(tiny_cfg(*FAST, "trainer.epochs=5", "trainer.select=acc_gap"), tmp_path / "r").iloc[0]
    assert row["best_epoch"] == 4 and row["selected_value"] == 0.2 and row["selected_by"] == "acc_gap"


def test_the_selection_can_differ_from_accuracy(tiny_cfg, tmp_path, monkeypatch):
    """The same training, selected on accuracy and on worst-group accuracy, keeps different epochs when the
    two disagree (here by construction: worst-group accuracy peaks at epoch 1)."""
    _script(monkeypatch, "worst_group_acc", [0.9, 0.1, 0.2])
    by_worst = run_training(tiny_cfg(*FAST, "trainer.epochs=3", "trainer.select=worst_group_acc"),
                            tmp_path / "worst").iloc[0]
    monkeypatch.undo()
    by_acc = run_training(tiny_cfg(*FAST, "trainer.epochs=3"), tmp_path / "acc").iloc[0]
    accs = [h["val_acc"] for h in _history(tmp_path / "acc")]
    assert by_worst["best_epoch"] == 1 and by_worst["selected_value"] == 0.9
    assert by_acc["selected_by"] == "accuracy" and by_acc["best_epoch"] == 1 + accs.index(max(accs))
    assert by_acc["selected_value"] == max(accs)


def test_patience_stops_early_and_evaluates_the_kept_checkpoint(tiny_cfg, tmp_path, monkeypatch, caplog):
    _script(monkeypatch, "accuracy", [0.5, 0.7, 0.6, 0.65, 0.9, 0.95])
    caplog.set_level(logging.INFO, logger="fairrun")
    results = run_training(tiny_cfg(*FAST, "trainer.epochs=6", "trainer.patience=2"), tmp_path / "r")
    assert len(_history(tmp_path / "r")) == 4  # epochs 3 and 4 did not beat epoch 2
    assert rundir.load_checkpoint(tmp_path / "r" / rundir.LAST)["loop"]["stopped_early"]
    row = results.iloc[0]
    assert row["best_epoch"] == 2 and row["selected_value"] == 0.7 and row["epochs"] == 6
    assert rundir.is_done(tmp_path / "r") and set(results["split"]) >= {"val", "test"}
    assert any("early stop: 2 evaluations without a better validation accuracy" in r.getMessage()
               for r in caplog.records)


def test_without_patience_every_epoch_trains(tiny_cfg, tmp_path, monkeypatch):
    _script(monkeypatch, "accuracy", [0.9, 0.1, 0.1])
    row = run_training(tiny_cfg(*FAST, "trainer.epochs=3"), tmp_path / "r").iloc[0]
    assert len(_history(tmp_path / "r")) == 3 and row["best_epoch"] == 1


@pytest.mark.parametrize("steps", [7, 13])  # mid-epoch 1, mid-epoch 2 (patience can stop only after epoch 2)
def test_resume_with_select_and_patience_is_exact(tiny_cfg, tmp_path, monkeypatch, steps):
    cfg = tiny_cfg(*FAST, "trainer.epochs=5", "trainer.select=acc_gap", "trainer.patience=1")
    full = run_training(cfg, tmp_path / "full")
    resumed = resume_after_interrupt(cfg, tmp_path / "cut", monkeypatch, steps)
    assert_same_results(full, resumed)
    assert _history(tmp_path / "full") == _history(tmp_path / "cut")
    assert not math.isnan(full["selected_value"].iloc[0])
