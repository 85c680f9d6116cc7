"""Evidence (slow): the tests of test_fair_reg.py that train several seeds of a method and of ERM on
tests/helpers/evidence.py's set-ups and assert the method helps without trading accuracy away."""
import pandas as pd
from tests.helpers.evidence import SEEDS, per_seed, split_rows
from tests.integration.test_fair_reg import FAIR_REG_ACCURACY, FAIR_REG_EOPP

def _table(reg, erm, *keys) -> pd.DataFrame:
    return pd.DataFrame({f"{key}_{name}": rows[key]
                         for key in keys for name, rows in (("erm", erm), ("reg", reg))})


def test_fair_reg_accuracy_raises_worst_group_accuracy_over_erm():
    """Seeds 0-4, means (tests/helpers/evidence.py: how the numbers were measured and the thresholds set).

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
    """Seeds 0-4, means (tests/helpers/evidence.py: how the numbers were measured and the thresholds set). The
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
