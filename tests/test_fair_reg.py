"""method=fair_reg: penalties on hand-made batches, the λ(t) schedule, resume, config errors, evidence."""
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from fairrun.config import validate_run_config
from fairrun.core.errors import ConfigError
from fairrun.methods import Batch, Outputs, build_method
from fairrun.methods.fair_reg import FairRegConfig, decayed_lambda
from fairrun.training import run_training
from tests.conftest import compose_train
from tests.evidence import SEEDS, per_seed, split_rows
from tests.resume import assert_same_results, resume_after_interrupt

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
# tests/evidence.py's rare-group set-up (group B = 2% of training, ~1.3 B images per batch of 64), test
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


def _table(reg, erm, *keys) -> pd.DataFrame:
    return pd.DataFrame({f"{key}_{name}": rows[key]
                         for key in keys for name, rows in (("erm", erm), ("reg", reg))})


def test_fair_reg_accuracy_raises_worst_group_accuracy_over_erm():
    """Seeds 0-4, means (tests/evidence.py: how the numbers were measured and the thresholds set).

    Measured (per seed 0, 1, 2, 3, 4, then the mean):
      worst-group ERM       native  0.632 0.508 0.542 0.512 0.716 (0.582)
                            default 0.650 0.498 0.552 0.502 0.696 (0.580)
                            avx2    0.638 0.504 0.548 0.504 0.674 (0.574)
      worst-group fair_reg  native  0.714 0.710 0.652 0.712 0.762 (0.710)
                            default 0.684 0.644 0.702 0.742 0.722 (0.699)
                            avx2    0.686 0.636 0.644 0.716 0.736 (0.684)
      acc_gap ERM           native  0.296 0.462 0.434 0.472 0.252 (0.383)
                            default 0.308 0.476 0.424 0.478 0.274 (0.392)
                            avx2    0.310 0.458 0.418 0.478 0.298 (0.392)
      acc_gap fair_reg      native  0.256 0.226 0.324 0.248 0.208 (0.252)
                            default 0.290 0.320 0.248 0.222 0.252 (0.266)
                            avx2    0.282 0.278 0.330 0.252 0.230 (0.274)
      accuracy ERM          native  0.780 0.739 0.759 0.748 0.842 (0.774)
                            default 0.804 0.736 0.764 0.741 0.833 (0.776)
                            avx2    0.793 0.733 0.757 0.743 0.823 (0.770)
      accuracy fair_reg     native  0.842 0.823 0.814 0.836 0.866 (0.836)
                            default 0.829 0.804 0.826 0.853 0.848 (0.832)
                            avx2    0.827 0.775 0.809 0.842 0.851 (0.821)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      worst-group fair_reg - ERM > 0.02 (mean): 0.128 / 0.119 / 0.110, bound 0.024, margin 0.090
      acc_gap ERM - fair_reg > 0 (mean): 0.131 / 0.126 / 0.118, bound 0.008, margin 0.118
      accuracy fair_reg - ERM > 0 (mean): 0.063 / 0.056 / 0.051, bound 0.017, margin 0.051
    """
    reg = split_rows(FAIR_REG_ACCURACY, seeds=SEEDS)
    erm = split_rows([], seeds=SEEDS)
    numbers = per_seed(_table(reg, erm, "worst_group_acc", "acc_gap", "accuracy"))
    assert reg["worst_group_acc"].mean() > erm["worst_group_acc"].mean() + 0.02, numbers
    assert reg["acc_gap"].mean() < erm["acc_gap"].mean(), numbers
    assert reg["accuracy"].mean() > erm["accuracy"].mean(), numbers  # not by levelling down


def test_fair_reg_eopp_closes_most_of_the_tpr_gap():
    """Seeds 0-4, means (tests/evidence.py: how the numbers were measured and the thresholds set). The
    TPR gap ends small on average, but the test does not compare it with ERM's: ERM's own gap ranges from
    0.02 to 0.88 with the seed, so a 5-seed difference is not 3 standard errors above 0. Like FairALM it
    gets there partly by predicting group B positive (B's accuracy stays near 0.5); A's and the overall
    accuracy are guarded.

    Measured (per seed 0, 1, 2, 3, 4, then the mean):
      eopp_diff ERM       native  0.112 0.856 0.676 0.020 0.224 (0.378)
                          default 0.128 0.876 0.660 0.016 0.092 (0.354)
                          avx2    0.152 0.844 0.632 0.184 0.300 (0.422)
      eopp_diff fair_reg  native  0.004 0.072 0.104 0.016 0.040 (0.047)
                          default 0.008 0.464 0.076 0.016 0.056 (0.124)
                          avx2    0.008 0.232 0.144 0.024 0.040 (0.090)
      accuracy ERM        native  0.780 0.739 0.759 0.748 0.842 (0.774)
                          default 0.804 0.736 0.764 0.741 0.833 (0.776)
                          avx2    0.793 0.733 0.757 0.743 0.823 (0.770)
      accuracy fair_reg   native  0.727 0.730 0.817 0.742 0.768 (0.757)
                          default 0.727 0.754 0.824 0.746 0.741 (0.758)
                          avx2    0.725 0.753 0.820 0.741 0.733 (0.754)
      acc[A] fair_reg     native  0.954 0.960 0.966 0.982 0.970 (0.966)
                          default 0.954 0.900 0.968 0.984 0.960 (0.953)
                          avx2    0.950 0.870 0.964 0.980 0.962 (0.945)
      acc[B] fair_reg     native  0.500 0.500 0.668 0.502 0.566 (0.547)
                          default 0.500 0.608 0.680 0.508 0.522 (0.564)
                          avx2    0.500 0.636 0.676 0.502 0.504 (0.564)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      eopp_diff fair_reg < 0.3 (mean): 0.047 / 0.124 / 0.090, bound 0.250, margin 0.176
      accuracy fair_reg - ERM > -0.1 (mean): -0.017 / -0.017 / -0.015, bound -0.091, margin 0.083
      acc[A] fair_reg > 0.9 (mean): 0.966 / 0.953 / 0.945, bound 0.914, margin 0.045
    """
    reg = split_rows(FAIR_REG_EOPP, seeds=SEEDS)
    erm = split_rows([], seeds=SEEDS)
    numbers = per_seed(_table(reg, erm, "eopp_diff", "accuracy", "acc[A]", "acc[B]"))
    assert reg["eopp_diff"].mean() < 0.3, numbers
    assert reg["accuracy"].mean() > erm["accuracy"].mean() - 0.1, numbers
    assert reg["acc[A]"].mean() > 0.9, numbers
