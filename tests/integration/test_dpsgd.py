"""DP-SGD (Opacus): it learns, ε is exactly the accountant's, target ε is met, BatchNorm is fixed,
virtual batches and ghost clipping change nothing but memory/speed, resume is exact, bad keys are refused."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from opacus.accountants import PRVAccountant, RDPAccountant

from fairrun.methods import privacy
from fairrun.config import validate_run_config
from fairrun.core.errors import ConfigError
from fairrun.methods.dpsgd import PoissonBatches, physical_count
from fairrun.training import Trainer, run_training
from tests.conftest import TINY, TINY_CNN, compose_train
from tests.helpers.resume import assert_same_results, resume_after_interrupt

LINEAR = [o for o in TINY if o not in TINY_CNN]
# Logistic regression on 32 px synthetic faces, plain SGD: the set-up where DP-SGD visibly learns in seconds.
LEARNS = [*LINEAR, "model=logreg", "dataset.image_size=32", "dataset.group_proportions=[0.5,0.5]",
          "dataset.n_train=4000", "dataset.n_test=1000", "trainer.optimizer=sgd", "trainer.momentum=0",
          "trainer.lr=1.0", "trainer.epochs=8", "trainer.batch_size=128"]
SMALL = [*LINEAR, "model=logreg", "trainer.optimizer=sgd", "trainer.momentum=0", "trainer.lr=0.5",
         "trainer.epochs=2"]


def run(overrides, tmp_path, name="run"):
    cfg = validate_run_config(compose_train(overrides))
    return run_training(cfg, tmp_path / name).set_index("split", drop=False)


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dpsgd")
    return run([*LEARNS, "method=dpsgd", "method.noise_multiplier=0.7"], tmp)


def test_dpsgd_learns_and_writes_the_privacy_columns(learned, tmp_path):
    test = learned.loc["test"]
    assert test["accuracy"] > 0.57 and test["auc"] > 0.6, test[["accuracy", "auc"]]
    assert 0 < test["epsilon"] < 20
    assert test["delta"] == 1e-4  # largest power of ten below 1/N, N = 4,000 training images
    assert test["noise_multiplier"] == 0.7 and test["max_grad_norm"] == 1.0
    assert test["dp_accountant"] == "rdp"
    erm = run([*SMALL, "method=erm"], tmp_path)
    for column in ("epsilon", "delta", "noise_multiplier", "max_grad_norm"):
        assert math.isnan(erm.loc["test", column]), column  # non-private runs: NaN, same columns


def test_epsilon_is_exactly_the_accountants_for_the_steps_taken(learned):
    test = learned.loc["test"]
    n_train = int(sum(test[c] for c in learned.columns if c.startswith("n_train[")))
    steps_per_epoch = math.ceil(n_train / 128)
    assert test["dp_sample_rate"] == 128 / n_train
    # ε covers every step trained, whichever epoch's checkpoint is released.
    assert test["dp_steps"] == 8 * steps_per_epoch
    accountant = RDPAccountant()
    accountant.history = [(0.7, 128 / n_train, int(test["dp_steps"]))]
    assert test["epsilon"] == pytest.approx(accountant.get_epsilon(delta=test["delta"]), rel=1e-9)


def first_epoch_selected(monkeypatch):
    """Make validation prefer epoch 1, so the released checkpoint is not the last one trained."""
    real = Trainer.validate

    def validate(self, writer):
        accuracy, worst = real(self, writer)
        return 1.0 - 0.01 * self.state.epoch, worst

    monkeypatch.setattr(Trainer, "validate", validate)


def test_epsilon_covers_every_step_trained_when_an_earlier_epoch_is_kept(tmp_path, monkeypatch):
    """Selecting the best-validation checkpoint after seeing all of them is post-processing of the whole
    run: ε, dp_steps and the accountant history saved in best.pt count all epochs × steps per epoch."""
    first_epoch_selected(monkeypatch)
    results = run([*SMALL, "trainer.epochs=3", "method=dpsgd", "method.noise_multiplier=1.1"], tmp_path)
    test = results.loc["test"]
    assert test["best_epoch"] == 1 and test["epochs"] == 3
    steps = 3 * math.ceil(600 / 64)
    assert test["dp_steps"] == steps
    fresh = RDPAccountant()
    fresh.history = [(1.1, 64 / 600, steps)]
    assert test["epsilon"] == pytest.approx(fresh.get_epsilon(delta=test["delta"]), rel=1e-9)
    saved = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert sum(h[2] for h in saved["method"]["accountant"]["history"]) == steps
    # fairrun eval reports the same ε
    from hydra import compose, initialize_config_module

    from fairrun.evaluation.rerun import run_eval
    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        eval_cfg = compose(config_name="eval", overrides=[f"run_dir={tmp_path / 'run'}", "gpu=cpu"])
    again = run_eval(tmp_path / "run", eval_cfg).set_index("split").loc["test"]
    assert again["epsilon"] == pytest.approx(test["epsilon"], rel=1e-12) and again["dp_steps"] == steps


def test_epsilon_helper_matches_opacus_reference_values():
    # Opacus' own unit test: RDP, σ = 1.5, q = 0.04, 2,250 steps, δ = 1e-5 → ε = 7.32911117143.
    assert privacy.epsilon_for("rdp", 1.5, 0.04, 2250, 1e-5) == pytest.approx(7.32911117143, rel=1e-9)
    # TF-Privacy's README example with the improved RDP conversion: N = 60,000, batch 256, σ = 1.1, 60 epochs.
    steps = int(60 * 60_000 / 256)
    assert privacy.epsilon_for("rdp", 1.1, 256 / 60_000, steps, 1e-5) == pytest.approx(2.60, abs=0.06)
    prv = PRVAccountant()
    prv.history = [(1.1, 256 / 60_000, steps)]
    assert privacy.epsilon_for("prv", 1.1, 256 / 60_000, steps, 1e-5) == pytest.approx(prv.get_epsilon(1e-5))
    assert privacy.default_delta(30_000) == 1e-5 and privacy.default_delta(162_770) == 1e-6
    assert privacy.default_delta(100) == 1e-3


def test_target_epsilon_is_met(tmp_path):
    result = run([*SMALL, "method=dpsgd", "method.target_epsilon=3"], tmp_path)  # σ's default yields
    test = result.loc["test"]
    planned = 2 * math.ceil(600 / 64)
    spent = privacy.epsilon_for("rdp", test["noise_multiplier"], test["dp_sample_rate"], planned, test["delta"])
    assert 3 - 0.05 <= spent <= 3.0  # Opacus' search tolerance is 0.01
    assert test["epsilon"] <= 3.0 + 1e-9


def test_batchnorm_becomes_groupnorm_and_eval_reproduces(tmp_path):
    result = run([*TINY, "method=dpsgd", "trainer.epochs=1"], tmp_path)
    architecture = (tmp_path / "run" / "architecture.txt").read_text()
    assert "GroupNorm" in architecture and "BatchNorm" not in architecture.split("\n", 1)[1]
    assert "GroupNorm" in result.loc["test", "dp_model_changes"]
    from hydra import compose, initialize_config_module

    from fairrun.evaluation.rerun import run_eval
    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        eval_cfg = compose(config_name="eval", overrides=[f"run_dir={tmp_path / 'run'}", "gpu=cpu"])
    again = run_eval(tmp_path / "run", eval_cfg).set_index("split")
    assert again.loc["test", "accuracy"] == result.loc["test", "accuracy"]


def test_virtual_batches_and_ghost_clipping_give_the_same_model(tmp_path):
    """Without noise the update is deterministic: splitting a logical batch into physical ones
    (BatchMemoryManager) and ghost clipping must give the same parameters as one batch with hooks."""
    base = [*SMALL, "method=dpsgd", "method.noise_multiplier=0", "method.max_grad_norm=0.1", "trainer.epochs=1"]
    plain = run([*base, "method.grad_sample_mode=hooks"], tmp_path, "plain")
    split = run([*base, "method.grad_sample_mode=hooks", "method.physical_batch_size=16"], tmp_path, "split")
    ghost = run([*base, "method.grad_sample_mode=ghost", "method.physical_batch_size=16"], tmp_path, "ghost")
    scores = [pd.read_pickle(tmp_path / name / "predictions.pkl")["y_score"].to_numpy()
              for name in ("plain", "split", "ghost")]
    np.testing.assert_allclose(scores[1], scores[0], atol=1e-5)
    np.testing.assert_allclose(scores[2], scores[0], atol=1e-5)
    assert plain.loc["test", "dp_steps"] == split.loc["test", "dp_steps"] == ghost.loc["test", "dp_steps"]
    assert ghost.loc["test", "dp_grad_sample_mode"] == "ghost"


def test_poisson_batches_are_seeded_and_of_the_expected_size():
    rates = torch.full((1000,), 0.05, dtype=torch.float64)
    sampler = PoissonBatches(rates, steps=200, seed=3, epoch=1)
    sizes = [len(rows) for rows in sampler]
    assert abs(np.mean(sizes) - 50) < 2 and np.std(sizes) > 3  # variable sizes, mean q N
    again = PoissonBatches(rates, steps=200, seed=3, epoch=1, first_step=5)
    assert np.array_equal(next(iter(again)), sampler.draw(5))
    assert physical_count(0, 16) == 1 and physical_count(33, 16) == 3 and physical_count(33, None) == 1


def test_balanced_sampling_is_accounted_at_the_largest_rate(tmp_path):
    result = run([*SMALL, "method=dpsgd", "method.balance=over", "trainer.epochs=1"], tmp_path)
    test = result.loc["test"]
    counts = [test["n_train[A]"], test["n_train[B]"]]
    assert test["dp_sample_rate"] == pytest.approx(min(1.0, 64 / (2 * min(counts))))  # rare group's rate
    assert test["dp_sample_rate"] > 64 / sum(counts)


def test_tiny_batches_with_empty_poisson_samples_still_train(tmp_path):
    # batch_size 1 of 600: about a third of the Poisson batches are empty (noise-only steps).
    result = run([*SMALL, "method=dpsgd", "trainer.batch_size=1", "trainer.epochs=1", "trainer.lr=0.05"], tmp_path)
    assert result.loc["test", "dp_steps"] == 600 and np.isfinite(result.loc["test", "epsilon"])


def test_interrupted_private_run_resumes_exactly(tmp_path, monkeypatch):
    overrides = [*SMALL, "method=dpsgd", "method.physical_batch_size=24"]
    cfg = validate_run_config(compose_train(overrides))
    straight = run_training(cfg, tmp_path / "straight")
    resumed = resume_after_interrupt(cfg, tmp_path / "resumed", monkeypatch, steps=7)
    assert_same_results(straight, resumed)


@pytest.mark.parametrize("overrides, names", [
    (["method.noise_multiplier=1", "method.target_epsilon=5"], "noise_multiplier"),  # both σ and a target ε
    (["method.noise_multiplier=null"], "target_epsilon"),  # neither
    (["method.max_grad_norm=0"], "method.max_grad_norm"),
    (["method.balance=reweight"], "method.balance=reweight"),
    (["method.accountant=moments"], "method.accountant"),
    (["method.physical_batch_size=0"], "method.physical_batch_size"),
    (["gpu.amp=bf16"], "gpu.amp"),
])
def test_bad_keys_are_clear_errors(overrides, names):
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        validate_run_config(compose_train([*SMALL, "method=dpsgd", *overrides]))


def test_auto_mode_falls_back_when_opacus_refuses_a_mode(monkeypatch):
    import opacus.grad_sample.utils as grad_sample_utils

    import fairrun.methods.dpsgd as dpsgd
    from opacus.grad_sample.utils import wrap_model as real_wrap

    def refusing(model, mode, **kwargs):
        if mode == "ghost":
            raise NotImplementedError("no ghost clipping for this layer")
        return real_wrap(model, mode, **kwargs)

    monkeypatch.setattr(grad_sample_utils, "wrap_model", refusing)  # dpsgd imports it when it runs
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    _, mode = dpsgd.per_example_module(model, "ghost", 1.0, fallback=True)
    assert mode == "hooks"
    with pytest.raises(ConfigError, match="grad_sample_mode=ghost"):
        dpsgd.per_example_module(torch.nn.Sequential(torch.nn.Linear(3, 2)), "ghost", 1.0, fallback=False)
