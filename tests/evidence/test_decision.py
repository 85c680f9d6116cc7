"""Evidence (slow): the tests of test_decision.py that train several seeds of a method and of ERM on
tests/helpers/evidence.py's set-ups and assert the method helps without trading accuracy away."""
import pandas as pd
from tests.helpers import evidence
from tests.unit.test_decision import POSTPROCESS_DP

def test_postprocessing_shrinks_the_demographic_parity_gap_of_a_trained_model():
    """The rare-group set-up, seeds 0-4: ERM's test dp_diff and accuracy before (test_raw) and after
    (test) post-processing (tests/helpers/evidence.py: how the numbers were measured and the thresholds set).

    Measured (per seed 0, 1, 2, 3, 4, then the mean):
      dp_diff before   native  0.184 0.394 0.242 0.452 0.028 (0.260)
                       default 0.180 0.400 0.236 0.462 0.182 (0.292)
                       avx2    0.158 0.386 0.214 0.294 0.002 (0.211)
      dp_diff after    native  0.034 0.042 0.028 0.032 0.016 (0.030)
                       default 0.042 0.030 0.050 0.036 0.048 (0.041)
                       avx2    0.020 0.048 0.004 0.024 0.030 (0.025)
      accuracy before  native  0.780 0.739 0.759 0.748 0.842 (0.774)
                       default 0.804 0.736 0.764 0.741 0.833 (0.776)
                       avx2    0.793 0.733 0.757 0.743 0.823 (0.770)
      accuracy after   native  0.779 0.739 0.760 0.736 0.844 (0.772)
                       default 0.797 0.733 0.765 0.726 0.840 (0.772)
                       avx2    0.792 0.750 0.764 0.718 0.827 (0.770)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      dp_diff after < 0.08 (each seed): highest 0.050, bound 0.071, margin 0.030
      dp_diff after < 0.06 (mean): 0.030 / 0.041 / 0.025, bound 0.050, margin 0.019
      dp_diff before - after > 0.03 (mean): 0.230 / 0.251 / 0.186, bound 0.036, margin 0.156
      accuracy after - before > -0.02 (mean): -0.002 / -0.003 / 0.000, bound -0.015, margin 0.017
    """
    rows = [r.set_index("split") for r in evidence.results(POSTPROCESS_DP, seeds=evidence.SEEDS)]
    table = pd.DataFrame({"dp_before": [r.loc["test_raw", "dp_diff"] for r in rows],
                          "dp_after": [r.loc["test", "dp_diff"] for r in rows],
                          "acc_before": [r.loc["test_raw", "accuracy"] for r in rows],
                          "acc_after": [r.loc["test", "accuracy"] for r in rows]})
    numbers, mean = evidence.per_seed(table), table.mean()
    print(numbers)
    assert (table["dp_after"] < 0.08).all() and mean["dp_after"] < 0.06, numbers
    assert mean["dp_after"] < mean["dp_before"] - 0.03, numbers
    assert mean["acc_after"] > mean["acc_before"] - 0.02, numbers  # not by giving up accuracy
