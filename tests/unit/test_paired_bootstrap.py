"""The paired, hierarchical bootstrap of `fairrun report` (fairrun.report.paired): calibration under the
null by simulation, power, the matrix route against a direct loop, pairing, and the fallbacks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fairrun import rundir
from fairrun.metrics import group_metrics
from fairrun.report import paired, simulate
from fairrun.report.table import aggregate

FPR_METRICS = ("accuracy", "dp_diff", "eo_diff")
REPS = 250
# At most this many of REPS replications may be non-≈ if the false-positive rate is 7 %: the 99.9 % binomial
# quantile, so that a test of a method at 7 % fails once in a thousand seeds of the simulation.
TOLERATED = int(stats.binom.ppf(0.999, REPS, 0.07))


def test_null_false_positive_rate_with_three_seeds_is_at_most_seven_percent():
    """ERM named twice (seeds 0-2 against 3-5, the same classifier up to seed), seed noise strong enough
    that the plain percentile bootstrap over 3 seeds is anti-conservative: the report's interval keeps
    the false-positive rate under 7 %, the plain one does not (so this test can fail)."""
    ours = simulate.simulate(REPS, 3, n_test=600, n_boot=300, metrics=FPR_METRICS, sigma_seed=0.5, seed=3)
    plain = simulate.simulate(REPS, 3, n_test=600, n_boot=300, metrics=("dp_diff",), sigma_seed=0.5, seed=3,
                              scale="plain")
    assert all(rate * REPS <= TOLERATED for rate in ours.values()), (ours, TOLERATED)
    assert plain["dp_diff"] * REPS > TOLERATED, plain  # without the correction: ~16 %


def test_power_detects_three_accuracy_points_with_five_seeds():
    """A margin shift of 0.15 (accuracy + 3.2 points on this test distribution) with 5 seeds per row and
    2000 test rows is detected (▲) in at least 90 % of the replications, and never as ▼."""
    rates = simulate.simulate(30, 5, n_test=2000, n_boot=300, shift=0.15, metrics=("accuracy",), seed=4)
    assert rates["accuracy"] >= 0.9
    rng = np.random.default_rng(0)
    groups, y, margin = simulate.test_set(rng, 200_000)
    gain = [simulate.observed_values(simulate.run_cells(rng, groups, y, margin, 10, s), ("accuracy",))
            ["accuracy"].mean() for s in (0.15, 0.0)]
    assert gain[0] - gain[1] == pytest.approx(0.032, abs=0.003)


def test_matrix_route_equals_a_direct_loop_over_replicates():
    """W @ onehot(cell) fed to the count formulas equals, replicate by replicate, fairrun's group_metrics of
    the rows repeated as often as they were drawn."""
    rng = np.random.default_rng(5)
    groups, y, margin = simulate.test_set(rng, 300)
    cells = simulate.run_cells(rng, groups, y, margin, 2)
    weights = paired.draw_weights(groups, 2, 20, rng)
    assert weights.dtype == np.float32 and (weights.sum(axis=1) == 300).all()
    assert (weights[:, groups == 1].sum(axis=1) == (groups == 1).sum()).all()  # stratified by group
    columns = ["accuracy", "worst_group_acc", "acc_gap", "dp_diff", "eo_diff", "acc[B]", "acc[A,1]"]
    counts = paired.replicate_counts(weights, cells, 8)
    for r in range(2):
        values = paired.count_replicates(counts[r], True, columns, simulate.GROUPS, simulate.CLASSES)
        y_hat = cells[r] % 2
        for b in range(20):
            rows = np.repeat(np.arange(300), weights[b].astype(int))
            want = group_metrics(y[rows], y_hat[rows], groups[rows], group_names=simulate.GROUPS, n_groups=2,
                                 class_names=simulate.CLASSES)
            for c in columns:
                assert values[c][b] == pytest.approx(want[c], abs=1e-12), (c, b)


def test_row_replicates_gather_runs_and_scale_the_seed_part():
    x = np.array([[1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0], [5.0, 9.0, 7.0, 8.0]])
    rng = np.random.default_rng(0)
    got = paired.row_replicates(x, rng, 2.0)
    drawn = np.random.default_rng(0).integers(0, 3, size=(3, 4))
    centre = x.mean(axis=0)
    want = centre + 2.0 * (x[drawn, np.arange(4)].mean(axis=0) - centre)
    np.testing.assert_allclose(got, want)
    np.testing.assert_array_equal(paired.row_replicates(x[:1], rng), x[0])  # one run: test noise only


def test_seed_scales_follow_welch():
    a, b = [0.70, 0.72, 0.74], [0.60, 0.61, 0.62]
    c_a, c_b, df = paired.seed_scales(a, b)
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 3
    assert df == pytest.approx((va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2))
    assert c_a == c_b == pytest.approx(np.sqrt(1.5) * stats.t.ppf(0.975, df) / stats.norm.ppf(0.975))
    assert paired.seed_scales([0.5, 0.5, 0.5], [0.4, 0.4])[2] == 3  # no spread: m1 + m0 - 2
    assert paired.seed_scales([0.5], [0.4, 0.5, 0.6])[:2][0] == 0.0  # one run: no seed part
    assert paired.verdict(0.01, 0.2) == "higher" and paired.verdict(-0.2, -0.01) == "lower"
    assert paired.verdict(-0.1, 0.0) == "within noise" and paired.verdict(np.nan, 1) == "no interval"


# ---------------------------------------------------------------- through run directories

METRICS = ["accuracy", "dp_diff", "auc", "acc[B]"]


def compare(root, metrics=METRICS, split="test"):
    """paired.compare over the run directories under ``root``, as `fairrun report` calls it."""
    dirs = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: int(p.name))
    rows = pd.concat([rundir.read_results(d / rundir.RESULTS) for d in dirs], ignore_index=True)
    rows["run_path"] = [str(d) for d in dirs]
    table = aggregate(rows, ["method"], metrics)
    out, notes = paired.compare(table, rows, ["method"], metrics, ("method", "erm"), list(rows["run_path"]),
                                split, n_boot=200)
    return out.set_index(["method", "metric"]), notes


def copy_run(source, target, method, permute=None):
    """A run with ``source``'s predictions (rows stored in another order with ``permute``) under another
    method."""
    pred = paired.read_predictions(source)
    if permute is not None:
        pred = pred.iloc[permute].reset_index(drop=True)
    results = rundir.read_results(source / rundir.RESULTS).assign(method=method)
    target.mkdir()
    rundir.write_pickle(pred, target / rundir.PREDICTIONS)
    rundir.write_pickle(results, target / rundir.RESULTS)


def test_identical_predictions_in_both_rows_give_exactly_zero(tmp_path):
    """Three copies of one model in each row (the copy's rows stored shuffled, matched by index): the
    paired difference is 0 in every replicate, so the interval is [0, 0]."""
    simulate.write_sweep(tmp_path, {"erm": 0.0}, [0], n_test=500)
    for k in (1, 2):
        copy_run(tmp_path / "0", tmp_path / str(k), "erm")
    for k in (3, 4, 5):
        copy_run(tmp_path / "0", tmp_path / str(k), "copy", permute=np.random.default_rng(k).permutation(500))
    out, notes = compare(tmp_path, ["accuracy", "dp_diff", "acc[B]"])
    assert notes == []
    for metric in ("accuracy", "dp_diff", "acc[B]"):
        row = out.loc[("copy", metric)]
        assert (row["diff"], row["diff_lo"], row["diff_hi"]) == (0.0, 0.0, 0.0)
        assert row["verdict"] == "≈" and row["paired"] == "yes" and row["interval"] == paired.PAIRED_INTERVAL
        assert (row["n_seeds"], row["baseline_n_seeds"]) == (3, 3)


def test_a_clear_difference_is_marked_and_erm_named_twice_is_not(tmp_path):
    simulate.write_sweep(tmp_path, {"erm": 0.0, "erm_again": 0.0, "better": 0.6}, [0, 1, 2], n_test=1000)
    out, _ = compare(tmp_path)
    assert (out.loc["erm_again", "verdict"] == "≈").all()
    assert out.loc[("better", "accuracy"), "verdict"] == "▲"
    assert out.loc[("better", "auc"), "interval"] == paired.SEEDS_INTERVAL  # a score metric: seeds only
    assert out.loc[("better", "auc"), "paired"] == "no: seeds only"
    acc = out.loc[("better", "accuracy")]
    assert acc["diff"] == pytest.approx(acc["value"] - acc["baseline_value"])
    assert acc["diff_lo"] < acc["diff"] < acc["diff_hi"]


def test_different_test_rows_fall_back_to_independent_draws(tmp_path):
    simulate.write_sweep(tmp_path, {"erm": 0.0}, [0, 1], n_test=400)
    other = simulate.test_set(np.random.default_rng(99), 400)
    for k, seed in ((2, 0), (3, 1)):
        simulate.write_run(tmp_path / str(k), np.random.default_rng(k), other, "other", 0.0, seed)
    out, _ = compare(tmp_path, ["accuracy"])
    row = out.loc[("other", "accuracy")]
    assert row["paired"] == "no: different test rows" and row["interval"] == paired.PAIRED_INTERVAL
    assert row["diff_lo"] < row["diff_hi"]


def test_predictions_that_do_not_reproduce_results_fall_back_to_seeds(tmp_path):
    simulate.write_sweep(tmp_path, {"erm": 0.0, "other": 0.0}, [0, 1], n_test=400)
    results = rundir.read_results(tmp_path / "3" / rundir.RESULTS)
    rundir.write_pickle(results.assign(accuracy=results["accuracy"] + 0.01), tmp_path / "3" / rundir.RESULTS)
    out, _ = compare(tmp_path, ["accuracy", "dp_diff"])
    assert out.loc[("other", "accuracy"), "interval"] == "seeds only: predictions do not reproduce results"
    assert out.loc[("other", "dp_diff"), "interval"] == paired.PAIRED_INTERVAL


def test_one_seed_per_row(tmp_path):
    """Count metrics keep the test-set interval; a seeds-only metric has none."""
    simulate.write_sweep(tmp_path, {"erm": 0.0, "other": 0.0}, [0], n_test=400)
    out, _ = compare(tmp_path, ["accuracy", "auc"])
    assert out.loc[("other", "accuracy"), "verdict"] in paired.MARKS.values()
    assert out.loc[("other", "auc"), "verdict"] == "too few seeds"
    legend = paired.legend(("method", "erm"), ["method"], out.reset_index())
    assert "1 vs 1 seeds" in legend and "test-set noise only" in legend


def test_missing_and_damaged_predictions_are_verdict_reasons(tmp_path):
    simulate.write_sweep(tmp_path, {"erm": 0.0, "gone": 0.0, "broken": 0.0}, [0, 1], n_test=300)
    (tmp_path / "2" / rundir.PREDICTIONS).unlink()
    damaged = tmp_path / "5" / rundir.PREDICTIONS
    damaged.write_bytes(damaged.read_bytes()[:100])
    out, notes = compare(tmp_path, ["accuracy", "auc"])
    assert out.loc[("gone", "accuracy"), "verdict"] == "no predictions"
    assert out.loc[("broken", "accuracy"), "verdict"] == "damaged predictions"
    assert np.isnan(out.loc[("broken", "accuracy"), "diff_lo"])
    assert out.loc[("gone", "auc"), "verdict"] in paired.MARKS.values()  # seeds only needs no predictions
    assert len(notes) == 1 and str(damaged) in notes[0] and "damaged" in notes[0]
    out, _ = compare(tmp_path, ["accuracy"], split="val")  # predictions without the split's rows
    assert out.loc[("broken", "accuracy"), "verdict"] == "no val predictions"
    rundir.checksum_path(tmp_path / "4" / rundir.PREDICTIONS).unlink()  # as an older fairrun wrote it
    out, notes = compare(tmp_path, ["accuracy"])
    assert out.loc[("broken", "accuracy"), "verdict"] == "unverified predictions"
    assert any("has no checksum recorded" in note for note in notes)
