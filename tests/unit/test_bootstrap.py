"""Percentile-bootstrap intervals: exact point estimates, the multinomial shortcut, coverage, shrinkage."""
from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from fairrun.evaluation.decision import EvalConfig
from fairrun.core.errors import ConfigError
from fairrun.evaluation.predictions import DecisionRule, measure
from fairrun.metrics import group_metrics
from fairrun.metrics import bootstrap as bs
from fairrun.metrics.counts import confusion_counts, count_metrics


def data(n=3000, groups=(0.7, 0.25, 0.05), seed=0, multiclass=False):
    rng = np.random.default_rng(seed)
    g = rng.choice(len(groups), n, p=groups)
    y = rng.integers(0, 3 if multiclass else 2, n)
    s = np.clip(np.round(rng.random(n) * 0.6 + 0.4 * (y > 0) - 0.1 * g, 2), 0, 1)  # ties on purpose
    y_pred = rng.integers(0, 3, n) if multiclass else (s > 0.5).astype(int)
    return y, y_pred, g, s


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize("multiclass", [False, True])
def test_count_metrics_of_the_observed_counts_equal_group_metrics(multiclass):
    y, y_pred, g, s = data(multiclass=multiclass)
    k = 3 if multiclass else 2
    ref = group_metrics(y, y_pred, g, n_groups=3, num_classes=k)
    got = count_metrics(confusion_counts(y, y_pred, g, 3, k)[None], binary=not multiclass)
    for metric in bs.COUNT_METRICS:  # one implementation: the same floats, bit for bit
        assert np.array_equal(got[metric][0], ref[metric], equal_nan=True), metric
    for i in range(3):
        assert got["acc[<group>]"][0, i] == ref[f"acc[{i}]"]


def test_count_metrics_with_an_empty_group_and_a_group_without_positives():
    y, y_pred, g, _ = data()
    g = np.where(g == 2, 3, g)  # group 2 empty, group 3 = the old rare group
    y = np.where(g == 3, 0, y)  # no positives in group 3: its TPR is undefined
    ref = group_metrics(y, y_pred, g, n_groups=4)
    got = count_metrics(confusion_counts(y, y_pred, g, 4, 2)[None], binary=True)
    for metric in bs.COUNT_METRICS:
        assert np.array_equal(got[metric][0], ref[metric], equal_nan=True), metric


def test_score_metrics_with_unit_weights_equal_the_point_estimates():
    y, _, g, s = data()
    ref = group_metrics(y, (s > 0.5).astype(int), g, scores=s, n_groups=3)
    order = np.argsort(s, kind="stable")[::-1]
    s_sorted, y_sorted, g_sorted = s[order], y[order].astype(float), g[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s.size - 1]
    w = np.ones((1, s.size))
    auc, ap = bs._ranking(w, y_sorted, last)
    assert auc[0] == pytest.approx(ref["auc"], abs=1e-12)
    assert ap[0] == pytest.approx(ref["ap"], abs=1e-12)
    assert bs._ti_gap(w, s_sorted, g_sorted, 3, last)[0] == pytest.approx(ref["ti_gap"], abs=1e-12)
    from scipy import sparse
    from fairrun.metrics.scores import KL_BINS, histogram_bins
    cells = sparse.csr_matrix((np.ones(s.size), (np.arange(s.size), (2 * g_sorted + y[order]) * KL_BINS
                                                 + histogram_bins(s_sorted))), shape=(s.size, 3 * 2 * KL_BINS))
    assert bs._kl(w, cells, 3)[0] == pytest.approx(ref["kl"], abs=1e-10)


def test_within_group_weights_keep_every_group_size():
    _, _, g, _ = data(n=500)
    w = bs._group_weights(g, 3, 50, np.random.default_rng(0))
    sizes = np.bincount(g, minlength=3)
    for k in range(3):
        assert (w[:, g == k].sum(axis=1) == sizes[k]).all()
    assert w.min() >= 0 and w.max() > 1  # some rows drawn twice


def test_multinomial_shortcut_has_the_distribution_of_row_resampling():
    """The vectorised replicates match a plain loop that resamples row indices within groups."""
    y, y_pred, g, s = data(n=2000)
    n_boot = 1500
    fast = count_metrics(bs.resample_counts(confusion_counts(y, y_pred, g, 3, 2), n_boot,
                                            np.random.default_rng(1)), True)
    rng = np.random.default_rng(2)
    members = [np.flatnonzero(g == k) for k in range(3)]
    slow = {m: [] for m in ("accuracy", "acc_gap", "eopp_diff", "dp_diff")}
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(m, m.size) for m in members])
        ref = group_metrics(y[idx], y_pred[idx], g[idx], n_groups=3)
        for m in slow:
            slow[m].append(ref[m])
    for m, values in slow.items():
        values = np.asarray(values)
        se = values.std() / np.sqrt(n_boot)
        assert abs(fast[m].mean() - values.mean()) < 5 * se * np.sqrt(2), m
        assert fast[m].std() == pytest.approx(values.std(), rel=0.12), m


def test_intervals_contain_the_estimate_and_shrink_as_n_grows():
    widths = []
    for n in (1000, 10_000, 100_000):
        y, y_pred, g, s = data(n=n, groups=(0.6, 0.4), seed=3)
        point = group_metrics(y, y_pred, g, scores=s, n_groups=2)
        ci = bs.bootstrap_intervals(y, y_pred, g, scores=s, n_groups=2, n_boot=400, seed=0, name="test")
        for m in ("accuracy", "acc_gap", "dp_diff", "eopp_diff", "acc[0]", "acc[1]", "auc", "ap"):
            assert ci[f"{m}_lo"] <= point[m] <= ci[f"{m}_hi"], (n, m)
            assert ci[f"{m}_lo"] <= ci[f"{m}_median"] <= ci[f"{m}_hi"]
        widths.append([ci[f"{m}_hi"] - ci[f"{m}_lo"] for m in ("accuracy", "acc[1]", "dp_diff", "ap", "kl")])
    widths = np.asarray(widths)
    assert (widths[1:] < widths[:-1]).all()
    # the standard error falls as 1/sqrt(n): 10x the rows, about 1/3.2 of the width
    assert np.all(widths[0, :3] / widths[2, :3] > 6)


def test_seeded_by_run_seed_and_split_name():
    y, y_pred, g, s = data(n=800)
    a = bs.bootstrap_intervals(y, y_pred, g, scores=s, n_boot=200, seed=4, name="test")
    b = bs.bootstrap_intervals(y, y_pred, g, scores=s, n_boot=200, seed=4, name="test")
    c = bs.bootstrap_intervals(y, y_pred, g, scores=s, n_boot=200, seed=4, name="val")
    assert a == b and a != c


def test_confidence_level_and_a_single_member_group():
    y, y_pred, g, _ = data(n=600, groups=(0.5, 0.5))
    g[0] = 2  # a group with one member: every replicate draws that row, its accuracy never varies
    wide = bs.bootstrap_intervals(y, y_pred, g, n_boot=500, confidence=0.99)
    narrow = bs.bootstrap_intervals(y, y_pred, g, n_boot=500, confidence=0.5)
    assert wide["accuracy_hi"] - wide["accuracy_lo"] > narrow["accuracy_hi"] - narrow["accuracy_lo"]
    assert wide["acc[2]_lo"] == wide["acc[2]_hi"] == float(y[0] == y_pred[0])


def test_score_intervals_follow_the_budget(monkeypatch):
    y, y_pred, g, s = data(n=1000)
    assert "ap_lo" in bs.bootstrap_intervals(y, y_pred, g, scores=s, n_boot=100)
    assert "ap_lo" not in bs.bootstrap_intervals(y, y_pred, g, scores=s, n_boot=100, score_metrics=False)
    monkeypatch.setattr(bs, "SCORE_BUDGET", 10_000)
    assert "ap_lo" not in bs.bootstrap_intervals(y, y_pred, g, scores=s, n_boot=100)
    assert "ap_lo" in bs.bootstrap_intervals(y, y_pred, g, scores=s, n_boot=100, score_metrics=True)


def predictions(n=400):
    y, _, g, s = data(n=n, groups=(0.8, 0.2))
    return pd.DataFrame({"split": "test", "index": np.arange(n), "y_true": y, "y_score": s,
                         "y_pred": (s > 0.5).astype(int),
                         "group": pd.Categorical.from_codes(g, categories=["A", "B"])})


def test_measure_adds_the_interval_columns_and_logs_a_skip(monkeypatch, caplog):
    [(_, metrics, _)] = measure(predictions(), DecisionRule(0.5, bootstrap=200), "test", ["A", "B"], 2)
    for m in ("acc_gap", "eo_diff", "worst_group_acc", "ba", "kl", "acc[A]", "acc[B]"):
        assert {f"{m}_lo", f"{m}_median", f"{m}_hi"} <= set(metrics)
    [(_, none, _)] = measure(predictions(), DecisionRule(0.5, bootstrap=0), "test", ["A", "B"], 2)
    assert not any(k.endswith("_lo") for k in none)
    monkeypatch.setattr(bs, "SCORE_BUDGET", 1000)
    with caplog.at_level(logging.INFO, logger="fairrun"):
        [(_, metrics, _)] = measure(predictions(), DecisionRule(0.5, bootstrap=200), "test", ["A", "B"], 2)
    assert "acc_gap_lo" in metrics and "kl_lo" not in metrics
    assert "eval.bootstrap_scores=true" in caplog.text


@pytest.mark.parametrize("key,value,accepted", [("bootstrap", -1, "integer >= 0"), ("confidence", 1.5, "(0, 1)"),
                                                ("bootstrap_scores", "sometimes", "true, false or auto")])
def test_bad_bootstrap_settings_are_named(key, value, accepted):
    with pytest.raises(ConfigError) as err:
        EvalConfig(**{key: value}).validate()
    assert f"eval.{key}" in str(err.value) and repr(value) in str(err.value) and accepted in str(err.value)
