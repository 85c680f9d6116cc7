"""Runs whose numbers would be silently wrong stop with a clear error instead: a group or class with no
training rows, an exploding loss, infinite settings; a resumed run keeps its thread count."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from fairrun.core.errors import ConfigError, Interrupted, NonFiniteLoss
from fairrun.training import run_training
from tests.conftest import run_fairrun
from tests.helpers.fixtures_csv import make_csv_dataset
from tests.helpers.resume import assert_same_results


def test_a_group_rounded_away_by_imbalance_is_an_error(tiny_cfg, tmp_path):
    cfg = tiny_cfg("imbalance.ratio=0.999", "imbalance.size=200")
    with pytest.raises(ConfigError) as err:
        run_training(cfg, tmp_path / "run")
    message = str(err.value)
    assert "no rows of protected group(s) B" in message and "imbalance.ratio=0.999" in message
    assert "imbalance.size=200" in message and "Raise imbalance.size" in message
    assert not (tmp_path / "run" / "results.pkl").exists()


def test_ratio_one_leaves_the_minority_out_on_purpose(tiny_cfg, tmp_path):
    """The imbalance study's first ratio, 1, trains on the majority group alone: allowed and recorded."""
    test = run_training(tiny_cfg("imbalance.ratio=1", "trainer.epochs=1"), tmp_path / "run").iloc[1]
    assert test["imbalance_ratio"] == 1.0 and test["n_train[B]"] == 0 and test["n_train[A]"] > 0


def test_a_target_with_one_class_is_an_error_from_the_shell(tmp_path):
    csv = make_csv_dataset(tmp_path / "data", n=40, with_split=False)
    frame = pd.read_csv(csv)
    frame.assign(smiling=1).to_csv(csv, index=False)
    proc = run_fairrun("train", "dataset=csv", f"dataset.csv={csv}", "dataset.target=smiling",
                       "dataset.protected=gender", "dataset.image_size=16", "trainer.epochs=1", "gpu=cpu",
                       "model.width=8", "model.blocks=2", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "all but one class of target 'smiling'" in proc.stderr
    assert not (tmp_path / "run" / "results.pkl").exists()


def test_an_exploding_finite_loss_stops_like_a_nan_loss(tiny_cfg, tmp_path):
    cfg = tiny_cfg("trainer.lr=1e9", "trainer.optimizer=sgd", "trainer.momentum=0")
    with pytest.raises(NonFiniteLoss, match=r"exploded to .* \(diverged\).*trainer.lr=1e\+09.*Lower trainer.lr"):
        run_training(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "results.pkl").exists()


@pytest.mark.parametrize("key", ["trainer.lr", "trainer.weight_decay"])
def test_infinite_optimiser_settings_are_refused(tiny_cfg, key):
    with pytest.raises(ConfigError, match=rf"{key}.*inf.*a finite number"):
        tiny_cfg(f"{key}=inf")


def test_a_resumed_run_keeps_the_thread_count_it_started_with(tiny_cfg, tmp_path, monkeypatch):
    """CPU kernels reduce in a thread-count-dependent order; a run resumed by a launcher with another
    thread count continues with the count in last.pt and equals the uninterrupted run."""
    previous = torch.get_num_threads()
    cfg = tiny_cfg("trainer.epochs=2")
    try:
        torch.set_num_threads(2)
        whole = run_training(cfg, tmp_path / "whole")
        torch.set_num_threads(2)
        import fairrun.training.run as train_module
        from tests.helpers.resume import StopAfter
        monkeypatch.setattr(train_module, "StopFlag", lambda: StopAfter(3))
        with pytest.raises(Interrupted):
            run_training(cfg, tmp_path / "resumed")
        monkeypatch.undo()
        torch.set_num_threads(1)  # the relaunch comes from a launcher with one thread per job
        resumed = run_training(cfg, tmp_path / "resumed")
        assert torch.get_num_threads() == 1  # the process's own count is given back afterwards
    finally:
        torch.set_num_threads(previous)
    assert (whole["torch_threads"] == 2).all() and (resumed["torch_threads"] == 2).all()
    assert_same_results(whole, resumed)


def test_a_model_that_never_left_chance_is_flagged(tiny_cfg, tmp_path, caplog):
    """A near-chance model closes every gap; the run says so instead of reporting it silently."""
    import logging

    cfg = tiny_cfg("trainer.lr=1e-9", "trainer.epochs=1")
    with caplog.at_level(logging.WARNING, logger="fairrun"):
        run_training(cfg, tmp_path / "run")
    assert "validation accuracy never left chance" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fairrun"):
        run_training(tiny_cfg("dataset.target=glasses", "trainer.epochs=3", "trainer.lr=0.01"), tmp_path / "ok")
    assert "never left chance" not in caplog.text
