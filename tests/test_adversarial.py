"""method=adversarial: gradient reversal, adversary inputs, one-step min-max, resume, config, evidence."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fairrun import rundir
from fairrun.config import validate_run_config
from fairrun.errors import ConfigError
from fairrun.methods import Batch, Outputs, build_method
from fairrun.methods.adversarial import AdversarialConfig, grad_reverse, warmup_alpha
from fairrun.models.classifier import Classifier
from fairrun.train import run_training
from tests.conftest import compose_train
from tests.evidence import split_rows
from tests.resume import assert_same_results, resume_after_interrupt


def make_method(num_classes=2, num_groups=2, latent_dim=6, **keys):
    cfg = AdversarialConfig(**keys)
    cfg.validate()
    method = build_method(cfg, num_classes=num_classes, num_groups=num_groups)
    model = Classifier(nn.Flatten(), latent_dim, num_classes)
    assert method.adapt_model(model) is model
    return method, model


def batch_of(y, g, x):
    return Batch(x=x, y=torch.tensor(y), g=torch.tensor(g), index=torch.arange(len(y)))


# -- gradient reversal -----------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0, 2.5])
def test_gradient_reversal_is_identity_forward_and_flips_the_gradient_exactly(alpha):
    torch.manual_seed(0)
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, dtype=torch.float64)
    y = grad_reverse(x, alpha)
    assert torch.equal(y, x)
    (plain,) = torch.autograd.grad((torch.tanh(x) * w).sum(), x)
    (reversed_,) = torch.autograd.grad((torch.tanh(grad_reverse(x, alpha)) * w).sum(), x)
    assert torch.equal(reversed_, -alpha * plain)


def test_one_step_trains_the_adversary_to_predict_and_the_encoder_to_defeat_it():
    torch.manual_seed(0)
    method, model = make_method(alpha=0.7, adv_layers=1, adv_hidden=5)
    latent = torch.randn(8, 6, requires_grad=True)
    logits = model.head(latent)
    batch = batch_of([0, 1] * 4, [0, 0, 0, 1, 1, 1, 1, 0], torch.zeros(8, 1, 2, 2))
    method.loss(Outputs(latent=latent, logits=logits), batch).backward()
    # reference: the task loss and the adversary's loss on the same latent, without reversal
    latent2 = latent.detach().clone().requires_grad_(True)
    task = F.cross_entropy(model.head(latent2), batch.y)
    adv = F.cross_entropy(method.adversary(latent2), batch.g)
    adv_params = list(method.adversary.parameters())
    g_task = torch.autograd.grad(task, latent2, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv, [latent2, *adv_params])
    # the adversary descends its own loss; the representation gets the adversary's gradient x -alpha
    for param, ref in zip(adv_params, g_adv[1:]):
        torch.testing.assert_close(param.grad, ref)
    torch.testing.assert_close(latent.grad, g_task - 0.7 * g_adv[0])


def test_alpha_warms_up_linearly_then_stays():
    assert warmup_alpha(2.0, 0, 100, 0.0) == 2.0
    assert [warmup_alpha(2.0, s, 100, 0.2) for s in (0, 10, 19, 20, 99)] == [0.0, 1.0, 1.9, 2.0, 2.0]
    method, _ = make_method(alpha=2.0, warmup=0.5)
    method.on_step(25, 100)
    assert method.alpha_t == 1.0
    assert method.state_dict()["alpha_t"] == 1.0


# -- adversary inputs ------------------------------------------------------------------------------

@pytest.mark.parametrize("what, width", [("latent", 6), ("logits", 3), ("logits_label", 6)])
def test_adversary_input_shapes(what, width):
    torch.manual_seed(0)
    method, model = make_method(num_classes=3, num_groups=4, latent_dim=6, input=what, adv_layers=2)
    layers = [m for m in method.adversary if isinstance(m, nn.Linear)]
    assert layers[0].in_features == width and layers[-1].out_features == 4 and len(layers) == 3
    latent = torch.randn(5, 6)
    batch = batch_of([0, 1, 2, 2, 1], [0, 1, 2, 3, 3], torch.zeros(5, 1, 2, 2))
    outputs = Outputs(latent=latent, logits=model.head(latent))
    u = method.adversary_input(outputs, batch)
    assert u.shape == (5, width)
    if what == "logits_label":
        torch.testing.assert_close(u[:, 3:], F.one_hot(batch.y, 3).float())
    assert torch.isfinite(method.loss(outputs, batch))
    assert method.extra_modules() == [method.adversary]


def test_balanced_adversary_loss_is_the_mean_of_group_means():
    method, _ = make_method(adv_balance=True)
    adv_logits = torch.log(torch.tensor([[0.5, 0.5], [0.75, 0.25], [0.25, 0.75], [0.5, 0.5]]))
    g = torch.tensor([0, 0, 0, 1])
    ce = -torch.log(torch.tensor([0.5, 0.75, 0.25, 0.5]))
    expected = (ce[:3].mean() + ce[3]) / 2
    assert method.adversary_loss(adv_logits, g).item() == pytest.approx(expected.item(), rel=1e-6)
    plain, _ = make_method()
    assert plain.adversary_loss(adv_logits, g).item() == pytest.approx(ce.mean().item(), rel=1e-6)


# -- in the training loop --------------------------------------------------------------------------


def test_adversary_is_checkpointed_and_resume_is_exact(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg("method=adversarial", "method.warmup=0.3", "method.adv_balance=true")
    full = run_training(cfg, tmp_path / "full")
    ckpt = rundir.load_checkpoint(tmp_path / "full" / rundir.LAST)
    # the adversary's first layer: 64 hidden units x the TINY cnn's latent width (16)
    assert len(ckpt["extra_modules"]) == 1 and ckpt["extra_modules"][0]["0.weight"].shape == (64, 16)
    assert 0 <= full["adv_acc"].iloc[0] <= 1 and 0 <= full["adv_balanced_acc"].iloc[0] <= 1
    resumed = resume_after_interrupt(cfg, tmp_path / "cut", monkeypatch, 4)  # inside the warm-up
    assert_same_results(full, resumed)


# -- configuration errors --------------------------------------------------------------------------

@pytest.mark.parametrize("override, key, accepted", [
    ("method.input=pixels", "method.input", "latent, logits, logits_label"),
    ("method.alpha=-1", "method.alpha", ">= 0"),
    ("method.adv_hidden=0", "method.adv_hidden", ">= 1"),
    ("method.adv_layers=-1", "method.adv_layers", ">= 0"),
    ("method.warmup=1", "method.warmup", "[0, 1)"),
    ("method.adv_balance=maybe", "method.adv_balance", "bool"),
])
def test_bad_values_name_the_key(override, key, accepted):
    with pytest.raises(ConfigError) as err:
        validate_run_config(compose_train(["method=adversarial", override]))
    assert key in str(err.value) and accepted in str(err.value), str(err.value)


def test_yaml_defaults_match_the_config_dataclass():
    assert validate_run_config(compose_train(["method=adversarial"])).method == AdversarialConfig()


# -- evidence --------------------------------------------------------------------------------------
# Measured on tests/evidence.py (group B = 2% of training: ~1.3 B images per batch of 64), test rows,
# seeds 0, 1, 2. An adversary that sees so few B images is unstable: with the YAML defaults (latent,
# alpha=1) the classifier collapses to chance on 2 of 3 seeds, and logits_label did not lower eo_diff at
# any alpha tried (0.1, 0.3, 1; balanced or not). The demographic-parity adversary of Zhang et al. (on the
# logits) with a group-balanced loss is seed- and version-sensitive: alpha=0.1 lowered dp_diff on every
# seed with the packages of 2026-11-23 (0.253 -> 0.155) but not with those of 2026-12-04 (numpy 2.4.6,
# pandas 3.1.1, torch 2.14.1: seeds 0-4 ERM 0.184/0.394/0.242/0.452/0.028 ->
# 0.342/0.306/0.192/0.504/0.456). alpha=1 costs accuracy and gains no parity (dp_diff
# 0.332/0.422/0.304, accuracy 0.548/0.483/0.654). alpha=0.3 is the trade-off this test pins down:
# dp_diff 0.096/0.482/0.066 (mean 0.215) vs ERM 0.273, accuracy 0.717 vs ERM 0.759 — lower on two
# seeds of three, worse on seed 1.

def test_adversarial_on_logits_lowers_the_selection_rate_gap_over_erm():
    erm = split_rows([])
    adv = split_rows(["method=adversarial", "method.input=logits", "method.adv_balance=true",
                      "method.alpha=0.3"])
    assert adv["dp_diff"].mean() < erm["dp_diff"].mean() - 0.03
    assert adv["accuracy"].mean() > erm["accuracy"].mean() - 0.06  # not by collapsing to chance
