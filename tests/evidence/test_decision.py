"""Evidence (slow): the tests of test_decision.py that train several seeds of a method and of ERM on
tests/helpers/evidence.py's set-ups and assert the method helps without trading accuracy away."""
import pandas as pd
from tests.helpers import evidence
from tests.unit.test_decision import POSTPROCESS_DP

def test_postprocessing_shrinks_the_demographic_parity_gap_of_a_trained_model():
    """The rare-group set-up, seeds 0-4: ERM's test dp_diff and accuracy before (test_raw) and after
    (test) post-processing (tests/helpers/evidence.py: how the numbers were measured and the thresholds set).

    Measured (per seed 0, 1, 2, 3, 4, then the mean):
      dp_diff before   native  0.046 0.480 0.290 0.474 0.230 (0.304)
                       default 0.304 0.482 0.226 0.480 0.120 (0.322)
                       avx2    0.478 0.484 0.246 0.472 0.214 (0.379)
      dp_diff after    native  0.008 0.002 0.024 0.018 0.010 (0.012)
                       default 0.040 0.030 0.006 0.024 0.022 (0.024)
                       avx2    0.026 0.024 0.018 0.030 0.010 (0.022)
      accuracy before  native  0.729 0.738 0.783 0.743 0.799 (0.758)
                       default 0.756 0.733 0.781 0.736 0.822 (0.766)
                       avx2    0.743 0.736 0.789 0.740 0.805 (0.763)
      accuracy after   native  0.736 0.781 0.776 0.743 0.835 (0.774)
                       default 0.788 0.781 0.773 0.728 0.829 (0.780)
                       avx2    0.763 0.780 0.785 0.721 0.823 (0.774)
    Asserted (bound: pooled mean of the 15 draws -/+ 3 SE of the test's mean; margin: from the worst
    setting's mean, or the worst of the 15 draws for a per-seed threshold, to the threshold):
      dp_diff after < 0.08 (each seed): highest 0.040, bound 0.051, margin 0.040
      dp_diff after < 0.06 (mean): 0.012 / 0.024 / 0.022, bound 0.034, margin 0.036
      dp_diff before - after > 0.03 (mean): 0.292 / 0.298 / 0.357, bound 0.117, margin 0.262
      accuracy after - before > -0.02 (mean): 0.016 / 0.014 / 0.012, bound -0.016, margin 0.032
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
