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
      worst-group ERM       native  0.490 0.500 0.598 0.504 0.616 (0.542)
                            default 0.538 0.500 0.592 0.494 0.664 (0.558)
                            avx2    0.516 0.500 0.612 0.500 0.628 (0.551)
      worst-group fair_reg  native  0.654 0.706 0.674 0.764 0.770 (0.714)
                            default 0.646 0.610 0.656 0.738 0.652 (0.660)
                            avx2    0.644 0.572 0.664 0.782 0.718 (0.676)
      acc_gap ERM           native  0.478 0.476 0.370 0.478 0.366 (0.434)
                            default 0.436 0.466 0.378 0.484 0.316 (0.416)
                            avx2    0.454 0.472 0.354 0.480 0.354 (0.423)
      acc_gap fair_reg      native  0.318 0.248 0.306 0.222 0.210 (0.261)
                            default 0.328 0.362 0.314 0.248 0.312 (0.313)
                            avx2    0.318 0.392 0.310 0.194 0.258 (0.294)
      accuracy ERM          native  0.729 0.738 0.783 0.743 0.799 (0.758)
                            default 0.756 0.733 0.781 0.736 0.822 (0.766)
                            avx2    0.743 0.736 0.789 0.740 0.805 (0.763)
      accuracy fair_reg     native  0.813 0.830 0.827 0.875 0.875 (0.844)
                            default 0.810 0.791 0.813 0.862 0.808 (0.817)
                            avx2    0.803 0.768 0.819 0.879 0.847 (0.823)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      worst-group fair_reg - ERM > 0.01 (mean): 0.172 / 0.103 / 0.125, bound 0.020, margin 0.093
      acc_gap ERM - fair_reg > 0 (mean): 0.173 / 0.103 / 0.128, bound 0.022, margin 0.103
      accuracy fair_reg - ERM > 0 (mean): 0.086 / 0.051 / 0.061, bound 0.008, margin 0.051
    """
    reg = split_rows(FAIR_REG_ACCURACY, seeds=SEEDS)
    erm = split_rows([], seeds=SEEDS)
    numbers = per_seed(_table(reg, erm, "worst_group_acc", "acc_gap", "accuracy"))
    assert reg["worst_group_acc"].mean() > erm["worst_group_acc"].mean() + 0.01, numbers
    assert reg["acc_gap"].mean() < erm["acc_gap"].mean(), numbers
    assert reg["accuracy"].mean() > erm["accuracy"].mean(), numbers  # not by levelling down


def test_fair_reg_eopp_closes_most_of_the_tpr_gap():
    """Seeds 0-4 (tests/helpers/evidence.py: how the numbers were measured and the thresholds set). The TPR gap
    ends at 0.05 or less on most seeds, but one to three seeds in five keep 0.11-0.60 depending on the kernel
    setting (seeds 0 and 3 most often), so the test asserts the median over the five seeds, not the mean,
    and does not compare it with ERM's: ERM's own gap ranges from 0.004 to 0.96 with the seed, so a 5-seed
    difference is not 3 standard errors above 0. Like FairALM it gets there partly by predicting group B
    positive (B's accuracy 0.50-0.76); A's and the overall accuracy are guarded.

    Measured (per seed 0, 1, 2, 3, 4, then the mean):
      eopp_diff ERM       native  0.432 0.956 0.080 0.004 0.596 (0.414)
                          default 0.740 0.948 0.152 0.004 0.436 (0.456)
                          avx2    0.024 0.956 0.108 0.008 0.568 (0.333)
      eopp_diff fair_reg  native  0.044 0.052 0.004 0.224 0.020 (0.069)
                          default 0.604 0.044 0.024 0.164 0.028 (0.173)
                          avx2    0.556 0.044 0.008 0.232 0.108 (0.190)
      accuracy ERM        native  0.729 0.738 0.783 0.743 0.799 (0.758)
                          default 0.756 0.733 0.781 0.736 0.822 (0.766)
                          avx2    0.743 0.736 0.789 0.740 0.805 (0.763)
      accuracy fair_reg   native  0.730 0.730 0.779 0.818 0.803 (0.772)
                          default 0.753 0.733 0.781 0.833 0.871 (0.794)
                          avx2    0.760 0.732 0.774 0.818 0.862 (0.789)
      acc[A] fair_reg     native  0.960 0.960 0.980 0.974 0.984 (0.972)
                          default 0.952 0.966 0.976 0.976 0.978 (0.970)
                          avx2    0.958 0.964 0.980 0.974 0.980 (0.971)
      acc[B] fair_reg     native  0.500 0.500 0.578 0.662 0.622 (0.572)
                          default 0.554 0.500 0.586 0.690 0.764 (0.619)
                          avx2    0.562 0.500 0.568 0.662 0.744 (0.607)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      eopp_diff fair_reg < 0.15 (median of 5 seeds): 0.044 / 0.044 / 0.108, margin 0.042 (no 3-SE bound: a median)
      accuracy fair_reg - ERM > -0.1 (mean): 0.014 / 0.029 / 0.027, bound -0.027, margin 0.114
      acc[A] fair_reg > 0.9 (mean): 0.972 / 0.970 / 0.971, bound 0.958, margin 0.070
    """
    reg = split_rows(FAIR_REG_EOPP, seeds=SEEDS)
    erm = split_rows([], seeds=SEEDS)
    numbers = per_seed(_table(reg, erm, "eopp_diff", "accuracy", "acc[A]", "acc[B]"))
    assert reg["eopp_diff"].median() < 0.15, numbers  # one seed in five keeps a large gap: see the docstring
    assert reg["accuracy"].mean() > erm["accuracy"].mean() - 0.1, numbers
    assert reg["acc[A]"].mean() > 0.9, numbers
