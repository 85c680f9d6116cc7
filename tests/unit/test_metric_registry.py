"""The metric registry: the code computes exactly the registered metrics, point estimates and bootstrap
replicates share one implementation, directions decide "best", and docs/metrics.md shows the registry."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fairrun.metrics as metrics_api
from fairrun.evaluation.predictions import DecisionRule, measure
from fairrun.metrics import bootstrap, counts, group_metrics, registry
from fairrun.metrics.counts import Counts, confusion_counts, count_metrics

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
NOT_METRICS = {"threshold"}  # the decision rule's setting, in every results row but not a metric


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def rows(n=400, groups=("A", "B", "C"), num_classes=2, seed=0):
    """A predictions table as ``fairrun.evaluation.predictions`` builds it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    score = np.clip(np.round(0.35 * (y > 0) + 0.65 * rng.random(n), 2), 0, 1)
    pred = ((score > 0.5).astype(int) if num_classes == 2
            else np.where(rng.random(n) < 0.7, y, rng.integers(0, num_classes, n)))
    g = rng.integers(0, len(groups), n)
    return pd.DataFrame({"split": "test", "index": np.arange(n), "y_true": y, "y_score": score, "y_pred": pred,
                         "group": pd.Categorical.from_codes(g, categories=list(groups))})


def measured(num_classes=2, bootstrap_replicates=20):
    pred = rows(num_classes=num_classes)
    rule = DecisionRule(threshold=0.5 if num_classes == 2 else None, bootstrap=bootstrap_replicates,
                        bootstrap_scores=True)
    [(_, row, _)] = measure(pred, rule, "test", ["A", "B", "C"], num_classes)
    return row


# ---------------------------------------------------------------- the code computes what is registered

@pytest.mark.parametrize("num_classes", [2, 3])
def test_every_results_column_of_measure_is_registered_and_every_metric_is_computed(num_classes):
    row = measured(num_classes)
    unknown = [c for c in row if c not in NOT_METRICS and registry.find(c) is None]
    assert not unknown, f"results columns missing from the registry: {unknown}"
    families = {registry.split_column(c)[0] for c in row if c not in NOT_METRICS}
    assert families == set(registry.REGISTRY), "registered metrics that measure() does not compute"


def test_bootstrap_columns_are_the_metrics_the_registry_bootstraps():
    row = measured(2)
    with_interval = {registry.split_column(c)[0] for c in row if registry.split_column(c)[2]}
    assert with_interval == {m.key for m in registry.REGISTRY.values() if m.bootstraps}
    for column in row:
        key, _, suffix = registry.split_column(column)
        if suffix is None and column not in NOT_METRICS and registry.REGISTRY[key].bootstraps:
            assert all(f"{column}{s}" in row for s in registry.INTERVAL_SUFFIXES), column


def test_results_columns_follow_the_registry_order():
    row = group_metrics(*(rows()[c].to_numpy() for c in ("y_true", "y_pred")), rows()["group"].cat.codes.to_numpy(),
                        scores=rows()["y_score"].to_numpy(), group_names=["A", "B", "C"])
    expected = [c for m in registry.REGISTRY.values() for c in m.columns(["A", "B", "C"], ["0", "1"])]
    assert list(row) == expected


def test_results_row_column_order_is_pinned_with_the_cells_appended():
    """Point estimates in registry order (new families last), then the intervals: overall count metrics
    (worst_cell_acc, then the ratios last), per-group families (ppv, f1 last), cells, overall score metrics
    (the calibration values last), per-group score metrics (ece, brier)."""
    [(_, row, _)] = measure(rows(), DecisionRule(0.5, bootstrap=10, bootstrap_scores=True), "test",
                            ["A", "B", "C"], 2, class_names=["n", "p"])
    gs = ["A", "B", "C"]
    point = ["threshold", "n", "accuracy", "balanced_accuracy", "auc", "ap", "acc_gap", "acc_var",
             "worst_group_acc", "dp_diff", "eo_diff", "eopp_diff", "ba", "kl", "ti_gap"]
    point += [f"{m}[{x}]" for m in ("acc", "n", "tpr", "fpr", "sel", "ap") for x in gs]
    point += ["worst_cell_acc"] + [f"{m}[{x},{c}]" for m in ("acc", "n") for x in gs for c in "np"]
    point += [f"{m}[{x}]" for m in ("tp", "fp", "tn", "fn", "ppv", "f1") for x in gs]
    point += ["dp_ratio", "eo_ratio", "ece"] + [f"ece[{x}]" for x in gs] + ["ece_gap", "brier"]
    point += [f"brier[{x}]" for x in gs]
    boot = ["accuracy", "balanced_accuracy", "acc_gap", "acc_var", "worst_group_acc", "dp_diff", "eo_diff",
            "eopp_diff", "ba", "worst_cell_acc", "dp_ratio", "eo_ratio"]
    boot += [f"{m}[{x}]" for m in ("acc", "tpr", "fpr", "sel", "ppv", "f1") for x in gs]
    boot += [f"acc[{x},{c}]" for x in gs for c in "np"]
    boot += ["auc", "ap", "kl", "ti_gap", "ece", "ece_gap", "brier"]
    boot += [f"{m}[{x}]" for m in ("ece", "brier") for x in gs]
    assert list(row) == point + [f"{c}{s}" for c in boot for s in registry.INTERVAL_SUFFIXES]


def test_binary_only_metrics_are_nan_for_a_multi_class_target_and_defined_for_a_binary_one():
    multi, binary = measured(3, 0), measured(2, 0)
    for m in registry.REGISTRY.values():
        for column in m.columns(["A", "B", "C"]):
            assert np.isnan(multi[column]) == m.binary_only, column
            assert not np.isnan(binary[column]), column


def test_every_count_metric_has_one_formula_and_every_formula_a_count_metric():
    registered = {m.key for m in registry.metrics(kind="count")}
    assert set(counts.FORMULAS) == registered
    assert set(bootstrap.COUNT_METRICS) | {f"{m}[{registry.GROUP}]" for m in bootstrap.PER_GROUP} \
        | {f"{m}[{registry.GROUP},{registry.CLASS}]" for m in bootstrap.PER_CELL} == \
        {m.key for m in registry.metrics(kind="count", bootstraps=True)}
    assert bootstrap.SCORE_METRICS == tuple(m.name for m in registry.metrics(kind="score", per_group=False,
                                                                            bootstraps=True))
    assert bootstrap.SCORE_PER_GROUP == tuple(m.name for m in registry.metrics(kind="score", per_group=True,
                                                                              bootstraps=True))
    assert bootstrap.SCORE_PER_GROUP == ("ece", "brier")


def test_entries_are_well_formed():
    for key, m in registry.REGISTRY.items():
        assert key == m.key and re.fullmatch(r"\w+", m.name), key
        assert m.kind in registry.KINDS and m.definition and m.label and "\n" not in m.definition, key
        assert m.higher_is_better in (True, False, None), key
        format(1, m.format) if m.format == "d" else format(0.5, m.format)
        if m.gap:
            assert m.higher_is_better is False and not m.per_group, key
    for view, keys in registry.VIEWS.items():
        assert all(k in registry.REGISTRY for k in keys), view


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("``", "")).strip()


def test_each_definition_is_the_one_its_function_documents():
    for m in registry.REGISTRY.values():
        if m.function is None:
            continue
        doc = _normalise(getattr(metrics_api, m.function).__doc__)
        assert _normalise(m.definition) in doc, f"{m.key}: {m.definition!r} is not in {m.function}'s docstring"


# ---------------------------------------------------------------- one implementation for estimates and replicates

def _cases():
    """(y, y_pred, groups, n_groups, num_classes): two groups to twenty, empty groups, absent classes."""
    rng = np.random.default_rng(7)
    for case in range(60):
        n_groups = [2, 3, 4, 8, 9, 14, 20][case % 7]
        k = [2, 2, 3, 9, 12][case % 5]
        n = [0, 5, 40, 300, 2000][case % 5]
        g = rng.choice(n_groups, n, p=rng.dirichlet(np.ones(n_groups)))
        if case % 3 == 0 and n_groups > 2:  # leave some groups empty
            g = np.where(np.isin(g, rng.choice(n_groups, n_groups // 2, replace=False)), 0, g)
        y = rng.choice(k, n, p=rng.dirichlet(np.full(k, 0.3)))
        y_pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, k, n))
        yield y, y_pred, g, n_groups, k


def _as_floats(row, columns):
    return np.array([row[c] for c in columns], dtype=np.float64)


def test_the_point_estimate_is_the_count_formulas_on_the_observed_counts_bit_for_bit():
    for y, y_pred, g, n_groups, k in _cases():
        binary = k == 2
        names = [str(i) for i in range(n_groups)]
        ref = group_metrics(y, y_pred, g, n_groups=n_groups, num_classes=k)
        got = count_metrics(Counts(confusion_counts(y, y_pred, g, n_groups, k)[None], binary))
        for m in registry.metrics(kind="count"):
            expected = _as_floats(ref, m.columns(names, [str(c) for c in range(k)]))
            value = got[m.key][0] if m.per_group or m.per_cell else got[m.key]
            assert np.array_equal(np.asarray(value, dtype=np.float64).view(np.int64), expected.view(np.int64)), \
                (m.key, n_groups, k, len(y))


def test_each_bootstrap_replicate_is_the_point_estimate_of_its_rows():
    """The B replicate values equal group_metrics on rows rebuilt from each replicate's counts, bit for bit,
    also where numpy's pairwise summation would differ if undefined groups or classes were summed as 0."""
    for y, y_pred, g, n_groups, k in _cases():
        if not len(y):
            continue
        c = confusion_counts(y, y_pred, g, n_groups, k)
        replicates = bootstrap.resample_counts(c, 6, np.random.default_rng(len(y)))
        got = count_metrics(replicates, k == 2)
        for b, rep in enumerate(replicates):
            cells = np.repeat(np.arange(rep.size), rep.ravel())
            rg, rest = np.divmod(cells, k * k)
            ry, rp = np.divmod(rest, k)
            ref = group_metrics(ry, rp, rg, n_groups=n_groups, num_classes=k)
            for name in bootstrap.COUNT_METRICS:
                assert np.float64(got[name][b]).tobytes() == np.float64(ref[name]).tobytes(), (name, n_groups, k)


def test_replicates_reduce_like_numpy_over_the_defined_values():
    """Each replicate's gap, variance, worst value, balanced accuracy and BiasAmp is numpy's ptp / var / min /
    mean of that replicate's defined values (not a sum with zeros for the undefined ones, which numpy's
    pairwise summation would round differently from eight terms on)."""
    for y, y_pred, g, n_groups, k in _cases():
        if not len(y):
            continue
        reps = bootstrap.resample_counts(confusion_counts(y, y_pred, g, n_groups, k), 5, np.random.default_rng(1))
        state = Counts(reps, k == 2)
        got = count_metrics(state)
        for b in range(len(reps)):
            acc = state.acc[b][~np.isnan(state.acc[b])]
            rows_ = state.confusion[b].sum(axis=1)
            recall = np.diagonal(state.confusion[b])[rows_ > 0] / rows_[rows_ > 0]
            expected = {"acc_var": np.var(acc) if acc.size > 1 else np.nan,
                        "acc_gap": np.ptp(acc) if acc.size > 1 else np.nan,
                        "worst_group_acc": acc.min() if acc.size else np.nan,
                        "balanced_accuracy": np.mean(recall)}
            if k == 2 and np.count_nonzero(~np.isnan(state.sel[b])) > 1:
                sel = state.sel[b][~np.isnan(state.sel[b])]
                expected["dp_ratio"] = sel.min() / sel.max() if sel.max() > 0 else np.nan
            if k == 2:
                c = reps[b]
                n_a = c.sum(axis=(1, 2))
                delta = (c.sum(axis=1) - c.sum(axis=2))[n_a > 0] / n_a[n_a > 0, None]
                expected["ba"] = (np.where(counts.indicator(c.sum(axis=2))[n_a > 0], delta, -delta).mean()
                                  if np.count_nonzero(n_a) > 1 else np.nan)
            for name, value in expected.items():
                assert np.float64(got[name][b]).tobytes() == np.float64(value).tobytes(), (name, n_groups, k)


def test_the_single_metric_functions_agree_with_group_metrics():
    for y, y_pred, g, n_groups, k in _cases():
        ref = group_metrics(y, y_pred, g, n_groups=n_groups, num_classes=k)
        binary_only = ("dp_diff", "eo_diff", "eopp_diff", "dp_ratio", "eo_ratio")
        for name in ("acc_gap", "acc_var", "worst_group_acc") + (binary_only if k == 2 else ()):
            value = getattr(metrics_api, name)(y, y_pred, g, n_groups=n_groups)
            assert np.float64(value).tobytes() == np.float64(ref[name]).tobytes(), name
        if k == 2:
            ba = metrics_api.bias_amplification(y, y_pred, g, n_groups=n_groups)
            assert np.float64(ba).tobytes() == np.float64(ref["ba"]).tobytes()


# ---------------------------------------------------------------- direction decides "best"

def test_direction_decides_which_value_is_better_and_best():
    values = [0.3, float("nan"), 0.1, 0.7, 0.1]
    for m in registry.REGISTRY.values():
        column = m.columns(["A"], ["1"])[0]
        if m.higher_is_better is None:
            with pytest.raises(ValueError, match="no better"):
                registry.better(column, 1, 0)
            continue
        assert registry.better(column, 0.7, 0.3) == m.higher_is_better
        assert registry.better(f"{column}_median", 0.1, 0.3) == (not m.higher_is_better)
        assert not registry.better(column, float("nan"), 0.3) and not registry.better(column, 0.3, 0.3)
        assert registry.best_index(column, values) == (3 if m.higher_is_better else 2)
    assert registry.best_index("accuracy", [float("nan")]) is None
    for gap in registry.gaps():
        assert registry.direction(gap) is False


def test_the_checkpoint_metric_is_registered_with_a_direction():
    from fairrun.training.loop import SELECT

    assert registry.direction(SELECT) is True
    assert registry.better(SELECT, 0.0, -1.0)  # the first evaluation beats LoopState's initial best


# ---------------------------------------------------------------- how metrics are shown

def test_lookups_resolve_per_group_and_interval_columns():
    assert registry.metric("acc[Male]") is registry.REGISTRY["acc[<group>]"]
    assert registry.metric("acc[Male]_hi") is registry.REGISTRY["acc[<group>]"]
    assert registry.metric("ap") is not registry.metric("ap[x]")
    assert registry.split_column("eo_diff_lo") == ("eo_diff", None, "_lo")
    assert registry.split_column("n_train[A]") == ("n_train[<group>]", "A", None)
    assert registry.find("epsilon") is None and registry.find("n_train[A]") is None
    with pytest.raises(KeyError, match="not a registered metric"):
        registry.metric("epsilon")
    assert registry.label("accuracy") == "accuracy (fraction correct)"
    assert registry.label("acc[Male]") == "accuracy of group Male"
    assert registry.label("dp_diff_lo") == "demographic parity difference (selection-rate gap), bootstrap lower end"
    assert registry.label("n_train[A]") == "n_train of group A"
    assert registry.label("epsilon") == "epsilon"
    assert registry.format_value("n", 12) == "12" and registry.format_value("acc[A]", 0.5) == "0.5000"


def test_the_displays_show_what_they_showed_before_the_registry():
    """The column order of the printed table, the TensorBoard tags and the report defaults stay as they were,
    with worst_cell_acc after worst_group_acc in the printed table and TensorBoard (issue 18)."""
    assert registry.VIEWS["console"] == ("n", "accuracy", "balanced_accuracy", "auc", "worst_group_acc",
                                         "worst_cell_acc", "acc_gap", "acc_var", "dp_diff", "eo_diff",
                                         "eopp_diff", "acc[<group>]")
    assert registry.VIEWS["tensorboard"] == ("accuracy", "balanced_accuracy", "worst_group_acc",
                                             "worst_cell_acc", "acc_gap", "acc_var", "dp_diff", "eo_diff",
                                             "eopp_diff", "auc", "acc[<group>]")
    assert registry.VIEWS["hparams"] == ("accuracy", "worst_group_acc", "acc_gap", "dp_diff", "eo_diff", "eopp_diff")
    assert registry.VIEWS["report"] == ("accuracy", "worst_group_acc", "acc_gap", "dp_diff", "eo_diff")
    assert set(registry.gaps()) == {"acc_gap", "dp_diff", "eo_diff", "eopp_diff", "acc_var", "ti_gap", "kl",
                                    "ece_gap"}
    row = measured(2)
    columns = registry.view_columns("console", list(row) + ["acc[A]_lo"])
    assert columns == ["n", "accuracy", "balanced_accuracy", "auc", "worst_group_acc", "worst_cell_acc",
                       "acc_gap", "acc_var", "dp_diff", "eo_diff", "eopp_diff", "acc[A]", "acc[B]", "acc[C]"]


def test_the_console_table_prints_the_console_view():
    from fairrun.report.console import results_table

    frame = pd.DataFrame([{"split": "test", "run_dir": "x", **measured(2)}])
    header = results_table(frame).splitlines()[0].split()
    assert header == ["n", "accuracy", "balanced_accuracy", "auc", "worst_group_acc", "worst_cell_acc",
                      "acc_gap", "acc_var", "dp_diff", "eo_diff", "eopp_diff", "acc[A]", "acc[B]", "acc[C]"]


# ---------------------------------------------------------------- the docs

def test_the_docs_table_is_the_registry():
    shown = registry.table_in(DOCS.read_text(encoding="utf-8"))
    assert shown == registry.markdown_table(), (
        "docs/metrics.md's metric table differs from the registry: run "
        "`python -m fairrun.metrics --markdown docs/metrics.md`")


def test_the_markdown_command_rewrites_only_the_table(tmp_path, capsys):
    page = tmp_path / "metrics.md"
    page.write_text(f"intro\n{registry.TABLE_START}\nSTALE TABLE\n{registry.TABLE_END}\noutro\n", encoding="utf-8")
    assert registry.main(["--markdown", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith(f"{registry.TABLE_END}\noutro\n") and "STALE TABLE" not in text
    assert registry.table_in(text) == registry.markdown_table()
    assert registry.main([]) == 2
