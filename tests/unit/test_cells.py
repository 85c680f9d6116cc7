"""Per-cell results (issue 18): ``acc[<group>,<class>]``, ``n[<group>,<class>]`` and ``worst_cell_acc``,
the worst-group accuracy of the subpopulation-shift literature (Sagawa et al., ICLR 2020), with bootstrap
intervals."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import recall_score

from fairrun.evaluation.predictions import DecisionRule, measure, predictions_frame
from fairrun.metrics import (FairnessMetricWarning, bootstrap_intervals, group_metrics, per_cell_accuracy,
                             registry, worst_cell_acc)


def case(n=600, n_groups=3, k=2, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))
    g = rng.integers(0, n_groups, n)
    return y, y_pred, g


def quiet_metrics(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return group_metrics(*args, **kwargs)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_cell_accuracy_is_sklearn_recall_per_group_and_worst_cell_a_groupby_minimum(k):
    y, y_pred, g = case(k=k, seed=k)
    names, classes = ["A", "B", "C"], [f"c{j}" for j in range(k)]
    row = quiet_metrics(y, y_pred, g, group_names=names, num_classes=k, class_names=classes)
    for gi, name in enumerate(names):
        rows = g == gi
        recall = recall_score(y[rows], y_pred[rows], labels=list(range(k)), average=None,
                              zero_division=np.nan)
        np.testing.assert_allclose([row[f"acc[{name},{c}]"] for c in classes], recall, rtol=0, atol=1e-12)
        assert [row[f"n[{name},{c}]"] for c in classes] == np.bincount(y[rows], minlength=k).tolist()
    frame = pd.DataFrame({"y": y, "correct": y == y_pred, "g": g})
    expected = frame.groupby(["g", "y"])["correct"].mean().min()
    assert row["worst_cell_acc"] == pytest.approx(expected, abs=1e-12)
    assert worst_cell_acc(y, y_pred, g, num_classes=k) == row["worst_cell_acc"]
    cells = per_cell_accuracy(y, y_pred, g, num_classes=k)
    assert cells["acc"].shape == cells["n"].shape == (3, k)
    np.testing.assert_array_equal(cells["acc"].ravel(),
                                  [row[f"acc[{n},{c}]"] for n in names for c in classes])


def test_cell_columns_group_by_group_after_the_earlier_columns():
    y, y_pred, g = case()
    row = quiet_metrics(y, y_pred, g, group_names=["A", "B", "C"], class_names=["no", "yes"])
    keys = list(row)
    first = keys.index("worst_cell_acc")
    assert keys[first - 1] == "ap[C]"  # the earlier columns keep their places
    cells = [f"{m}[{grp},{c}]" for m in ("acc", "n") for grp in "ABC" for c in ("no", "yes")]
    assert keys[first + 1:first + 1 + len(cells)] == cells
    assert keys[first + 1 + len(cells)] == "tp[A]"  # the families added after the cells (issue 18) follow
    assert row["worst_cell_acc"] <= row["worst_group_acc"]


def test_empty_cells_are_nan_left_out_of_the_minimum_and_warned_once():
    y = np.array([0, 0, 1, 1, 0, 0, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 0, 0])
    g = np.array([0, 0, 0, 0, 1, 1, 1])  # group B has no label 1; no group C rows
    with pytest.warns(FairnessMetricWarning) as record:
        row = group_metrics(y, y_pred, g, group_names=["A", "B", "C"], num_classes=3,
                            class_names=["x", "y", "z"])
    assert len(record) == 1
    message = str(record[0].message)
    assert "B,y" in message and "A,z" in message and "C have no members" in message and "C,x" not in message
    assert np.isnan(row["acc[B,y]"]) and row["n[B,y]"] == 0 and np.isnan(row["acc[C,x]"])
    assert row["acc[A,x]"] == 0.5 and row["acc[B,z]"] == 0.0
    assert row["worst_cell_acc"] == 0.0
    with pytest.warns(FairnessMetricWarning) as record:
        assert worst_cell_acc(y[:4], y_pred[:4], g[:4], num_classes=3) == 0.5
    assert len(record) == 1 and "0,2" in str(record[0].message)
    with pytest.warns(FairnessMetricWarning, match="no samples"):
        assert np.isnan(worst_cell_acc(np.array([], int), np.array([], int), np.array([], int), n_groups=2))


def test_intervals_for_every_per_group_rate_and_cell_and_worst_cell():
    y, y_pred, g = case(n=900)
    out = bootstrap_intervals(y, y_pred, g, group_names=["A", "B", "C"], n_boot=200, seed=3, name="test",
                              class_names=["no", "yes"])
    point = quiet_metrics(y, y_pred, g, group_names=["A", "B", "C"], class_names=["no", "yes"])
    for column in (["worst_cell_acc"] + [f"{r}[{grp}]" for r in ("acc", "tpr", "fpr", "sel") for grp in "ABC"]
                   + [f"acc[{grp},{c}]" for grp in "ABC" for c in ("no", "yes")]):
        lo, med, hi = (out[f"{column}{s}"] for s in registry.INTERVAL_SUFFIXES)
        assert lo <= med <= hi and lo - 0.05 <= point[column] <= hi + 0.05, column
    assert "n[A]_lo" not in out and "n[A,no]_lo" not in out
    # the per-cell intervals are the per-group TPR's for the positive class: the same replicates
    for grp in "ABC":
        assert out[f"acc[{grp},yes]_lo"] == out[f"tpr[{grp}]_lo"]
        assert out[f"acc[{grp},yes]_hi"] == out[f"tpr[{grp}]_hi"]


def test_measure_names_cells_by_the_datasets_class_names():
    rng = np.random.default_rng(1)
    n = 300
    y, g = torch.tensor(rng.integers(0, 2, n)), torch.tensor(rng.integers(0, 2, n))
    proba = torch.softmax(torch.tensor(rng.normal(size=(n, 2)), dtype=torch.float32), dim=1)

    class Split:  # the fields predictions_frame reads
        def __init__(self):
            self.y, self.g, self.group_names = y, g, ["A", "B"]
            self.class_names = ["not_smiling", "smiling"]

        def __len__(self):
            return n

    pred = predictions_frame(Split(), proba, "test")
    rule = DecisionRule(threshold=0.5, bootstrap=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        [(_, row, _)] = measure(pred, rule, "test", ["A", "B"], 2)
        [(_, by_id, _)] = measure(pred, rule, "test", ["A", "B"], 2, class_names=["0", "1"])
    assert {"acc[A,smiling]", "acc[B,not_smiling]", "n[A,smiling]", "acc[A,smiling]_lo",
            "worst_cell_acc_hi"} <= set(row)
    assert row["acc[A,smiling]"] == by_id["acc[A,1]"] and row["worst_cell_acc"] == by_id["worst_cell_acc"]
    label = registry.label("acc[A,smiling]_hi")
    assert label == "accuracy of group A with label smiling, bootstrap upper end"
    assert registry.metric("n[A,smiling]").format == "d"
