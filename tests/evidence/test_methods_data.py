"""Evidence (slow): the tests of test_methods_data.py that train several seeds of a method and of ERM on
tests/helpers/evidence.py's set-ups and assert the method helps without trading accuracy away."""
import pandas as pd
from tests.helpers.evidence import SEEDS, SPURIOUS, per_seed, split_rows
from tests.integration.test_methods_data import OVERSAMPLE, REWEIGHT

# -- evidence -------------------------------------------------------------------------------------
# tests/helpers/evidence.py's set-up (same data generator, model, 8 epochs) with group B no longer rare but the
# label correlated with the group in training (evidence.SPURIOUS): corr(smiling, group == A) = 0.5, i.e.
# P(smiling | A) = 0.75 and P(smiling | B) = 0.25 (val/test stay balanced and uncorrelated). ERM leans on
# the group as a shortcut on some seeds and not on others (worst-group accuracy 0.50-0.86 per seed), so
# the tests use seeds 0-4 and assert the method's own worst-group level besides its gain over ERM.
#
# In the rare-group set-up itself (B = 2% of training) none of reweight/resample/groupdro/
# domain_independent beats ERM within the 8-epoch budget (ERM acc[B] 0.638/0.504/0.548, mean 0.563;
# reweight group 0.517, resample over 0.570, groupdro 0.505, domain_independent 0.501): with 30 B images
# there is nothing to rebalance towards, and up-weighting them slows learning. See the team report.


def assert_raises_worst_group_accuracy_over_erm(method_overrides: list[str]) -> None:
    """On the spurious set-up, seeds 0-4: the method's worst-group accuracy is high (mean > 0.8) and above
    ERM's (mean gain > 0.03), with no loss of accuracy against ERM."""
    method = split_rows(method_overrides, seeds=SEEDS, extra=SPURIOUS)  # before ERM: see tests/helpers/evidence.py
    erm = split_rows([], seeds=SEEDS, extra=SPURIOUS)
    numbers = per_seed(pd.DataFrame({"wga_erm": erm["worst_group_acc"], "wga": method["worst_group_acc"],
                                     "acc_erm": erm["accuracy"], "acc": method["accuracy"]}))
    assert method["worst_group_acc"].mean() > 0.8, numbers
    assert method["worst_group_acc"].mean() > erm["worst_group_acc"].mean() + 0.03, numbers
    assert method["accuracy"].mean() > erm["accuracy"].mean(), numbers


def test_reweighing_raises_worst_group_accuracy_over_erm():
    """tests/helpers/evidence.py: how the numbers were measured and the thresholds set.

    Measured (per seed 0, 1, 2, 3, 4, then the mean):
      worst-group ERM       native  0.502 0.848 0.500 0.500 0.746 (0.619)
                            default 0.510 0.858 0.500 0.500 0.734 (0.620)
                            avx2    0.504 0.840 0.500 0.500 0.662 (0.601)
      worst-group reweight  native  0.872 0.880 0.884 0.852 0.804 (0.858)
                            default 0.882 0.916 0.884 0.806 0.846 (0.867)
                            avx2    0.872 0.920 0.860 0.848 0.852 (0.870)
      accuracy ERM          native  0.727 0.886 0.608 0.634 0.782 (0.727)
                            default 0.730 0.896 0.651 0.644 0.767 (0.738)
                            avx2    0.728 0.881 0.607 0.660 0.756 (0.726)
      accuracy reweight     native  0.906 0.898 0.916 0.898 0.839 (0.891)
                            default 0.910 0.936 0.921 0.872 0.856 (0.899)
                            avx2    0.904 0.939 0.909 0.890 0.855 (0.899)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      worst-group reweight > 0.8 (mean): 0.858 / 0.867 / 0.870, bound 0.821, margin 0.058
      worst-group reweight - ERM > 0.03 (mean): 0.239 / 0.246 / 0.269, bound 0.059, margin 0.209
      accuracy reweight - ERM > 0 (mean): 0.164 / 0.161 / 0.173, bound 0.031, margin 0.161
    """
    assert_raises_worst_group_accuracy_over_erm(REWEIGHT)


def test_oversampling_raises_worst_group_accuracy_over_erm():
    """tests/helpers/evidence.py: how the numbers were measured and the thresholds set.

    Measured (per seed 0, 1, 2, 3, 4, then the mean):
      worst-group ERM       native  0.502 0.848 0.500 0.500 0.746 (0.619)
                            default 0.510 0.858 0.500 0.500 0.734 (0.620)
                            avx2    0.504 0.840 0.500 0.500 0.662 (0.601)
      worst-group resample  native  0.852 0.952 0.860 0.892 0.948 (0.901)
                            default 0.912 0.876 0.858 0.916 0.944 (0.901)
                            avx2    0.848 0.916 0.872 0.870 0.900 (0.881)
      accuracy ERM          native  0.727 0.886 0.608 0.634 0.782 (0.727)
                            default 0.730 0.896 0.651 0.644 0.767 (0.738)
                            avx2    0.728 0.881 0.607 0.660 0.756 (0.726)
      accuracy resample     native  0.902 0.953 0.905 0.915 0.949 (0.925)
                            default 0.924 0.891 0.892 0.932 0.953 (0.918)
                            avx2    0.901 0.924 0.912 0.889 0.931 (0.911)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      worst-group resample > 0.8 (mean): 0.901 / 0.901 / 0.881, bound 0.847, margin 0.081
      worst-group resample - ERM > 0.03 (mean): 0.282 / 0.281 / 0.280, bound 0.106, margin 0.250
      accuracy resample - ERM > 0 (mean): 0.197 / 0.181 / 0.185, bound 0.062, margin 0.181
    """
    assert_raises_worst_group_accuracy_over_erm(OVERSAMPLE)
