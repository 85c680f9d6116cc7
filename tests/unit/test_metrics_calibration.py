"""The per-group confusion counts, precision and F1, the parity ratios and calibration (issue 18, point 1):
``tp/fp/tn/fn[<group>]``, ``ppv[<group>]``, ``f1[<group>]``, ``dp_ratio``, ``eo_ratio``, ``ece``,
``ece[<group>]``, ``ece_gap``, ``brier``, ``brier[<group>]``, against scikit-learn, fairlearn and direct
loops, with their bootstrap intervals."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, demographic_parity_ratio, equalized_odds_ratio
from sklearn.metrics import brier_score_loss, confusion_matrix, f1_score, precision_score

from fairrun.core.errors import FairrunError
from fairrun.evaluation.predictions import DecisionRule, measure
from fairrun.metrics import (FairnessMetricWarning, bootstrap_intervals, brier_score, calibration_by_group,
                             dp_ratio, ece_gap, eo_ratio, expected_calibration_error, group_metrics,
                             per_group_confusion, precision_f1_by_group, registry)
from fairrun.metrics import bootstrap as bs
from fairrun.metrics.calibration import ECE_BINS, confidence_bins

GROUPS = ["A", "B", "C", "D", "E"]
NEW_PER_GROUP = ("tp", "fp", "tn", "fn", "ppv", "f1", "ece", "brier")
NEW_OVERALL = ("dp_ratio", "eo_ratio", "ece", "ece_gap", "brier")


def case(n=1500, seed=0, edge=True):
    """Five groups with their own base rates, error rates and miscalibration; with ``edge``, group D has no
    positives and group E selects nobody (its scores stay at or below 0.5)."""
    rng = np.random.default_rng(seed)
    g = rng.choice(5, n, p=[0.4, 0.25, 0.15, 0.1, 0.1])
    truth = rng.beta(np.array([1.0, 2.0, 1.0, 1.0, 2.0])[g], np.array([1.0, 1.0, 2.0, 1.0, 2.0])[g])
    y = (rng.random(n) < truth).astype(np.int64)  # P(y = 1) = truth: calibrated scores would be truth
    s = np.round(truth ** np.array([1.0, 0.4, 2.5, 1.0, 1.0])[g], 3)  # B, C miscalibrated; ties, bin edges
    if edge:
        y[g == 3] = 0
        s[g == 4] = np.minimum(s[g == 4], 0.5)
    return y, (s > 0.5).astype(np.int64), g, s


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def row_of(y, y_pred, g, s, **kwargs):
    return quiet(group_metrics, y, y_pred, g, scores=s, group_names=GROUPS, **kwargs)


# ---------------------------------------------------------------- counts, precision, F1

@pytest.mark.parametrize("seed", range(4))
def test_confusion_counts_precision_and_f1_are_sklearns_per_group(seed):
    y, y_pred, g, s = case(seed=seed)
    row = row_of(y, y_pred, g, s)
    counts = per_group_confusion(y, y_pred, g)
    scores = quiet(precision_f1_by_group, y, y_pred, g)
    for i, name in enumerate(GROUPS):
        m = g == i
        tn, fp, fn, tp = confusion_matrix(y[m], y_pred[m], labels=[0, 1]).ravel()
        assert [row[f"{k}[{name}]"] for k in ("tp", "fp", "tn", "fn")] == [tp, fp, tn, fn]
        assert [counts[k][i] for k in ("tp", "fp", "tn", "fn")] == [tp, fp, tn, fn]
        ppv = precision_score(y[m], y_pred[m], zero_division=np.nan)
        f1 = f1_score(y[m], y_pred[m], zero_division=np.nan)
        np.testing.assert_allclose([row[f"ppv[{name}]"], scores["ppv"][i]], ppv, rtol=0, atol=1e-12)
        np.testing.assert_allclose([row[f"f1[{name}]"], scores["f1"][i]], f1, rtol=0, atol=1e-12)
    # the edge groups: D has no positives (ppv 0 where it selects, f1 0), E selects nobody (ppv NaN)
    assert row["tp[D]"] == row["fn[D]"] == 0 and row["ppv[D]"] == 0.0 and row["f1[D]"] == 0.0
    assert row["tp[E]"] == row["fp[E]"] == 0 and np.isnan(row["ppv[E]"]) and row["f1[E]"] == 0.0
    assert all(type(row[f"{k}[A]"]) is int for k in ("tp", "fp", "tn", "fn"))


def test_precision_and_f1_agree_with_a_fairlearn_metricframe():
    y, y_pred, g, _ = case(seed=5, edge=False)
    frame = MetricFrame(metrics={"ppv": precision_score, "f1": f1_score}, y_true=y, y_pred=y_pred,
                        sensitive_features=np.array(GROUPS)[g])
    row = row_of(y, y_pred, g, None)
    for name in GROUPS:
        assert row[f"ppv[{name}]"] == pytest.approx(frame.by_group.loc[name, "ppv"], abs=1e-12)
        assert row[f"f1[{name}]"] == pytest.approx(frame.by_group.loc[name, "f1"], abs=1e-12)


def test_f1_is_nan_only_without_positives_and_selections_and_warns_once():
    y = np.array([0, 0, 1, 1, 0, 0])
    y_pred = np.array([0, 0, 1, 0, 0, 0])
    g = np.array([0, 0, 1, 1, 2, 2])
    with pytest.warns(FairnessMetricWarning) as record:
        out = precision_f1_by_group(y, y_pred, g)
    assert len(record) == 1
    assert "0, 2 have no row with y_hat = 1" in str(record[0].message)
    assert "0, 2 have neither positives nor rows with y_hat = 1" in str(record[0].message)
    np.testing.assert_array_equal(out["ppv"], [np.nan, 1.0, np.nan])
    np.testing.assert_array_equal(out["f1"], [np.nan, 2 / 3, np.nan])


# ---------------------------------------------------------------- the ratios

@pytest.mark.parametrize("seed", range(6))
def test_ratios_equal_fairlearns_where_every_group_has_both_labels(seed):
    y, y_pred, g, s = case(seed=seed, edge=False)
    row = row_of(y, y_pred, g, s)
    dp = demographic_parity_ratio(y, y_pred, sensitive_features=g)
    eo = equalized_odds_ratio(y, y_pred, sensitive_features=g)
    assert row["dp_ratio"] == pytest.approx(dp, rel=1e-12) and dp_ratio(y, y_pred, g) == row["dp_ratio"]
    assert row["eo_ratio"] == pytest.approx(eo, rel=1e-12) and eo_ratio(y, y_pred, g) == row["eo_ratio"]
    frame = MetricFrame(metrics={"sel": lambda a, b: b.mean()}, y_true=y, y_pred=y_pred, sensitive_features=g)
    assert row["dp_ratio"] == pytest.approx(frame.ratio()["sel"], rel=1e-12)
    assert 0 <= row["eo_ratio"] <= 1 and 0 < row["dp_ratio"] <= 1


def test_ratio_edge_cases_and_the_documented_difference_from_fairlearn():
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    g = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    kw = dict(sensitive_features=g)
    # nothing selected: 0/0, NaN as fairlearn
    none = np.zeros(8, int)
    with pytest.warns(FairnessMetricWarning, match=r"0/0"):
        assert np.isnan(dp_ratio(y, none, g))
    assert np.isnan(demographic_parity_ratio(y, none, **kw))
    with pytest.warns(FairnessMetricWarning, match=r"TPR and FPR are 0 in every group"):
        assert np.isnan(eo_ratio(y, none, g))
    # perfect predictions: FPR 0/0 is left out, TPR ratio 1, as fairlearn's worst case
    assert eo_ratio(y, y, g) == equalized_odds_ratio(y, y, **kw) == 1.0
    # only negatives selected, TPR 0 in every group: fairlearn's min() returns NaN, fairrun the FPR ratio
    y_pred = np.array([1, 0, 0, 0, 1, 0, 1, 0])  # FPR 0.5 in group 0, 1.0 in group 1
    assert np.isnan(equalized_odds_ratio(y, y_pred, **kw))
    assert eo_ratio(y, y_pred, g) == 0.5
    # a group without positives is left out of the TPR ratio; fairlearn counts its TPR as 0
    y3, p3, g3 = np.r_[y, 0, 0], np.r_[y, 0, 0], np.r_[g, 2, 2]  # perfect; group 2 only negatives
    with pytest.warns(FairnessMetricWarning, match="no positive labels"):
        assert eo_ratio(y3, p3, g3) == 1.0
    assert equalized_odds_ratio(y3, p3, sensitive_features=g3) == 0.0
    # one group: NaN (fairlearn gives 1)
    with pytest.warns(FairnessMetricWarning, match="fewer than two groups"):
        assert np.isnan(dp_ratio(y, y, np.zeros(8, int)))
    assert demographic_parity_ratio(y, y, sensitive_features=np.zeros(8, int)) == 1.0


# ---------------------------------------------------------------- calibration

def ece_loop(y, p, n_bins=ECE_BINS):
    """Guo et al.'s ECE, bin by bin as their code computes it (right-closed bins of the top-label
    confidence)."""
    conf = np.maximum(p, 1 - p)
    hit = (p > 0.5).astype(int) == y
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(hit[inside].mean() - conf[inside].mean())
    return total


def test_confidence_bins_are_guos_right_closed_bins_also_on_the_edges():
    edges = np.linspace(0, 1, ECE_BINS + 1)
    random = np.random.default_rng(0).random(500)
    values = np.r_[edges, np.nextafter(edges, 2), np.nextafter(edges, -1), random]
    values = np.clip(values, 0, 1)
    expected = [int(np.flatnonzero((v > edges[:-1]) & (v <= edges[1:]))[0]) if v > 0 else 0 for v in values]
    np.testing.assert_array_equal(confidence_bins(values), expected)


@pytest.mark.parametrize("seed", range(4))
def test_ece_and_brier_agree_with_a_direct_loop_and_sklearn_overall_and_per_group(seed):
    y, y_pred, g, s = case(seed=seed)
    row = row_of(y, y_pred, g, s)
    assert row["ece"] == pytest.approx(ece_loop(y, s), abs=1e-12)
    assert expected_calibration_error(y, s) == pytest.approx(ece_loop(y, s), abs=1e-12)
    assert row["brier"] == pytest.approx(brier_score_loss(y, s), abs=1e-12)
    assert brier_score(y, s) == pytest.approx(brier_score_loss(y, s), abs=1e-12)
    per_group = quiet(calibration_by_group, y, s, g)
    loops = [ece_loop(y[g == i], s[g == i]) for i in range(5)]
    frame = MetricFrame(metrics=brier_score_loss, y_true=y, y_pred=s, sensitive_features=g)
    for i, name in enumerate(GROUPS):
        assert row[f"ece[{name}]"] == pytest.approx(loops[i], abs=1e-12) == per_group["ece"][i]
        assert row[f"brier[{name}]"] == pytest.approx(frame.by_group[i], abs=1e-12) == per_group["brier"][i]
    assert row["ece_gap"] == pytest.approx(max(loops) - min(loops), abs=1e-12)
    assert ece_gap(y, s, g) == row["ece_gap"]
    assert row["ece[B]"] > row["ece[A]"] and row["ece[C]"] > row["ece[A]"]  # the miscalibrated groups
    assert expected_calibration_error(y, s, n_bins=10) == pytest.approx(ece_loop(y, s, 10), abs=1e-12)


def test_ece_is_0_for_calibrated_bins_and_judges_the_scores_not_the_threshold():
    # in each bin the fraction of correct top-label predictions equals the confidence (exact binary fractions)
    y = np.array([1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1])
    s = np.repeat([0.75, 0.25, 0.625, 0.375], 4)
    # conf 0.75: 3 of 4 right at p = 0.75, 3 of 4 at p = 0.25 (predicted 0); conf 0.625: 3 of 4 and 2 of 4
    assert expected_calibration_error(y, s) == 0.0 == ece_loop(y, s)
    assert brier_score(y, s) == pytest.approx(brier_score_loss(y, s), abs=1e-15)
    g = (np.arange(16) % 3 == 0).astype(int)
    gap = abs(ece_loop(y[g == 0], s[g == 0]) - ece_loop(y[g == 1], s[g == 1]))
    assert ece_gap(y, s, g) == pytest.approx(gap, abs=1e-15) == 0.0625 - 0.0375
    row_low = quiet(group_metrics, y, (s > 0.3).astype(int), g, scores=s)
    row_mid = quiet(group_metrics, y, (s > 0.5).astype(int), g, scores=s)
    for key in ("ece", "ece_gap", "brier"):  # the decisions change, the calibration does not
        assert row_low[key] == row_mid[key]


def test_the_worked_example_of_docs_metrics_md():
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    s = np.array([0.9, 0.6, 0.7, 0.2, 0.95, 0.45, 0.3, 0.05])
    row = quiet(group_metrics, y, (s > 0.5).astype(int), np.repeat([0, 1], 4), scores=s,
                group_names=["A", "B"])
    expected = {"tp[A]": 2, "fp[A]": 1, "tn[A]": 1, "fn[A]": 0, "tp[B]": 1, "fp[B]": 0, "tn[B]": 2,
                "fn[B]": 1, "ppv[A]": 2 / 3, "f1[A]": 4 / 5, "ppv[B]": 1.0, "f1[B]": 2 / 3, "dp_ratio": 1 / 3,
                "eo_ratio": 0.0,
                "ece[A]": 0.35, "ece[B]": 0.2375, "ece_gap": 0.1125, "ece": 0.11875, "brier[A]": 0.175,
                "brier[B]": 0.099375, "brier": 0.1371875}
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, abs=1e-12), key


def test_calibration_rejects_scores_that_are_not_probabilities():
    y, s = np.array([0, 1, 1]), np.array([0.2, 1.5, 0.7])
    for fn in (expected_calibration_error, brier_score):
        with pytest.raises(FairrunError, match=r"in \[0, 1\].*1\.5"):
            fn(y, s)
    with pytest.raises(FairrunError, match="n_bins must be a whole number >= 1, got 0"):
        expected_calibration_error(y, np.array([0.2, 0.5, 0.7]), n_bins=0)
    with pytest.warns(FairnessMetricWarning, match=r"ece, ece_gap, brier .* NaN: scores outside \[0, 1\]"):
        row = group_metrics(y, y, np.array([0, 1, 1]), scores=s)
    assert all(np.isnan(row[k]) for k in ("ece", "ece_gap", "brier", "ece[0]", "brier[1]"))
    with pytest.warns(FairnessMetricWarning, match="no samples"):
        assert np.isnan(brier_score(np.array([], int), np.array([])))


# ---------------------------------------------------------------- bootstrap, multi-class, registry

def test_intervals_bracket_the_estimates_and_unit_weights_give_the_point_values():
    y, y_pred, g, s = case(n=3000, seed=11)
    point = row_of(y, y_pred, g, s)
    out = bootstrap_intervals(y, y_pred, g, scores=s, group_names=GROUPS, n_boot=300, seed=1, name="test")
    columns = ["dp_ratio", "eo_ratio", "ece", "ece_gap", "brier"]
    columns += [f"{k}[{x}]" for k in ("ppv", "f1", "ece", "brier") for x in GROUPS if (k, x) != ("ppv", "E")]
    for column in columns:
        lo, med, hi = (out[f"{column}{sfx}"] for sfx in registry.INTERVAL_SUFFIXES)
        assert lo <= med <= hi and lo <= point[column] <= hi, (column, lo, point[column], hi)
    assert np.isnan(out["ppv[E]_lo"])  # E never selects: precision undefined in every replicate
    assert not any(f"{k}[A]_lo" in out for k in ("tp", "fp", "tn", "fn"))
    # B = 1 with unit weights: the calibration replicate is the point estimate
    order = np.argsort(s, kind="stable")[::-1]
    matrix = bs.calibration_matrix(y[order], s[order], g[order], 5)
    unit = bs._calibration(np.ones((1, s.size)), matrix, np.bincount(g, minlength=5))
    for key in ("ece", "ece_gap", "brier"):
        assert unit[key][0] == pytest.approx(point[key], abs=1e-12), key
    np.testing.assert_allclose(unit["ece[<group>]"][0], [point[f"ece[{x}]"] for x in GROUPS], rtol=0,
                               atol=1e-12)
    np.testing.assert_allclose(unit["brier[<group>]"][0], [point[f"brier[{x}]"] for x in GROUPS], atol=1e-12)


def test_calibration_replicates_are_the_point_values_of_the_resampled_rows():
    y, y_pred, g, s = case(n=400, seed=3)
    order = np.argsort(s, kind="stable")[::-1]
    ys, ss, gs = y[order], s[order], g[order]
    w = bs._group_weights(gs, 5, 4, np.random.default_rng(0))
    reps = bs._calibration(w, bs.calibration_matrix(ys, ss, gs, 5), np.bincount(g, minlength=5))
    for b in range(4):
        rows = np.repeat(np.arange(s.size), w[b].astype(int))
        assert reps["ece"][b] == pytest.approx(ece_loop(ys[rows], ss[rows]), abs=1e-12)
        assert reps["brier"][b] == pytest.approx(brier_score_loss(ys[rows], ss[rows]), abs=1e-12)
        ece_g = [ece_loop(ys[rows][gs[rows] == i], ss[rows][gs[rows] == i]) for i in range(5)]
        np.testing.assert_allclose(reps["ece[<group>]"][b], ece_g, rtol=0, atol=1e-12)


def test_multi_class_targets_give_nan_for_every_new_binary_only_column():
    rng = np.random.default_rng(2)
    y, y_pred, g = rng.integers(0, 3, 300), rng.integers(0, 3, 300), rng.integers(0, 5, 300)
    row = row_of(y, y_pred, g, rng.random(300), num_classes=3)
    for key in NEW_OVERALL:
        assert np.isnan(row[key]), key
    for key in NEW_PER_GROUP:
        assert all(np.isnan(row[f"{key}[{x}]"]) for x in GROUPS), key
    out = bootstrap_intervals(y, y_pred, g, group_names=GROUPS, num_classes=3, n_boot=20)
    assert np.isnan(out["dp_ratio_lo"]) and np.isnan(out["ppv[A]_hi"]) and "ece_lo" not in out


def test_measure_carries_the_new_columns_with_their_registry_entries():
    y, y_pred, g, s = case(n=500, seed=4)
    pred = pd.DataFrame({"split": "test", "index": np.arange(500), "y_true": y, "y_score": s,
                         "y_pred": y_pred, "group": pd.Categorical.from_codes(g, categories=GROUPS)})
    rule = DecisionRule(0.5, bootstrap=30, bootstrap_scores=True)
    [(_, row, _)] = quiet(measure, pred, rule, "test", GROUPS, 2)
    for column in ("tp[A]", "ppv[B]", "f1[C]", "dp_ratio", "eo_ratio", "ece", "ece[D]", "ece_gap", "brier",
                   "brier[E]", "ece[A]_lo", "brier_hi", "ece_gap_median", "f1[A]_hi", "eo_ratio_lo"):
        assert column in row and registry.find(column) is not None, column
    assert registry.direction("dp_ratio") is True and registry.direction("ece[A]") is False
    assert registry.direction("tp[A]") is None and registry.metric("fn[B]").format == "d"
    assert "ece_gap" in registry.gaps() and "dp_ratio" not in registry.gaps()
    assert registry.label("ece[B]_hi") == "expected calibration error of group B, bootstrap upper end"
    assert registry.format_value("tp[A]", row["tp[A]"]) == str(row["tp[A]"])
