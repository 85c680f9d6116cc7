"""fairrun.metrics against fairlearn / scikit-learn on random cases, plus hand-checked edge cases."""

import numpy as np
import pytest
import torch
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    roc_auc_score,
)

from fairrun.metrics import (
    FairnessMetricWarning,
    acc_gap,
    acc_var,
    accuracy,
    auc,
    average_precision,
    balanced_accuracy,
    dp_diff,
    eo_diff,
    eopp_diff,
    group_metrics,
    per_group_rates,
    worst_group_acc,
)

# Well-defined inputs must not warn at all, and numpy must never leak a RuntimeWarning.
pytestmark = [
    pytest.mark.filterwarnings("error::RuntimeWarning"),
    pytest.mark.filterwarnings("error::fairrun.metrics.FairnessMetricWarning"),
]

TOL = 1e-12
SUMMARY_KEYS = ["n", "accuracy", "balanced_accuracy", "auc", "ap", "acc_gap", "acc_var",
                "worst_group_acc", "dp_diff", "eo_diff", "eopp_diff", "ba", "kl", "ti_gap"]


def random_case(seed):
    """2..7 groups of imbalanced sizes, group-dependent base rates and error rates.

    The first 2G rows give every group one negative and one positive, so every rate is defined.
    """
    rng = np.random.default_rng(seed)
    n_groups = int(rng.integers(2, 8))
    n = int(rng.integers(40, 2000))
    g = rng.choice(n_groups, n, p=rng.dirichlet(np.full(n_groups, rng.uniform(0.3, 3.0))))
    y = (rng.random(n) < rng.uniform(0.05, 0.95, n_groups)[g]).astype(np.int64)
    g[: 2 * n_groups] = np.repeat(np.arange(n_groups), 2)
    y[: 2 * n_groups] = np.tile([0, 1], n_groups)
    y_pred = np.where(rng.random(n) < rng.uniform(0.0, 0.5, n_groups)[g], 1 - y, y)
    return y, y_pred, g, n_groups


def single_warning(record):
    assert len(record) == 1, [str(w.message) for w in record]
    return str(record[0].message)


N_CASES = 150
CASES = [random_case(seed) for seed in range(N_CASES)]


@pytest.fixture(scope="module")
def fairlearn_by_group():
    """fairlearn's per-group metrics for all random cases from one MetricFrame.

    The sensitive feature is (case, group) flattened to 8 * case + group: one frame instead of one per case
    keeps the test fast, and unlike control features it computes no empty (case, group) cells.
    """
    y, y_pred, g = (np.concatenate([case[i] for case in CASES]) for i in range(3))
    case_ids = np.repeat(np.arange(N_CASES), [case[0].size for case in CASES])
    frame = MetricFrame(
        metrics={"acc": accuracy_score, "tpr": true_positive_rate, "fpr": false_positive_rate,
                 "sel": selection_rate},
        y_true=y, y_pred=y_pred, sensitive_features=8 * case_ids + g)
    return frame.by_group


@pytest.mark.parametrize("seed", range(N_CASES))
def test_matches_metricframe(seed, fairlearn_by_group):
    y, y_pred, g, n_groups = CASES[seed]
    by_group = fairlearn_by_group.loc[8 * seed: 8 * seed + n_groups - 1]
    # MetricFrame.difference() (method="between_groups") is max - min of by_group; fairlearn's
    # demographic_parity_difference and equalized_odds_difference are built on it
    diff = by_group.max() - by_group.min()

    rates = per_group_rates(y, y_pred, g)
    for key in ("acc", "tpr", "fpr", "sel"):
        np.testing.assert_allclose(rates[key], by_group[key].to_numpy(), rtol=0, atol=TOL)
    np.testing.assert_array_equal(rates["n"], np.bincount(g))
    np.testing.assert_array_equal(rates["pos"], np.bincount(g, weights=y))
    np.testing.assert_array_equal(rates["neg"], np.bincount(g, weights=1 - y))

    assert dp_diff(y, y_pred, g) == pytest.approx(diff["sel"], abs=TOL)
    assert eo_diff(y, y_pred, g) == pytest.approx(max(diff["tpr"], diff["fpr"]), abs=TOL)
    assert eopp_diff(y, y_pred, g) == pytest.approx(diff["tpr"], abs=TOL)
    assert acc_gap(y, y_pred, g) == pytest.approx(diff["acc"], abs=TOL)
    assert worst_group_acc(y, y_pred, g) == pytest.approx(by_group["acc"].min(), abs=TOL)
    assert acc_var(y, y_pred, g) == pytest.approx(np.var(by_group["acc"].to_numpy()), abs=TOL)

    summary = group_metrics(y, y_pred, g)
    assert summary["accuracy"] == pytest.approx(accuracy_score(y, y_pred), abs=TOL)
    assert summary["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, y_pred), abs=TOL)
    for key, fn in [("acc_gap", acc_gap), ("acc_var", acc_var), ("worst_group_acc", worst_group_acc),
                    ("dp_diff", dp_diff), ("eo_diff", eo_diff), ("eopp_diff", eopp_diff)]:
        assert summary[key] == fn(y, y_pred, g)
    for key in ("acc", "tpr", "fpr", "sel", "n"):
        assert [summary[f"{key}[{i}]"] for i in range(n_groups)] == rates[key].tolist()


@pytest.mark.parametrize("seed", range(0, N_CASES, 15))
def test_difference_functions_match_fairlearn(seed):
    y, y_pred, g, _ = CASES[seed]
    assert dp_diff(y, y_pred, g) == pytest.approx(
        demographic_parity_difference(y, y_pred, sensitive_features=g), abs=TOL)
    assert eo_diff(y, y_pred, g) == pytest.approx(
        equalized_odds_difference(y, y_pred, sensitive_features=g), abs=TOL)


@pytest.mark.parametrize("seed", range(40))
def test_ranking_metrics_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 3000))
    y = (rng.random(n) < rng.uniform(0.02, 0.98)).astype(int)
    y[:2] = [0, 1]
    levels = [3, 10, 1000, None][seed % 4]  # heavy ties ... no ties
    scores = rng.random(n) if levels is None else rng.integers(0, levels, n) / levels
    assert auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=TOL)
    assert average_precision(y, scores) == pytest.approx(average_precision_score(y, scores), abs=TOL)


def test_ranking_metrics_all_tied_and_perfect():
    y = np.array([0, 1, 0, 1, 1])
    assert auc(y, np.full(5, 0.3)) == 0.5
    assert average_precision(y, np.full(5, 0.3)) == pytest.approx(0.6)
    assert auc(y, y * 0.9) == 1.0
    assert average_precision(y, y * 0.9) == 1.0


def test_ranking_metrics_single_class_is_nan():
    for fn in (auc, average_precision):
        with pytest.warns(FairnessMetricWarning, match="only one class") as record:
            assert np.isnan(fn(np.ones(4, int), np.array([0.1, 0.2, 0.3, 0.4])))
        single_warning(record)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_accuracy_and_balanced_accuracy_match_sklearn(n_classes):
    rng = np.random.default_rng(n_classes)
    y = rng.choice(n_classes, 500, p=rng.dirichlet(np.ones(n_classes)))
    y[:n_classes] = np.arange(n_classes)
    y_pred = np.where(rng.random(500) < 0.3, rng.integers(0, n_classes, 500), y)
    assert accuracy(y, y_pred) == pytest.approx(accuracy_score(y, y_pred), abs=TOL)
    assert balanced_accuracy(y, y_pred) == pytest.approx(balanced_accuracy_score(y, y_pred), abs=TOL)


def test_multiclass_group_metrics():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 4, 600)
    y_pred = np.where(rng.random(600) < 0.4, rng.integers(0, 4, 600), y)
    g = rng.integers(0, 3, 600)
    names = ["a", "b", "c"]
    summary = group_metrics(y, y_pred, g, scores=rng.random(600), group_names=names, num_classes=4)
    frame = MetricFrame(metrics=accuracy_score, y_true=y, y_pred=y_pred, sensitive_features=g)
    binary_keys = list(group_metrics(y % 2, y_pred % 2, g, group_names=names))
    cells = [f"{key}[{name},{c}]" for key in ("acc", "n") for name in names for c in range(4)]
    first, last = binary_keys.index("acc[a,0]"), binary_keys.index("n[c,1]")  # the cells of K = 2
    assert list(summary) == binary_keys[:first] + cells + binary_keys[last + 1:]  # a cell per class (K = 4)
    assert summary["accuracy"] == pytest.approx(accuracy_score(y, y_pred), abs=TOL)
    assert summary["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, y_pred), abs=TOL)
    assert summary["acc_gap"] == pytest.approx(frame.difference(), abs=TOL)
    assert summary["worst_group_acc"] == pytest.approx(frame.group_min(), abs=TOL)
    assert summary["acc_var"] == pytest.approx(np.var(frame.by_group.to_numpy()), abs=TOL)
    assert [summary[f"acc[{k}]"] for k in names] == pytest.approx(frame.by_group.to_numpy(), abs=TOL)
    assert [summary[f"n[{k}]"] for k in names] == np.bincount(g).tolist()
    for key in ["auc", "ap", "dp_diff", "eo_diff", "eopp_diff", "ba", "kl", "ti_gap", "tpr[a]",
                "fpr[b]", "sel[c]", "ap[a]"]:
        assert np.isnan(summary[key])
    # a label > 1 switches to multi-class even with the default num_classes
    assert np.isnan(group_metrics(y, y_pred, g)["dp_diff"])
    assert acc_gap(y, y_pred, g) == summary["acc_gap"]


def test_empty_group():
    y = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    y_pred = np.array([0, 1, 0, 0, 1, 1, 1, 1])
    g = np.array([0, 0, 0, 0, 2, 2, 2, 2])
    with pytest.warns(FairnessMetricWarning, match=r"group\(s\) mid have no members") as record:
        summary = group_metrics(y, y_pred, g, group_names=["lo", "mid", "hi"])
    single_warning(record)
    assert summary["n[mid]"] == 0
    for key in ("acc", "tpr", "fpr", "sel"):
        assert np.isnan(summary[f"{key}[mid]"])
    # group 0: acc 3/4, tpr 1/2, fpr 0, sel 1/4; group 2: acc 2/4, tpr 1, fpr 1, sel 1
    assert summary["acc_gap"] == pytest.approx(0.25)
    assert summary["acc_var"] == pytest.approx(0.125 ** 2)
    assert summary["worst_group_acc"] == pytest.approx(0.5)
    assert summary["dp_diff"] == pytest.approx(0.75)
    assert summary["eopp_diff"] == pytest.approx(0.5)
    assert summary["eo_diff"] == pytest.approx(1.0)
    with pytest.warns(FairnessMetricWarning, match="1 have no members") as record:
        assert dp_diff(y, y_pred, g) == pytest.approx(0.75)
    single_warning(record)
    with pytest.warns(FairnessMetricWarning, match="3 have no members"):
        rates = per_group_rates(y, y_pred, g, n_groups=4)
    assert rates["n"].tolist() == [4, 0, 4, 0]
    assert np.isnan(rates["acc"][[1, 3]]).all()


def test_group_without_positives_or_negatives():
    y = np.array([0, 0, 0, 1, 1, 0, 1, 1, 1, 1])
    y_pred = np.array([0, 1, 0, 1, 0, 0, 1, 1, 1, 0])
    g = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    # group 0 has no positives, group 2 no negatives
    with pytest.warns(FairnessMetricWarning) as record:
        rates = per_group_rates(y, y_pred, g)
    message = single_warning(record)
    assert "0 have no positive labels" in message and "2 have no negative labels" in message
    assert np.isnan(rates["tpr"][0]) and np.isnan(rates["fpr"][2])
    np.testing.assert_allclose(rates["tpr"][1:], [0.5, 0.75])
    np.testing.assert_allclose(rates["fpr"][:2], [1 / 3, 0.0])
    with pytest.warns(FairnessMetricWarning, match="no positive labels") as record:
        assert eopp_diff(y, y_pred, g) == pytest.approx(0.25)
    single_warning(record)
    with pytest.warns(FairnessMetricWarning) as record:
        assert eo_diff(y, y_pred, g) == pytest.approx(1 / 3)
    single_warning(record)
    # dp_diff does not need positives or negatives, so it does not warn
    assert dp_diff(y, y_pred, g) == pytest.approx(0.75 - 1 / 3)


def test_eo_diff_nan_when_one_gap_undefined():
    y = np.array([0, 1, 1, 1])
    y_pred = np.array([0, 1, 0, 1])
    g = np.array([0, 0, 1, 1])  # only group 0 has negatives: FPR gap undefined
    with pytest.warns(FairnessMetricWarning, match="FPR gap is NaN") as record:
        assert np.isnan(eo_diff(y, y_pred, g))
    single_warning(record)
    assert eopp_diff(y, y_pred, g) == pytest.approx(0.5)


def test_single_group():
    y = np.array([0, 1, 1, 0])
    y_pred = np.array([0, 1, 0, 0])
    g = np.zeros(4, int)
    with pytest.warns(FairnessMetricWarning, match="fewer than two groups") as record:
        summary = group_metrics(y, y_pred, g)
    single_warning(record)
    for key in ("acc_gap", "acc_var", "dp_diff", "eo_diff", "eopp_diff"):
        assert np.isnan(summary[key])
    assert summary["worst_group_acc"] == summary["accuracy"] == 0.75
    assert summary["tpr[0]"] == 0.5 and summary["fpr[0]"] == 0.0
    for fn in (acc_gap, acc_var, dp_diff, eo_diff, eopp_diff):
        with pytest.warns(FairnessMetricWarning) as record:
            assert np.isnan(fn(y, y_pred, g))
        single_warning(record)


def test_all_same_predictions():
    y, _, g, n_groups = random_case(3)
    for value in (0, 1):
        y_pred = np.full_like(y, value)
        summary = group_metrics(y, y_pred, g)
        assert summary["dp_diff"] == summary["eo_diff"] == summary["eopp_diff"] == 0.0
        assert summary["balanced_accuracy"] == 0.5
        assert all(summary[f"sel[{i}]"] == value for i in range(n_groups))
        assert summary["dp_diff"] == demographic_parity_difference(y, y_pred, sensitive_features=g)
        assert summary["eo_diff"] == equalized_odds_difference(y, y_pred, sensitive_features=g)


def test_empty_input():
    empty = np.array([], dtype=int)
    with pytest.warns(FairnessMetricWarning, match="no samples") as record:
        summary = group_metrics(empty, empty, empty, scores=np.array([]))
    single_warning(record)
    assert summary["n"] == 0
    assert all(np.isnan(summary[key]) for key in SUMMARY_KEYS[1:])


def test_torch_inputs_match_numpy():
    y, y_pred, g, _ = random_case(11)
    scores = np.random.default_rng(0).random(y.size)
    as_numpy = group_metrics(y, y_pred, g, scores=scores)
    as_torch = group_metrics(torch.tensor(y, dtype=torch.float32), torch.tensor(y_pred),
                             torch.tensor(g), scores=torch.tensor(scores, requires_grad=True))
    np.testing.assert_equal(as_torch, as_numpy)
    assert auc(torch.tensor(y), torch.tensor(scores)) == as_numpy["auc"]
    assert dp_diff(torch.tensor(y), torch.tensor(y_pred).bool(), torch.tensor(g)) == as_numpy["dp_diff"]


def test_summary_keys_and_group_names():
    y, y_pred, g, _ = random_case(5)
    names = [f"g{i}" for i in range(7)]
    summary = group_metrics(y, y_pred, np.minimum(g, 1), group_names=names[:2])
    per_group = [f"{key}[{name}]" for key in ("acc", "n", "tpr", "fpr", "sel", "ap")
                 for name in names[:2]]
    cells = [f"{key}[{name},{c}]" for key in ("acc", "n") for name in names[:2] for c in (0, 1)]
    later = [f"{key}[{name}]" for key in ("tp", "fp", "tn", "fn", "ppv", "f1") for name in names[:2]]
    later += ["dp_ratio", "eo_ratio", "ece"] + [f"ece[{name}]" for name in names[:2]] + ["ece_gap", "brier"]
    later += [f"brier[{name}]" for name in names[:2]]  # issue 18: appended after the per-cell columns
    assert list(summary) == SUMMARY_KEYS + per_group + ["worst_cell_acc"] + cells + later


def test_invalid_inputs_raise():
    y = np.array([0, 1, 1])
    with pytest.raises(ValueError, match="binary"):
        dp_diff(np.array([0, 2, 1]), y, np.zeros(3, int))
    with pytest.raises(ValueError, match="out of range"):
        dp_diff(y, y, np.array([0, 1, 2]), n_groups=2)
    with pytest.raises(ValueError, match="lengths differ"):
        eo_diff(y, y[:2], np.zeros(3, int))
    with pytest.raises(ValueError, match="integer"):
        acc_gap(y, y, np.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="group_names"):
        group_metrics(y, y, np.array([0, 1, 2]), group_names=["a", "b"], n_groups=3)
