"""method=dbvae: sampling weights from the VAE each epoch, the joint loss, the loop (files, resume, ERM's
first epoch), config errors, and the evidence on the shared rare-group set-up."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fairrun import rundir
from fairrun.config import validate_run_config
from fairrun.data.base import Batch, LabeledSplit
from fairrun.data.batches import Augmentation
from fairrun.core.errors import ConfigError
from fairrun.generative.vae import ConvVAE, vae_terms
from fairrun.methods import build_method
from fairrun.methods.base import Outputs, TrainingPlan
from fairrun.methods.dbvae import DbvaeConfig
from fairrun.training import run_training
from tests.conftest import compose_train
from tests.helpers.resume import assert_same_results, resume_after_interrupt

SMALL_VAE = ["method=dbvae", "method.latent_dim=4", "method.width=4"]


def make_method(num_classes=2, num_groups=2, **keys):
    cfg = DbvaeConfig(**keys)
    cfg.validate()
    return build_method(cfg, num_classes=num_classes, num_groups=num_groups)


class BrightnessEncoder(nn.Module):
    """A stand-in VAE: the latent mean is the image's mean brightness (0 for all images when ``constant``)."""

    latent_dim = 1

    def __init__(self):
        super().__init__()
        self.constant = False

    def encode(self, x):
        mu = x.mean(dim=(1, 2, 3))[:, None]
        return (mu * 0 if self.constant else mu), torch.zeros_like(mu)


def hand_split():
    """50 dark images of group A and 5 bright ones of group B (labels alternate)."""
    images = torch.cat([torch.full((50, 1, 4, 4), 10, dtype=torch.uint8),
                        torch.full((5, 1, 4, 4), 240, dtype=torch.uint8)])
    return LabeledSplit(name="train", images=images, y=torch.arange(55) % 2,
                        g=torch.tensor([0] * 50 + [1] * 5), group_names=["A", "B"], class_names=["no", "yes"])


def plan_for(split, batch_size=55):
    return TrainingPlan(train=split, batch_size=batch_size, epochs=3, lr=1e-3, seed=0,
                        device=torch.device("cpu"), augmentation=Augmentation())


def drawn_rows(method, plan, epoch, start_step=0):
    return torch.cat([b.index for b in method.epoch_batches(plan, epoch, start_step)])


# -- sampling ----------------------------------------------------------------------------------------

def test_sampling_recomputes_each_epoch_and_favours_rare_latents():
    split, method = hand_split(), make_method(alpha=0.0)
    method.prepare(split)
    assert isinstance(method.vae, ConvVAE) and method.extra_modules() == [method.vae]
    method.vae = BrightnessEncoder()
    plan = plan_for(split)
    # epoch 1: ERM's permutation (each row once); mass = the training shares
    assert sorted(drawn_rows(method, plan, 0).tolist()) == list(range(55))
    assert method.extra_results()["dbvae_mass[B]"] == pytest.approx(5 / 55)
    # epoch 2: 1-D latents in two bins (50/55 and 5/55): w ∝ 1/p -> each half of the mass, B 11x A's rows
    rows = drawn_rows(method, plan, 1)
    probs = method.probs.numpy()
    np.testing.assert_allclose(probs, [1 / 100] * 50 + [1 / 10] * 5)
    assert method.extra_results()["dbvae_mass[B]"] == pytest.approx(0.5)
    assert method.epoch_scalars()["dbvae/mass/B"] == pytest.approx(0.5)
    assert method.extra_results()["dbvae_weight_ratio"] == pytest.approx(10.0)
    assert (rows >= 50).float().mean() > 0.3  # 55 draws with replacement, half the mass on B
    # the VAE changed (every latent alike now): the next epoch's weights follow it ...
    method.vae.constant = True
    drawn_rows(method, plan, 2)
    assert method.probs_epoch == 2
    np.testing.assert_allclose(method.probs.numpy(), 1 / 55)
    assert method.extra_results()["dbvae_mass[B]"] == pytest.approx(5 / 55)
    # ... and a resume inside that epoch keeps its stored probabilities, whatever the VAE says now
    resumed = make_method(alpha=0.0)
    resumed.prepare(split)
    resumed.vae = BrightnessEncoder()  # would give B half the mass
    resumed.load_state_dict(method.state_dict())
    small = plan_for(split, batch_size=5)
    assert torch.equal(drawn_rows(resumed, small, 2, start_step=3), drawn_rows(method, small, 2)[15:])
    np.testing.assert_allclose(resumed.probs.numpy(), 1 / 55)


def test_alpha_large_is_near_uniform_and_positive_mode_reweights_positives_only():
    split = hand_split()
    method = make_method(alpha=1e6)
    method.prepare(split)
    method.vae = BrightnessEncoder()
    weights = method.sampling_weights(split, torch.device("cpu"))
    assert weights.max() / weights.min() < 1 + 1e-4
    positive = make_method(alpha=0.0, vae_on="positive")
    positive.prepare(split)
    positive.vae = BrightnessEncoder()
    weights = positive.sampling_weights(split, torch.device("cpu"))
    y = split.y.numpy()
    np.testing.assert_allclose(weights[y == 0], 1 / 55)  # negatives: uniform
    assert weights[y == 1].sum() == pytest.approx((y == 1).sum() / 55)  # positives keep their share
    assert weights.sum() == pytest.approx(1.0)
    bright_pos = weights[50:][y[50:] == 1]
    assert bright_pos.min() > weights[:50][y[:50] == 1].max()


# -- the objective -----------------------------------------------------------------------------------

def test_loss_is_ce_plus_weighted_per_pixel_vae_loss_and_positive_mode_masks():
    torch.manual_seed(0)
    method = make_method(latent_dim=3, width=4, vae_weight=0.5, beta=2.0)
    split = LabeledSplit(name="train", images=torch.zeros(4, 3, 16, 16, dtype=torch.uint8),
                         y=torch.tensor([0, 1, 0, 1]), g=torch.tensor([0, 0, 1, 1]), group_names=["A", "B"],
                         class_names=["no", "yes"])
    method.prepare(split)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    logits = torch.randn(4, 2)
    batch = Batch(x=x, y=split.y, g=split.g, index=torch.arange(4))
    outputs = Outputs(latent=torch.zeros(4, 1), logits=logits)
    state = torch.get_rng_state()
    loss = method.loss(outputs, batch)
    torch.set_rng_state(state)
    recon, mu, logvar = method.vae(x)
    sq, kl = vae_terms(x, recon, mu, logvar)
    vae_term = (sq + 2.0 * kl).mean() / (3 * 16 * 16)  # per pixel value, beta = 2
    expected = torch.nn.functional.cross_entropy(logits, batch.y) + 0.5 * vae_term
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    positive = make_method(latent_dim=3, width=4, vae_on="positive")
    positive.prepare(split)
    negatives = Batch(x=x[[0, 2]], y=torch.tensor([0, 0]), g=torch.tensor([0, 1]), index=torch.arange(2))
    value = positive.vae_loss(negatives.x, negatives.y)
    value.backward()
    assert value.item() == 0.0 and all(p.grad is None or not p.grad.any() for p in positive.vae.parameters())
    with pytest.raises(ConfigError, match="method.vae_on"):
        make_method(num_classes=3, vae_on="positive")


# -- in the training loop ----------------------------------------------------------------------------

def test_dbvae_trains_end_to_end_and_writes_its_columns(tiny_cfg, tmp_path):
    results = run_training(tiny_cfg(*SMALL_VAE), tmp_path)
    row = results.set_index("split").loc["test"]
    for column in ("dbvae_mass[A]", "dbvae_mass[B]", "dbvae_ess", "dbvae_weight_ratio"):
        assert np.isfinite(row[column]), column
    assert row["dbvae_mass[A]"] + row["dbvae_mass[B]"] == pytest.approx(1.0)
    assert 0 < row["dbvae_ess"] <= 1 and row["dbvae_weight_ratio"] >= 1
    ckpt = rundir.load_checkpoint(tmp_path / rundir.LAST)
    assert len(ckpt["extra_modules"]) == 1 and ckpt["extra_modules"][0]["to_stats.weight"].shape[0] == 8
    assert ckpt["method"]["probs"].shape == (600,) and ckpt["method"]["probs_epoch"] == 1


def test_first_epoch_trains_the_classifier_exactly_as_erm(tiny_cfg, tmp_path):
    # the VAE has its own parameters (Adam updates each parameter on its own gradient) and its own
    # seed, and epoch 1 uses ERM's permutation: the classifier after one epoch is ERM's, bit for bit
    erm = run_training(tiny_cfg("trainer.epochs=1"), tmp_path / "erm")
    dbvae = run_training(tiny_cfg("trainer.epochs=1", *SMALL_VAE), tmp_path / "dbvae")
    a, b = (rundir.load_checkpoint(tmp_path / d / rundir.BEST)["model"] for d in ("erm", "dbvae"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert erm.set_index("split").loc["test", "accuracy"] == dbvae.set_index("split").loc["test", "accuracy"]


def test_resume_inside_an_epoch_equals_uninterrupted(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg(*SMALL_VAE, "trainer.epochs=3")
    full = run_training(cfg, tmp_path / "full")
    resumed = resume_after_interrupt(cfg, tmp_path / "cut", monkeypatch, 14)  # epoch 2, step 4 of 10
    assert_same_results(full, resumed)


# -- configuration -----------------------------------------------------------------------------------

@pytest.mark.parametrize("override, key, accepted", [
    ("method.latent_dim=0", "method.latent_dim", ">= 1"),
    ("method.width=0", "method.width", ">= 1"),
    ("method.bins=0", "method.bins", ">= 1"),
    ("method.beta=-1", "method.beta", ">= 0"),
    ("method.vae_weight=-0.5", "method.vae_weight", ">= 0"),
    ("method.alpha=-1", "method.alpha", ">= 0"),
    ("method.combine=sum", "method.combine", "product, max"),
    ("method.vae_on=faces", "method.vae_on", "all, positive"),
    ("+method.depth=2", "method.depth", "latent_dim"),
])
def test_bad_values_name_the_key(override, key, accepted):
    with pytest.raises(ConfigError) as err:
        validate_run_config(compose_train(["method=dbvae", override]))
    assert key in str(err.value) and accepted in str(err.value), str(err.value)


def test_yaml_defaults_match_the_config_dataclass():
    assert validate_run_config(compose_train(["method=dbvae"])).method == DbvaeConfig()


# -- evidence ----------------------------------------------------------------------------------------
# tests/helpers/evidence.py's rare-group set-up (group B = 30 of 1,500 training images, 8 epochs) at 16 px for both
# methods (EVIDENCE_16PX; ~5 s per ERM run, ~10 s per DB-VAE run on one core), DB-VAE with the YAML
# defaults (latent_dim 32, combine max, alpha 0.001). DB-VAE never sees the group labels.
EVIDENCE_16PX = ("dataset.image_size=16",)
