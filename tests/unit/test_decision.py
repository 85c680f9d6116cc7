"""Decision thresholds (eval.threshold) and threshold post-processing (postprocess=threshold)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairrun.config import validate_run_config
from fairrun.evaluation.decision import (PostprocessConfig, apply_threshold, calibrated_threshold, f1_threshold,
                              fit_threshold_optimizer, postprocessed, threshold_for_top_k)
from fairrun.core.errors import ConfigError
from fairrun.metrics import dp_diff, eo_diff
from tests.conftest import TINY, compose_train


def test_top_k_threshold_puts_exactly_k_scores_above():
    scores = np.array([0.9, 0.1, 0.5, 0.7, 0.3])
    for k in range(6):
        assert int((scores > threshold_for_top_k(scores, k)).sum()) == k


def test_calibrated_threshold_predicts_as_many_positives_as_there_are():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    scores = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1)
    t = calibrated_threshold(y, scores)
    assert int((scores > t).sum()) == int(y.sum())


def test_f1_threshold_is_the_best_cut_off():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    scores = np.round(np.clip(0.25 * y + rng.random(300) * 0.75, 0, 1), 2)  # with ties

    def f1(t):
        pred = scores > t
        tp = int((pred & (y == 1)).sum())
        return 2 * tp / (pred.sum() + y.sum())

    best = max(f1(t) for t in np.r_[np.unique(scores), -1.0])
    assert f1(f1_threshold(y, scores)) == pytest.approx(best)


def _scored(n, seed):
    """Scores shifted up for group 1: selection rates differ at a 0.5 threshold."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    y = rng.integers(0, 2, n)
    score = np.clip(0.35 * y + 0.25 * g + rng.random(n) * 0.45, 0, 1)
    return pd.DataFrame({"y_true": y, "y_score": score, "y_pred": (score > 0.5).astype(int),
                         "group": pd.Categorical.from_codes(g, ["A", "B"])})


@pytest.mark.parametrize("constraint, metric", [("demographic_parity", dp_diff), ("equalized_odds", eo_diff)])
def test_threshold_optimizer_shrinks_its_constrained_gap_on_held_out_data(constraint, metric):
    val, test = _scored(4000, 0), _scored(4000, 1)
    optimizer = fit_threshold_optimizer(PostprocessConfig(name="threshold", constraint=constraint), val)
    before = apply_threshold(test, 0.5)
    after = postprocessed(optimizer, test, seed=0)
    gap = lambda p: metric(p["y_true"], p["y_pred"], p["group"].cat.codes)  # noqa: E731
    assert gap(before) > 0.2 and gap(after) < 0.06
    assert np.array_equal(after["y_pred"], postprocessed(optimizer, test, seed=0)["y_pred"])  # seeded


@pytest.mark.parametrize("override, words", [
    ("eval.threshold=high", ["eval.threshold", "calibrated", "f1"]),
    ("eval.threshold=1.5", ["eval.threshold"]),
    ("postprocess.constraint=parity", ["postprocess.constraint", "equalized_odds"]),
])
def test_bad_decision_keys_are_clear_errors(override, words):
    extra = ["postprocess=threshold"] if override.startswith("postprocess") else []
    with pytest.raises(ConfigError) as err:
        validate_run_config(compose_train([*TINY, *extra, override]))
    assert all(w in str(err.value) for w in words)


def test_calibrated_threshold_end_to_end_and_reused_on_test(tiny_cfg, tmp_path):
    from fairrun.training import run_training

    results = run_training(tiny_cfg("eval.threshold=calibrated"), tmp_path / "run").set_index("split")
    pred = pd.read_pickle(tmp_path / "run" / "predictions.pkl")
    val = pred[pred.split == "val"]
    t = results.loc["val", "threshold"]
    assert results.loc["test", "threshold"] == t and 0 < t < 1
    assert int(val["y_pred"].sum()) == int(val["y_true"].sum())
    test = pred[pred.split == "test"]
    assert np.array_equal(test["y_pred"], (test["y_score"] > t).astype(int))


POSTPROCESS_DP = ["postprocess=threshold", "postprocess.constraint=demographic_parity"]
