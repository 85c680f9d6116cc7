"""method=fair_reg: penalties on hand-made batches, the λ(t) schedule, resume, config errors, evidence."""
import math

import pytest
import torch
import torch.nn.functional as F

from fairrun.config import validate_run_config
from fairrun.core.errors import ConfigError
from fairrun.methods import Batch, Outputs, build_method
from fairrun.methods.fair_reg import FairRegConfig, decayed_lambda
from fairrun.training import run_training
from tests.conftest import compose_train
from tests.helpers.resume import assert_same_results, resume_after_interrupt

LN2 = math.log(2)


def make_method(num_classes=2, num_groups=2, **keys):
    cfg = FairRegConfig(**keys)
    cfg.validate()
    return build_method(cfg, num_classes=num_classes, num_groups=num_groups)


def batch_of(y, g):
    y, g = torch.tensor(y), torch.tensor(g)
    return Batch(x=torch.zeros(len(y), 1, 2, 2), y=y, g=g, index=torch.arange(len(y)))


def binary_outputs(p1, requires_grad=False):
    """Outputs whose softmax gives exactly P(class 1) = p1."""
    p1 = torch.tensor(p1, dtype=torch.float64)
    logits = torch.stack([torch.log(1 - p1), torch.log(p1)], dim=1).float().requires_grad_(requires_grad)
    return Outputs(latent=torch.zeros(len(p1), 3), logits=logits)


# -- penalty values ------------------------------------------------------------------------------

def test_loss_penalty_is_weighted_squared_deviation_of_group_mean_losses():
    # p(true class) = 1/2, 1/4, 1/8, 1/16 -> CE = 1, 2, 3, 4 x ln 2; groups [0, 0, 1, 1]
    out = binary_outputs([0.5, 0.25, 0.125, 1 - 1 / 16])
    batch = batch_of([1, 1, 1, 0], [0, 0, 1, 1])
    # L_0 = 1.5 ln2, L_1 = 3.5 ln2, L = 2.5 ln2 -> (1² + 1²) ln2²
    assert make_method(kind="loss").penalty(out, batch).item() == pytest.approx(2 * LN2 ** 2, rel=1e-5)
    weighted = make_method(kind="loss", group_weights=[1.0, 10.0]).penalty(out, batch).item()
    assert weighted == pytest.approx(11 * LN2 ** 2, rel=1e-5)


def test_loss_penalty_uses_only_the_groups_present():
    out = binary_outputs([0.5, 0.25, 0.125])
    assert make_method(kind="loss").penalty(out, batch_of([1, 1, 1], [0, 0, 0])).item() == pytest.approx(0)
    # three groups, group 1 absent: L_0 = ln2, L_2 = 2.5 ln2... (CE 1, 2, 3 x ln2 with groups 0, 2, 2)
    pen = make_method(kind="loss", num_groups=3, group_weights=[1.0, 100.0, 2.0]).penalty(
        out, batch_of([1, 1, 1], [0, 2, 2])).item()
    mean = 2 * LN2
    assert pen == pytest.approx((LN2 - mean) ** 2 + 2 * (2.5 * LN2 - mean) ** 2, rel=1e-5)


def test_accuracy_penalty_uses_the_soft_accuracy_and_has_a_gradient():
    # p(true class) = 0.9, 0.7 (group 0) and 0.4, 0.2 (group 1): A_0 = 0.8, A_1 = 0.3, A = 0.55
    out = binary_outputs([0.9, 0.3, 0.4, 0.8], requires_grad=True)
    batch = batch_of([1, 0, 1, 0], [0, 0, 1, 1])
    pen = make_method(kind="accuracy").penalty(out, batch)
    assert pen.item() == pytest.approx(2 * 0.25 ** 2, rel=1e-5)
    pen.backward()
    assert out.logits.grad.abs().sum() > 0  # unlike an arg-max accuracy, it trains the model


@pytest.mark.parametrize("gap, expected", [("squared", 0.25), ("absolute", 0.5)])
def test_dp_penalty_is_the_gap_in_mean_positive_probability(gap, expected):
    out = binary_outputs([0.8, 0.6, 0.3, 0.1])  # m_0 = 0.7, m_1 = 0.2
    pen = make_method(kind="dp", gap=gap).penalty(out, batch_of([0, 1, 0, 1], [0, 0, 1, 1]))
    assert pen.item() == pytest.approx(expected, rel=1e-5)


def test_eopp_penalty_looks_only_at_positives():
    out = binary_outputs([0.8, 0.6, 0.3, 0.1])
    batch = batch_of([1, 0, 1, 0], [0, 0, 1, 1])  # positives: 0.8 (group 0), 0.3 (group 1)
    assert make_method(kind="eopp").penalty(out, batch).item() == pytest.approx(0.25, rel=1e-5)
    assert make_method(kind="eopp", gap="absolute").penalty(out, batch).item() == pytest.approx(0.5, rel=1e-5)
    # a group without positives in the batch: no gap to measure
    assert make_method(kind="eopp").penalty(out, batch_of([1, 1, 0, 0], [0, 0, 1, 1])).item() == 0


@pytest.mark.parametrize("gap, expected", [("squared", 0.09 + 0 + 0.09), ("absolute", 0.3 + 0 + 0.3)])
def test_dp_penalty_with_three_groups_sums_deviations_from_the_overall_mean(gap, expected):
    out = binary_outputs([0.9, 0.6, 0.3])  # m = 0.6
    pen = make_method(kind="dp", gap=gap, num_groups=3).penalty(out, batch_of([0, 0, 0], [0, 1, 2]))
    assert pen.item() == pytest.approx(expected, rel=1e-5)


def test_loss_is_cross_entropy_plus_current_lambda_times_penalty():
    out = binary_outputs([0.8, 0.6, 0.3, 0.1])
    batch = batch_of([1, 0, 1, 0], [0, 0, 1, 1])
    method = make_method(kind="dp", lam=4.0, decay=False)
    ce = F.cross_entropy(out.logits, batch.y)
    assert method.loss(out, batch).item() == pytest.approx(ce.item() + 4.0 * 0.25, rel=1e-5)
    assert make_method(kind="dp", lam=0.0).loss(out, batch).item() == pytest.approx(ce.item(), rel=1e-6)


# -- λ(t) -------------------------------------------------------------------------------------------

def test_lambda_decays_linearly_over_the_run():
    method = make_method(lam=10.0, decay_start=1.0, decay_end=0.01)
    expected = {0: 10.0, 50: 10 * (1 - 0.99 * 0.5), 100: 0.1}
    for step, lam in expected.items():
        method.on_step(step, 101)
        assert method.lam_t == pytest.approx(lam)
        assert decayed_lambda(10.0, step, 101, 1.0, 0.01, True) == pytest.approx(lam)
    constant = make_method(lam=3.0, decay=False)
    for step in (0, 37, 100):
        constant.on_step(step, 101)
        assert constant.lam_t == 3.0


def test_lambda_is_in_the_state_and_restored():
    a = make_method(lam=10.0)
    a.on_step(30, 61)
    b = make_method(lam=10.0)
    b.load_state_dict(a.state_dict())
    assert b.lam_t == a.lam_t == pytest.approx(10 * (1 - 0.99 * 0.5))


def test_interrupted_then_resumed_equals_uninterrupted(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg("method=fair_reg", "method.kind=eopp", "method.lam=2")
    full = run_training(cfg, tmp_path / "full")
    resumed = resume_after_interrupt(cfg, tmp_path / "cut", monkeypatch, 13)  # mid epoch 2 (10 steps/epoch)
    assert_same_results(full, resumed)


# -- configuration errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("override, key, accepted", [
    ("method.kind=parity", "method.kind", "loss, accuracy, dp, eopp"),
    ("method.lam=-1", "method.lam", ">= 0"),
    ("method.gap=cubic", "method.gap", "squared, absolute"),
    ("method.decay_end=-0.1", "method.decay_end", ">= 0"),
    ("method.group_weights=[1,-2]", "method.group_weights", ">= 0"),
    ("method.group_weights=[0,0]", "method.group_weights", "not all 0"),
])
def test_bad_values_name_the_key(override, key, accepted):
    with pytest.raises(ConfigError) as err:
        validate_run_config(compose_train(["method=fair_reg", override]))
    assert key in str(err.value) and accepted in str(err.value), str(err.value)


def test_group_weights_must_fit_the_groups_and_the_kind():
    with pytest.raises(ConfigError, match="null with method.kind=dp"):
        validate_run_config(compose_train(["method=fair_reg", "method.kind=dp",
                                           "method.group_weights=[1,10]"]))
    cfg = validate_run_config(compose_train(["method=fair_reg", "method.group_weights=[1,10,1]"]))
    with pytest.raises(ConfigError, match="a list of 2 numbers"):
        build_method(cfg.method, num_classes=2, num_groups=2)
    with pytest.raises(ConfigError, match="binary target"):
        make_method(kind="eopp", num_classes=3)


def test_yaml_defaults_match_the_config_dataclass():
    cfg = validate_run_config(compose_train(["method=fair_reg"])).method
    assert cfg == FairRegConfig()


# -- evidence ---------------------------------------------------------------------------------------
# tests/helpers/evidence.py's rare-group set-up (group B = 2% of training, ~1.3 B images per batch of 64), test
# rows. The YAML default lam=10 is the notebook's; with so few group-B samples per batch it levels every
# group down to chance (kind=loss: acc_gap 0.03/0.01/0.04 but accuracy ~0.51), so the tests use lam=1
# (with the default decay 1 -> 0.01); lam=0.3 and 3 gave smaller worst-group gains (means 0.581 and 0.609
# against 0.655, seeds 0-2), and kind=eopp at lam=3 did not close the TPR gap more reliably (seed 1:
# 0.716 native, 0.620 with ATEN_CPU_CAPABILITY=default).
# kind=dp is not tested here: no setting tried (lam 0.3-10, squared/absolute, decaying or not) lowered
# the *thresholded* dp_diff on average (ERM 0.253; 0.16-0.37). With group B near chance, DiffDP moves B's
# mean probability towards A's (the soft gap falls, e.g. 0.077 -> 0.013 at lam=10) while B's scores stay
# bunched on one side of 0.5, so B's selection rate does not follow.

FAIR_REG_ACCURACY = ["method=fair_reg", "method.kind=accuracy", "method.lam=1"]
FAIR_REG_EOPP = ["method=fair_reg", "method.kind=eopp", "method.lam=1"]
