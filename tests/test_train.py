"""The training loop in-process: determinism, exact resume, imbalance, model options."""

import pandas as pd
import pytest

import fairrun.train as train_module
from fairrun.train import Interrupted, run_training
from tests.resume import StopAfter

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
    from fairrun.errors import ConfigError

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
    assert sum(c.startswith("acc[") and c.endswith("]") for c in results.columns) == 4
    assert sum(c.startswith("acc[") and c.endswith("]_lo") for c in results.columns) == 4


def test_erm_worst_group_accuracy_falls_as_the_group_becomes_rarer(tiny_cfg, tmp_path):
    """Through fairrun's own pipeline: imbalance sampling of a balanced pool, ERM, natural test set.

    Measured on seeds 0-3 (acc[B] at ratio 0.5 -> 0.98): 0.90 -> 0.64, 0.78 -> 0.51, 0.94 -> 0.52, 0.93 -> 0.43.
    """
    common = ["dataset.n_train=3000", "dataset.group_proportions=[0.5,0.5]", "dataset.image_size=32",
              "dataset.n_test=1000", "imbalance.size=1500", "trainer.epochs=8", "trainer.lr=0.002",
              "model.width=16", "model.blocks=3"]
    test = {}
    for ratio in (0.5, 0.98):
        results = run_training(tiny_cfg(*common, f"imbalance.ratio={ratio}"), tmp_path / str(ratio))
        test[ratio] = results.set_index("split").loc["test"]
    assert (test[0.5]["n_train[A]"], test[0.5]["n_train[B]"]) == (750, 750)
    assert (test[0.98]["n_train[A]"], test[0.98]["n_train[B]"]) == (1470, 30)
    assert test[0.98]["n[B]"] == test[0.5]["n[B]"] == 500  # the test set keeps its natural distribution
    assert test[0.5]["acc[B]"] > 0.75 and test[0.98]["acc[A]"] > 0.85
    assert test[0.98]["acc[B]"] < test[0.5]["acc[B]"] - 0.15
    assert test[0.98]["worst_group_acc"] < test[0.5]["worst_group_acc"] - 0.15
