"""Evidence (slow): the tests of test_fairalm.py that train several seeds of a method and of ERM on
tests/helpers/evidence.py's set-ups and assert the method helps without trading accuracy away."""
import pandas as pd
from tests.helpers.evidence import per_seed, split_rows

# -- evidence --------------------------------------------------------------------------------------

def test_fairalm_deo_closes_the_tpr_gap():
    """tests/helpers/evidence.py's rare-group set-up, default eta=1, seeds 0-2, means (tests/helpers/evidence.py: how the
    numbers were measured and the thresholds set). FairALM gets there by predicting the rare, poorly learnt
    group B positive (TPR_B ~ 1 = TPR_A; B's accuracy is 0.5 on every seed, as it was 0.50-0.72 with
    ERM), so eo_diff (which also counts the FPR gap) rises: DEO is the only constraint imposed. The test
    does not compare the gap with ERM's, which ranges from 0.02 to 0.88 with the seed; it guards A's
    and the overall accuracy.

    Measured (per seed 0, 1, 2, then the mean):
      eopp_diff ERM      native  0.112 0.856 0.676 (0.548)
                         default 0.128 0.876 0.660 (0.555)
                         avx2    0.152 0.844 0.632 (0.543)
      eopp_diff FairALM  native  0.056 0.036 0.024 (0.039)
                         default 0.004 0.020 0.024 (0.016)
                         avx2    0.092 0.016 0.028 (0.045)
      accuracy ERM       native  0.780 0.739 0.759 (0.759)
                         default 0.804 0.736 0.764 (0.768)
                         avx2    0.793 0.733 0.757 (0.761)
      accuracy FairALM   native  0.733 0.725 0.736 (0.731)
                         default 0.728 0.721 0.735 (0.728)
                         avx2    0.726 0.719 0.736 (0.727)
      acc[A] FairALM     native  0.966 0.950 0.972 (0.963)
                         default 0.954 0.942 0.970 (0.955)
                         avx2    0.952 0.938 0.972 (0.954)
      acc[B] FairALM     native  0.500 0.500 0.500 (0.500)
                         default 0.502 0.500 0.500 (0.501)
                         avx2    0.500 0.500 0.500 (0.500)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      eopp_diff FairALM < 0.1 (mean): 0.039 / 0.016 / 0.045, bound 0.068, margin 0.055
      accuracy FairALM - ERM > -0.12 (mean): -0.028 / -0.040 / -0.034, bound -0.101, margin 0.080
      acc[A] FairALM > 0.9 (mean): 0.963 / 0.955 / 0.954, bound 0.915, margin 0.054
    """
    alm = split_rows(["method=fairalm"])
    erm = split_rows([])
    numbers = per_seed(pd.DataFrame({"eopp_erm": erm["eopp_diff"], "eopp_alm": alm["eopp_diff"],
                                     "acc_erm": erm["accuracy"], "acc_alm": alm["accuracy"],
                                     "acc[A]_alm": alm["acc[A]"], "acc[B]_alm": alm["acc[B]"]}))
    assert alm["eopp_diff"].mean() < 0.1, numbers
    assert alm["accuracy"].mean() > erm["accuracy"].mean() - 0.12, numbers
    assert alm["acc[A]"].mean() > 0.9, numbers
