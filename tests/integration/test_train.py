"""The training loop in-process: determinism, exact resume, imbalance, model options."""

import pandas as pd
import pytest

import fairrun.training.run as train_module
from fairrun.core.errors import Interrupted
from fairrun.metrics import registry
from fairrun.training import run_training
from tests.helpers.resume import StopAfter

VOLATILE = ["run_dir", "train_seconds"]


def _metrics(results: pd.DataFrame) -> pd.DataFrame:
    return results.drop(columns=VOLATILE)


def test_same_seed_gives_identical_results(tiny_cfg, tmp_path):
    a = run_training(tiny_cfg(), tmp_path / "a")
    b = run_training(tiny_cfg(), tmp_path / "b")
    pd.testing.assert_frame_equal(_metrics(a), _metrics(b), check_exact=True)
    pa = pd.read_pickle(tmp_path / "a" / "predictions.pkl")
    pb = pd.read_pickle(tmp_path / "b" / "predictions.pkl")
    pd.testing.assert_frame_equal(pa, pb, check_exact=True)
    c = run_training(tiny_cfg("seed=1"), tmp_path / "c")
    assert not pa["y_score"].equals(pd.read_pickle(tmp_path / "c" / "predictions.pkl")["y_score"])
    assert c["seed"].iloc[0] == 1


@pytest.mark.parametrize("stop_after", [3, 10, 14])  # mid-epoch, mid-epoch 2, at an epoch boundary
def test_interrupted_then_resumed_equals_uninterrupted(tiny_cfg, tmp_path, monkeypatch, stop_after):
    cfg = tiny_cfg("trainer.epochs=3", "model=mlp", "model.hidden=[32]")  # mlp: dropout uses the RNG
    full = run_training(cfg, tmp_path / "full")
    monkeypatch.setattr(train_module, "StopFlag", lambda: StopAfter(stop_after))
    with pytest.raises(Interrupted):
        run_training(cfg, tmp_path / "cut")
    assert (tmp_path / "cut" / "checkpoints" / "last.pt").exists()
    monkeypatch.undo()
    resumed = run_training(cfg, tmp_path / "cut")
    pd.testing.assert_frame_equal(_metrics(full), _metrics(resumed), check_exact=True)


def test_resume_false_starts_over_and_changed_config_is_refused(tiny_cfg, tmp_path):
    from fairrun.core.errors import ConfigError

    run_training(tiny_cfg("trainer.epochs=1"), tmp_path / "r")
    with pytest.raises(ConfigError, match="different configuration"):
        run_training(tiny_cfg("trainer.epochs=2"), tmp_path / "r")
    again = run_training(tiny_cfg("trainer.epochs=2", "resume=false"), tmp_path / "r")
    assert again["epochs"].iloc[0] == 2


@pytest.mark.parametrize("model", ["logreg", "mlp"])
def test_every_model_family_trains(tiny_cfg, tmp_path, model):
    results = run_training(tiny_cfg(f"model={model}", "trainer.epochs=1"), tmp_path / model)
    assert results["model"].iloc[0] == model and results["accuracy"].between(0, 1).all()


def test_sgd_with_step_scheduler_and_intersectional_groups(tiny_cfg, tmp_path):
    results = run_training(tiny_cfg("trainer.optimizer=sgd", "trainer.scheduler=step", "trainer.lr=0.05",
                                    "dataset.protected=[group,glasses]"), tmp_path / "x")
    assert results["protected"].iloc[0] == "group+glasses"
    per_group = [registry.split_column(c) for c in results.columns]
    assert sum(key == f"acc[{registry.GROUP}]" and suffix is None for key, _, suffix in per_group) == 4
    assert sum(key == f"acc[{registry.GROUP}]" and suffix == "_lo" for key, _, suffix in per_group) == 4


BALANCED_POOL = ("imbalance.ratio=0.5",)  # tests/helpers/evidence.py's set-up with B half of the 1,500 images


def test_a_nan_loss_names_its_step_although_losses_are_read_back_in_windows(tiny_cfg, tmp_path, monkeypatch):
    """The step keeps its loss on the device; the read-back of the window still names the exact step, and
    the checkpoint of the last finished epoch is kept (nothing after the NaN is saved)."""
    import torch

    from fairrun import rundir
    from fairrun.core.errors import NonFiniteLoss
    from fairrun.training.loop import Trainer

    original = Trainer.train_step

    def nan_at_step_13(self, batch):
        result = original(self, batch)
        if self.state.global_step == 12:  # the 13th step: epoch 2 (10 steps per epoch), step 3
            result.loss = torch.full_like(result.loss, float("nan"))
        return result

    monkeypatch.setattr(Trainer, "train_step", nan_at_step_13)
    with pytest.raises(NonFiniteLoss, match=r"became nan at epoch 2, step 3 \(global step 13\).*is kept"):
        run_training(tiny_cfg("trainer.epochs=3"), tmp_path / "run")
    assert rundir.load_checkpoint(tmp_path / "run" / rundir.LAST)["loop"]["epoch"] == 1
    assert not (tmp_path / "run" / "results.pkl").exists()


def test_the_epoch_sums_are_read_back_exactly(tiny_cfg, tmp_path, monkeypatch):
    """Reading the window back every step or every SYNC_EVERY steps gives the same training loss history."""
    import fairrun.training.loop as loop
    from fairrun import rundir

    run_training(tiny_cfg("trainer.epochs=2"), tmp_path / "window")
    monkeypatch.setattr(loop, "SYNC_EVERY", 1)
    run_training(tiny_cfg("trainer.epochs=2"), tmp_path / "every")
    histories = [rundir.load_checkpoint(tmp_path / d / rundir.LAST)["loop"]["history"]
                 for d in ("window", "every")]
    assert histories[0] == histories[1]
