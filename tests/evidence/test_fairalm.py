"""Evidence (slow): the tests of test_fairalm.py that train several seeds of a method and of ERM on
tests/helpers/evidence.py's set-ups and assert the method helps without trading accuracy away."""
import pandas as pd
from tests.helpers.evidence import per_seed, split_rows

# -- evidence --------------------------------------------------------------------------------------

def test_fairalm_deo_closes_the_tpr_gap():
    """tests/helpers/evidence.py's rare-group set-up, default eta=1, seeds 0-2 (tests/helpers/evidence.py: how the
    numbers were measured and the thresholds set). FairALM gets there by predicting the rare, poorly learnt
    group B positive (TPR_B ~ 1 = TPR_A; B's accuracy is 0.50-0.54, as it was 0.49-0.61 with ERM), so
    eo_diff (which also counts the FPR gap) rises: DEO is the only constraint imposed. On seed 1, where
    ERM's gap is 0.95, FairALM leaves 0.28-0.62 under every kernel setting (with BatchNorm's PreciseBN
    statistics, trainer.precise_bn, the default since 2026-12-06; with the running averages it closed
    there too), so the gap is asserted on the median of the three seeds, which one such seed cannot move.
    The test does not compare the gap with ERM's, which ranges from 0.004 to 0.96 with the seed; it guards
    A's and the overall accuracy.

    Measured (per seed 0, 1, 2, then the mean):
      eopp_diff ERM      native  0.432 0.956 0.080 (0.489)
                         default 0.740 0.948 0.152 (0.613)
                         avx2    0.024 0.956 0.108 (0.363)
      eopp_diff FairALM  native  0.000 0.276 0.004 (0.093)
                         default 0.000 0.624 0.012 (0.212)
                         avx2    0.004 0.380 0.008 (0.131)
      accuracy ERM       native  0.729 0.738 0.783 (0.750)
                         default 0.756 0.733 0.781 (0.757)
                         avx2    0.743 0.736 0.789 (0.756)
      accuracy FairALM   native  0.719 0.744 0.728 (0.730)
                         default 0.724 0.741 0.727 (0.731)
                         avx2    0.719 0.754 0.726 (0.733)
      acc[A] FairALM     native  0.938 0.948 0.956 (0.947)
                         default 0.946 0.936 0.954 (0.945)
                         avx2    0.938 0.940 0.952 (0.943)
      acc[B] FairALM     native  0.500 0.540 0.500 (0.513)
                         default 0.502 0.546 0.500 (0.516)
                         avx2    0.500 0.568 0.500 (0.523)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      eopp_diff FairALM < 0.1 (median of 3 seeds): 0.004 / 0.012 / 0.008, margin 0.088 (no 3-SE bound: a median)
      accuracy FairALM - ERM > -0.12 (mean): -0.020 / -0.026 / -0.023, bound -0.090, margin 0.094
      acc[A] FairALM > 0.9 (mean): 0.947 / 0.945 / 0.943, bound 0.934, margin 0.043
    """
    alm = split_rows(["method=fairalm"])
    erm = split_rows([])
    numbers = per_seed(pd.DataFrame({"eopp_erm": erm["eopp_diff"], "eopp_alm": alm["eopp_diff"],
                                     "acc_erm": erm["accuracy"], "acc_alm": alm["accuracy"],
                                     "acc[A]_alm": alm["acc[A]"], "acc[B]_alm": alm["acc[B]"]}))
    assert alm["eopp_diff"].median() < 0.1, numbers  # one seed in five keeps a large gap: see the docstring
    assert alm["accuracy"].mean() > erm["accuracy"].mean() - 0.12, numbers
    assert alm["acc[A]"].mean() > 0.9, numbers
