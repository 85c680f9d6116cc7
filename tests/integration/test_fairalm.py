"""method=fairalm: constraint surrogates, primal objective, multiplier updates, resume, config, evidence."""

import pytest
import torch
import torch.nn.functional as F

from fairrun.config import validate_run_config
from fairrun.core.errors import ConfigError
from fairrun.methods import Batch, Outputs, build_method
from fairrun.methods.fairalm import FairALMConfig
from fairrun.training import run_training
from tests.conftest import compose_train
from tests.helpers.resume import assert_same_results, resume_after_interrupt


def make_method(num_classes=2, num_groups=2, **keys):
    cfg = FairALMConfig(**keys)
    cfg.validate()
    return build_method(cfg, num_classes=num_classes, num_groups=num_groups)


def batch_of(y, g):
    y, g = torch.tensor(y), torch.tensor(g)
    return Batch(x=torch.zeros(len(y), 1, 2, 2), y=y, g=g, index=torch.arange(len(y)))


def binary_outputs(p1):
    p1 = torch.tensor(p1, dtype=torch.float64)
    logits = torch.stack([torch.log(1 - p1), torch.log(p1)], dim=1).float()
    return Outputs(latent=torch.zeros(len(p1), 3), logits=logits)


# p(y=1): group 0 positives 0.9, 0.7 (soft FNR 0.2), group 1 positives 0.4 (soft FNR 0.6); negatives ignored
P1 = [0.9, 0.7, 0.2, 0.4, 0.5]
Y = [1, 1, 0, 1, 0]
G = [0, 0, 0, 1, 1]


def test_deo_constraint_is_the_soft_tpr_gap():
    method = make_method()
    assert method.constraints(binary_outputs(P1), batch_of(Y, G)) == [pytest.approx(0.2 - 0.6, abs=1e-6)]
    ce = make_method(surrogate="cross_entropy")
    expected = (-torch.log(torch.tensor([0.9, 0.7]))).mean() + torch.log(torch.tensor(0.4))
    assert ce.constraints(binary_outputs(P1), batch_of(Y, G)) == [pytest.approx(expected.item(), rel=1e-5)]


def test_ddp_constraint_is_the_soft_accuracy_gap():
    # p(true class): group 0: 0.9, 0.7, 0.8 -> soft error 0.2; group 1: 0.4, 0.5 -> 0.55
    method = make_method(constraint="ddp")
    assert method.constraints(binary_outputs(P1), batch_of(Y, G)) == [pytest.approx(0.2 - 0.55, abs=1e-6)]


def test_primal_objective_and_multiplier_updates():
    eta = 0.5
    method = make_method(eta=eta)
    out, batch = binary_outputs(P1), batch_of(Y, G)
    ce = F.cross_entropy(out.logits, batch.y).item()
    mu0, mu1, c = 0.2, 0.6, -0.4
    # step 0: λ = 0, objective CE + η μ_0 + η μ_1, no dual step yet
    method.on_step(0, 10)
    assert method.loss(out, batch).item() == pytest.approx(ce + eta * (mu0 + mu1), rel=1e-5)
    assert method.lam == [0.0]
    # step 1: dual step first (λ = η c), then the objective with that λ
    method.on_step(1, 10)
    total = method.loss(out, batch).item()
    assert method.lam == [pytest.approx(eta * c, abs=1e-6)]
    lam = eta * c
    assert total == pytest.approx(ce + (lam + eta) * mu0 - (lam - eta) * mu1, rel=1e-5)
    method.on_step(2, 10)
    method.loss(out, batch)
    assert method.lam == [pytest.approx(2 * eta * c, abs=1e-6)]


def test_a_grown_multiplier_trades_the_better_groups_tpr_for_the_worse_groups():
    batch = batch_of(Y, G)
    margins = {}
    for lam in (0.0, -3.0):  # group 1 has the higher soft FNR (0.6 vs 0.2), so λ grows negative
        method = make_method(eta=1.0)
        method.lam = [lam]
        out = binary_outputs(P1)
        out.logits.requires_grad_(True)
        method.loss(out, batch).backward()
        margins[lam] = out.logits.grad[:, 1] - out.logits.grad[:, 0]  # < 0: descent raises p(y=1)
    assert (margins[0.0][[0, 1, 3]] < 0).all()  # λ = 0: every positive is pushed up (the η terms)
    # λ = -3: weight λ + η = -2 on group 0's FNR (its positives are pushed down), -(λ - η) = 4 on group 1's
    assert (margins[-3.0][[0, 1]] > 0).all() and margins[-3.0][3] < margins[0.0][3] < 0


def test_a_constraint_missing_a_side_is_skipped():
    method = make_method()
    out = binary_outputs(P1)
    batch = batch_of([1, 1, 0, 0, 0], G)  # no positive in group 1
    assert method.constraints(out, batch) == [None]
    method.on_step(1, 10)
    loss = method.loss(out, batch)
    assert method.lam == [0.0]
    assert loss.item() == pytest.approx(F.cross_entropy(out.logits, batch.y).item(), rel=1e-6)


def test_three_groups_have_one_constraint_each_against_the_rest():
    method = make_method(num_groups=3, eta=1.0)
    out = binary_outputs([0.9, 0.5, 0.3, 0.7])
    batch = batch_of([1, 1, 1, 1], [0, 1, 2, 2])  # soft FNR: 0.1, 0.5, 0.7, 0.3
    expected = [0.1 - 0.5, 0.5 - (0.1 + 0.7 + 0.3) / 3, 0.5 - (0.1 + 0.5) / 2]
    assert method.constraints(out, batch) == [pytest.approx(e, abs=1e-6) for e in expected]
    method.on_step(1, 10)
    method.loss(out, batch)
    assert method.lam == [pytest.approx(e, abs=1e-6) for e in expected]
    assert set(method.extra_results()) == {"alm_lambda[0]", "alm_lambda[1]", "alm_lambda[2]"}


def test_multiplier_is_method_state():
    a = make_method()
    a.lam = [1.25]
    b = make_method()
    b.load_state_dict(a.state_dict())
    assert b.lam == [1.25] and b.extra_results() == {"alm_lambda": 1.25}


def test_interrupted_then_resumed_equals_uninterrupted(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg("method=fairalm", "method.eta=2")
    full = run_training(cfg, tmp_path / "full")
    assert full["alm_lambda"].iloc[0] != 0
    resumed = resume_after_interrupt(cfg, tmp_path / "cut", monkeypatch, 6)
    assert_same_results(full, resumed)


# -- configuration errors --------------------------------------------------------------------------

@pytest.mark.parametrize("override, key, accepted", [
    ("method.constraint=dp", "method.constraint", "deo, ddp"),
    ("method.eta=0", "method.eta", "> 0"),
    ("method.surrogate=hinge", "method.surrogate", "probability, cross_entropy"),
])
def test_bad_values_name_the_key(override, key, accepted):
    with pytest.raises(ConfigError) as err:
        validate_run_config(compose_train(["method=fairalm", override]))
    assert key in str(err.value) and accepted in str(err.value), str(err.value)


def test_deo_needs_a_binary_target():
    with pytest.raises(ConfigError, match="binary target"):
        make_method(num_classes=3)
    assert make_method(num_classes=3, constraint="ddp").num_constraints == 1


def test_yaml_defaults_match_the_config_dataclass():
    assert validate_run_config(compose_train(["method=fairalm"])).method == FairALMConfig()
