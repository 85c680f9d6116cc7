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
      worst-group ERM       native  0.560 0.858 0.624 0.766 0.752 (0.712)
                            default 0.592 0.860 0.640 0.732 0.740 (0.713)
                            avx2    0.594 0.868 0.672 0.770 0.770 (0.735)
      worst-group reweight  native  0.852 0.932 0.926 0.922 0.954 (0.917)
                            default 0.842 0.928 0.928 0.912 0.962 (0.914)
                            avx2    0.860 0.928 0.920 0.918 0.964 (0.918)
      accuracy ERM          native  0.725 0.891 0.698 0.811 0.780 (0.781)
                            default 0.752 0.897 0.715 0.794 0.772 (0.786)
                            avx2    0.755 0.903 0.741 0.817 0.787 (0.801)
      accuracy reweight     native  0.897 0.941 0.940 0.933 0.955 (0.933)
                            default 0.893 0.943 0.936 0.930 0.964 (0.933)
                            avx2    0.901 0.942 0.935 0.932 0.964 (0.935)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      worst-group reweight > 0.8 (mean): 0.917 / 0.914 / 0.918, bound 0.867, margin 0.114
      worst-group reweight - ERM > 0.03 (mean): 0.205 / 0.202 / 0.183, bound 0.087, margin 0.153
      accuracy reweight - ERM > 0 (mean): 0.152 / 0.147 / 0.134, bound 0.061, margin 0.134
    """
    assert_raises_worst_group_accuracy_over_erm(REWEIGHT)


def test_oversampling_raises_worst_group_accuracy_over_erm():
    """tests/helpers/evidence.py: how the numbers were measured and the thresholds set.

    Measured (per seed 0, 1, 2, 3, 4, then the mean):
      worst-group ERM       native  0.560 0.858 0.624 0.766 0.752 (0.712)
                            default 0.592 0.860 0.640 0.732 0.740 (0.713)
                            avx2    0.594 0.868 0.672 0.770 0.770 (0.735)
      worst-group resample  native  0.910 0.956 0.904 0.950 0.942 (0.932)
                            default 0.924 0.940 0.938 0.956 0.944 (0.940)
                            avx2    0.924 0.948 0.940 0.946 0.934 (0.938)
      accuracy ERM          native  0.725 0.891 0.698 0.811 0.780 (0.781)
                            default 0.752 0.897 0.715 0.794 0.772 (0.786)
                            avx2    0.755 0.903 0.741 0.817 0.787 (0.801)
      accuracy resample     native  0.919 0.958 0.926 0.953 0.950 (0.941)
                            default 0.927 0.946 0.940 0.957 0.953 (0.945)
                            avx2    0.931 0.951 0.944 0.951 0.940 (0.943)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      worst-group resample > 0.8 (mean): 0.932 / 0.940 / 0.938, bound 0.916, margin 0.132
      worst-group resample - ERM > 0.03 (mean): 0.220 / 0.228 / 0.204, bound 0.096, margin 0.174
      accuracy resample - ERM > 0 (mean): 0.160 / 0.159 / 0.143, bound 0.076, margin 0.143
    """
    assert_raises_worst_group_accuracy_over_erm(OVERSAMPLE)
