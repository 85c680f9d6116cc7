"""`fairrun report`: job statuses, the mean ± std table, the paired-bootstrap marks, the Pareto set, charts
and user mistakes, on fabricated run directories (results.pkl written with pandas, predictions.pkl by
fairrun.report.simulate; no training)."""
from __future__ import annotations

import itertools
import zlib

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from fairrun import rundir
from fairrun.cli import main as fairrun_main
from fairrun.report import noise, simulate
from fairrun.report.cli import report_main
from fairrun.report.collect import collect, expected_jobs
from fairrun.report.plots import pareto_mask

RATIOS, SEEDS, METHODS = [1.0, 0.9, 0.5], [0, 1], ["erm", "reweight"]
FAILED, UNFINISHED, MISSING = 3, 6, 11  # job numbers: each (method, ratio) group keeps at least one run
SWEEP_TASK = ["dataset.n_train=300", "imbalance.ratio=1,0.9,0.5", "seed=0,1", "method=erm,reweight"]


def fake_results(run_dir, method, ratio, seed, epsilon=float("nan")) -> pd.DataFrame:
    """Plausible val and test rows of one run, with bootstrap intervals for every metric.

    The test split's accuracy interval is built so that, against erm: reweight at ratio 1 overlaps
    (within noise), at 0.9 lies above (higher) and at 0.5 below (lower).
    """
    rng = np.random.default_rng(zlib.crc32(f"{method} {ratio} {seed}".encode()))
    rows = []
    for split in ("val", "test"):
        acc_a, acc_b = 0.9 + 0.01 * rng.standard_normal(), 0.9 - 0.6 * (ratio - 0.5) + 0.02 * rng.standard_normal()
        acc = (acc_a + acc_b) / 2
        row = {"run_dir": str(run_dir), "split": split, "dataset": "synthetic", "target": "smiling",
               "protected": "group", "model": "cnn", "method": method, "imbalance_ratio": ratio, "seed": seed,
               "train_seconds": 1.0, "best_epoch": 1, "epochs": 1, "epsilon": epsilon, "delta": np.nan,
               "noise_multiplier": np.nan, "max_grad_norm": np.nan,
               "n_train[A]": int(300 * ratio), "n_train[B]": 300 - int(300 * ratio), "threshold": 0.5, "n": 200,
               "accuracy": acc, "balanced_accuracy": acc, "auc": acc + 0.05, "ap": acc,
               "acc_gap": abs(acc_a - acc_b), "acc_var": (acc_a - acc_b) ** 2 / 4,
               "worst_group_acc": min(acc_a, acc_b), "dp_diff": 0.1 + 0.05 * rng.random(),
               "eo_diff": 0.2 + 0.05 * rng.random(), "eopp_diff": 0.1, "ba": 0.01, "kl": 0.2, "ti_gap": 0.05,
               "acc[A]": acc_a, "acc[B]": acc_b, "n[A]": 100, "n[B]": 100}
        for m in ("accuracy", "worst_group_acc", "acc_gap", "dp_diff", "eo_diff", "acc[A]", "acc[B]"):
            row[f"{m}_lo"], row[f"{m}_hi"], row[f"{m}_median"] = row[m] - 0.03, row[m] + 0.03, row[m]
        if split == "test":  # the constructed intervals (see the docstring)
            centre = {("reweight", 1.0): 0.72, ("reweight", 0.9): 0.80, ("reweight", 0.5): 0.60}.get((method, ratio), 0.7)
            row["accuracy_lo"], row["accuracy_hi"] = centre - 0.02 + 0.001 * seed, centre + 0.02 + 0.001 * seed
        rows.append(row)
    return pd.DataFrame(rows)


def write_job(job_dir, overrides, results=None, done=True, error=None):
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if results is not None:
        rundir.write_pickle(results, job_dir / "results.pkl")  # as fairrun train writes it: with results.json
        (job_dir / "run_config.yaml").write_text("seed: 0\n")
    if done:
        (job_dir / "done").write_text("")
    if error is not None:
        (job_dir / "error.txt").write_text(error)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 12-job sweep (ratio x seed x method, Hydra's order): 9 finished, job 3 failed, 6 unfinished, 11 missing."""
    root = tmp_path_factory.mktemp("report") / "sweep"
    root.mkdir()
    (root / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                               "max_batch_size": None, "params": None},
                   "overrides": {"hydra": ["hydra.mode=MULTIRUN"], "task": SWEEP_TASK}},
         "seed": 0}))
    frames = []
    for num, (ratio, seed, method) in enumerate(itertools.product(RATIOS, SEEDS, METHODS)):
        job_dir = root / str(num)
        overrides = ["dataset.n_train=300", f"imbalance.ratio={ratio:g}", f"seed={seed}", f"method={method}"]
        if num == MISSING:
            continue
        if num == FAILED:
            write_job(job_dir, overrides, done=False,
                      error="fairrun: error: imbalance.size=99 is too large for group B\n\nTraceback (most recent):\n")
        elif num == UNFINISHED:
            write_job(job_dir, overrides, done=False)
        else:
            results = fake_results(job_dir, method, ratio, seed)
            write_job(job_dir, overrides, results)
            frames.append(results.assign(job=str(num), overrides=" ".join(overrides)))
    out = root.parent / "out"
    code = report_main([str(root), "--out", str(out)])
    assert code == 0
    return {"root": root, "out": out, "frames": frames}


def test_expected_jobs_follow_hydras_basic_sweeper(sweep):
    jobs = expected_jobs(sweep["root"])
    assert len(jobs) == 12
    assert jobs[0] == ["dataset.n_train=300", "imbalance.ratio=1", "seed=0", "method=erm"]
    assert jobs[MISSING] == ["dataset.n_train=300", "imbalance.ratio=0.5", "seed=1", "method=reweight"]


def test_job_statuses_are_counted_and_listed(sweep, capsys):
    jobs = pd.read_csv(sweep["out"] / "jobs.csv", keep_default_na=False, dtype=str)
    assert list(jobs.columns) == ["job", "status", "overrides", "error"]
    assert jobs["status"].value_counts().to_dict() == {"finished": 9, "failed": 1, "unfinished": 1, "missing": 1}
    status = jobs.set_index("job")["status"]
    assert (status[str(FAILED)], status[str(UNFINISHED)], status[str(MISSING)]) == ("failed", "unfinished", "missing")
    failed = jobs.set_index("job").loc[str(FAILED)]
    assert failed["error"] == "fairrun: error: imbalance.size=99 is too large for group B"
    assert failed["overrides"] == "dataset.n_train=300 imbalance.ratio=1 seed=1 method=reweight"
    assert jobs.set_index("job").loc[str(MISSING), "overrides"].endswith("imbalance.ratio=0.5 seed=1 method=reweight")
    report = (sweep["out"] / "report.txt").read_text(encoding="utf-8")
    assert "finished 9, failed 1, unfinished 1, missing 1" in report
    assert "too large for group B" in report


def test_sweep_pkl_is_the_concatenation_of_finished_results(sweep):
    got = pd.read_pickle(sweep["out"] / "sweep.pkl")
    want = pd.concat(sweep["frames"], ignore_index=True)
    assert sorted(got["job"].unique(), key=int) == sorted(want["job"].unique(), key=int)
    got = got.sort_values(["job", "split"]).reset_index(drop=True)
    want = want.sort_values(["job", "split"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got[want.columns], want)
    assert set(got.columns) == set(want.columns)
    assert (sweep["out"] / "sweep.csv").is_file()


def test_table_means_and_stds_match_pandas_groupby(sweep):
    table = pd.read_csv(sweep["out"] / "table.csv")
    assert list(table[["method", "imbalance_ratio"]].itertuples(index=False, name=None)) == \
        [("erm", 1.0), ("erm", 0.9), ("erm", 0.5), ("reweight", 1.0), ("reweight", 0.9), ("reweight", 0.5)]
    test = pd.concat(sweep["frames"]).query("split == 'test'")
    metrics = ["accuracy", "worst_group_acc", "acc_gap", "dp_diff", "eo_diff"]
    want = test.groupby(["method", "imbalance_ratio"])[metrics].agg(["mean", "std", "size"])
    for m in ("accuracy", "worst_group_acc", "acc_gap", "dp_diff", "eo_diff"):
        for row in table.itertuples(index=False):
            key = (row.method, row.imbalance_ratio)
            assert row.n == want.loc[key, (m, "size")]
            assert table.set_index(["method", "imbalance_ratio"]).loc[key, f"{m}_mean"] == \
                pytest.approx(want.loc[key, (m, "mean")])
            std = table.set_index(["method", "imbalance_ratio"]).loc[key, f"{m}_std"]
            assert std == pytest.approx(want.loc[key, (m, "std")], nan_ok=True)
    report = (sweep["out"] / "report.txt").read_text(encoding="utf-8")
    header = next(line for line in report.splitlines() if line.startswith("method"))
    assert header.split() == ["method", "imbalance_ratio", "n", "accuracy", "worst_group_acc", "acc_gap",
                              "dp_diff", "eo_diff"]
    erm_1 = want.loc[("erm", 1.0)]
    assert f"{erm_1[('accuracy', 'mean')]:.4f} ± {erm_1[('accuracy', 'std')]:.4f}" in report
    assert "± –" in report  # groups with a single run (a failed, unfinished or missing seed)


def test_runs_without_predictions_get_a_reason_not_a_mark(sweep):
    """The fixture's runs have results.pkl but no predictions.pkl: count metrics cannot be bootstrapped over
    the test rows, so their verdict says why; the old interval columns stay."""
    comparisons = pd.read_csv(sweep["out"] / "comparisons.csv")
    assert list(comparisons.columns) == [
        "method", "imbalance_ratio", "metric", "baseline", "value", "lo", "hi", "baseline_value",
        "baseline_lo", "baseline_hi", "diff", "diff_lo", "diff_hi", "verdict", "n_seeds",
        "baseline_n_seeds", "interval", "paired"]
    acc = comparisons[comparisons["metric"] == "accuracy"].set_index("imbalance_ratio")
    assert (acc["method"] == "reweight").all() and (acc["baseline"] == "method=erm").all()
    assert (acc["verdict"] == "no predictions").all() and acc["diff_lo"].isna().all()
    assert acc.loc[0.5, "diff"] == pytest.approx(acc.loc[0.5, "value"] - acc.loc[0.5, "baseline_value"])
    # erm at 0.5 has seeds 0 and 1, reweight at 0.5 seed 0 only (job 11 is missing)
    assert (acc.loc[0.5, "n_seeds"], acc.loc[0.5, "baseline_n_seeds"]) == (1, 2)
    assert acc.loc[0.5, "baseline_lo"] == pytest.approx(0.68 + 0.0005)  # the mean of the runs' ends
    report = (sweep["out"] / "report.txt").read_text(encoding="utf-8")
    assert "blank = no predictions (15)" in report
    reweight = [line for line in report.splitlines() if line.startswith("reweight")]
    assert reweight and not any(mark in line for line in reweight for mark in "▲▼≈")


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
    """9 runs in the real run-dir format: erm, erm named twice (erm_again, other seeds) and a clearly
    better method, 3 seeds each, on one test set of 1000 rows."""
    root = tmp_path_factory.mktemp("real") / "sweep"
    methods = {"erm": 0.0, "erm_again": 0.0, "better": 0.6}
    simulate.write_sweep(root, methods, [0, 1, 2], n_test=1000, bootstrap=100)
    out = root.parent / "out"
    assert report_main([str(root), "--out", str(out), "--metrics", "accuracy", "worst_group_acc", "dp_diff",
                        "auc"]) == 0
    return out


def test_paired_verdicts_on_a_real_sweep(real_sweep):
    comparisons = pd.read_csv(real_sweep / "comparisons.csv").set_index(["method", "metric"])
    assert (comparisons.loc["erm_again", "verdict"] == "≈").all()
    assert comparisons.loc[("better", "accuracy"), "verdict"] == "▲"
    assert comparisons.loc[("better", "worst_group_acc"), "verdict"] == "▲"
    assert set(comparisons["paired"]) == {"yes", "no: seeds only"}
    assert comparisons.loc[("better", "auc"), "interval"] == "seeds only"
    assert (comparisons["n_seeds"] == 3).all() and (comparisons["baseline_n_seeds"] == 3).all()
    report = (real_sweep / "report.txt").read_text(encoding="utf-8")
    better = next(line for line in report.splitlines() if line.startswith("better"))
    again = next(line for line in report.splitlines() if line.startswith("erm_again"))
    assert better.count("▲") >= 2 and "▼" not in again and again.count("≈") == 4
    assert "3 vs 3 seeds (8 comparisons)" in report
    assert "interval of the difference" in report and "seeds only (no test-row resampling) for: auc" in report


def test_a_damaged_predictions_file_is_reported_not_read(tmp_path, capsys):
    simulate.write_sweep(tmp_path / "sweep", {"erm": 0.0, "other": 0.0}, [0, 1], n_test=300)
    damaged = tmp_path / "sweep" / "3" / "predictions.pkl"
    damaged.write_bytes(b"garbage")
    assert report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "out"), "--metrics", "accuracy"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"note: not used: {damaged} is damaged" in out and "blank = damaged predictions (1)" in out
    comparisons = pd.read_csv(tmp_path / "out" / "comparisons.csv")
    assert comparisons["verdict"].tolist() == ["damaged predictions"]
    assert "damaged predictions" in (tmp_path / "out" / "report.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("row, base, want", [
    ((0.50, 0.60), (0.55, 0.65), "within noise"),
    ((0.50, 0.60), (0.60, 0.70), "within noise"),  # touching counts as overlapping
    ((0.71, 0.80), (0.60, 0.70), "higher"),
    ((0.40, 0.59), (0.60, 0.70), "lower"),
    ((np.nan, 0.6), (0.60, 0.70), "no interval"),
])
def test_verdict(row, base, want):
    assert noise.verdict(*row, *base) == want


def test_a_key_the_baseline_leaves_unset_matches_any_value():
    """erm has no noise_multiplier: dpsgd rows at every σ compare with erm at the same ratio."""
    nan = float("nan")
    table = pd.DataFrame({
        "method": ["erm", "erm", "dpsgd", "dpsgd", "dpsgd"],
        "imbalance_ratio": [0.9, 0.5, 0.9, 0.9, 0.5],
        "noise_multiplier": [nan, nan, 1.0, 2.0, 1.0],
        "accuracy_mean": [0.8, 0.7, 0.6, 0.78, 0.5],
        "accuracy_lo": [0.75, 0.65, 0.55, 0.74, 0.45],
        "accuracy_hi": [0.85, 0.75, 0.65, 0.82, 0.55],
    })
    by = ["method", "imbalance_ratio", "noise_multiplier"]
    out = noise.compare(table, by, ["accuracy"], ("method", "erm"))
    assert list(out["verdict"]) == ["lower", "within noise", "lower"]
    assert list(out["baseline_value"]) == [0.8, 0.8, 0.7]  # matched on the ratio
    assert list(out["baseline_row"]) == [0, 0, 1]


def test_pareto_set_on_a_hand_made_example():
    #          a     b     c     d     e     f (= e)  g (NaN)
    acc = [0.90, 0.85, 0.80, 0.84, 0.70, 0.70, np.nan]
    gap = [0.30, 0.10, 0.05, 0.12, 0.05, 0.05, 0.00]
    # d is dominated by b (higher accuracy, lower gap), e and f by c (same gap, higher accuracy).
    assert pareto_mask(acc, gap).tolist() == [True, True, True, False, False, False, False]
    assert pareto_mask([0.8, 0.8], [0.1, 0.1]).tolist() == [True, True]  # equal points: neither dominates


def assert_readable_png(path):
    assert path.is_file(), path
    with Image.open(path) as image:
        assert image.size[0] >= 400 and image.size[1] >= 300
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 20


def test_plots_are_written_and_readable(sweep):
    plots = sweep["out"] / "plots"
    names = {p.name for p in plots.glob("*.png")}
    ratio_plots = {f"{m}_vs_ratio.png" for m in ("accuracy", "worst_group_acc", "acc_gap", "dp_diff", "eo_diff")}
    assert ratio_plots <= names
    assert "accuracy_vs_acc_gap.png" in names
    groups = [n for n in names if n.startswith("groups_")]
    assert len(groups) == 1
    # Default run: the largest acc_gap on the test split.
    test = pd.concat(sweep["frames"], ignore_index=True).query("split == 'test'")
    assert groups[0] == f"groups_{test.loc[test['acc_gap'].idxmax(), 'job']}.png"
    assert not any(n.startswith("epsilon_") for n in names)  # no private run
    for name in names:
        assert_readable_png(plots / name)


def test_group_chart_shows_cells_for_a_binary_target(tmp_path):
    """Issue 18: with acc[<group>,<class>] columns of a binary target the chart has one bar per cell (with its
    interval); cells never count as groups; a multi-class run keeps one bar per group."""
    from fairrun.report import plots as report_plots

    row = {"split": "test", "accuracy": 0.8, "worst_cell_acc": 0.4, "acc[A]": 0.85, "acc[B]": 0.7}
    for g, values in (("A", (0.9, 0.8)), ("B", (0.95, 0.4))):
        for c, v in zip(("no", "yes"), values):
            row.update({f"acc[{g},{c}]": v, f"acc[{g},{c}]_lo": v - 0.05,
                        f"acc[{g},{c}]_hi": min(v + 0.05, 1), f"n[{g},{c}]": 50})
    run = pd.Series(row)
    cells = [("A", "no"), ("A", "yes"), ("B", "no"), ("B", "yes")]
    assert report_plots._group_columns(run) == (["A", "B"], cells)
    drawn = []
    original = report_plots.plot_cells
    report_plots.plot_cells = lambda *args: drawn.append(args[3:5]) or original(*args)
    try:
        path = report_plots.plot_groups(run, tmp_path / "cells.png", "cells")
        multi = run.drop([c for c in run.index if ",yes]" in c]).rename(lambda c: c.replace(",no]", ",0]"))
        for cls in ("1", "2"):
            multi = pd.concat([multi, pd.Series({f"acc[{g},{cls}]": 0.5 for g in "AB"})])
        report_plots.plot_groups(multi, tmp_path / "groups.png", "three classes")
    finally:
        report_plots.plot_cells = original
    assert drawn == [(["A", "B"], cells)]
    assert_readable_png(path)
    assert_readable_png(tmp_path / "groups.png")


def test_options_baseline_by_metrics_run(sweep, tmp_path):
    out = tmp_path / "out"
    code = report_main([str(sweep["root"]), "--out", str(out), "--by", "imbalance_ratio", "--metrics", "accuracy",
                        "acc[B]", "--baseline", "imbalance_ratio=0.5", "--run", "0", "--gap", "dp_diff",
                        "--format", "svg,png", "--size", "two-column"])
    assert code == 0
    table = pd.read_csv(out / "table.csv")
    assert table["imbalance_ratio"].tolist() == [1.0, 0.9, 0.5]
    assert table["n"].tolist() == [3, 3, 3]
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert set(comparisons["baseline"]) == {"imbalance_ratio=0.5"}
    assert set(comparisons["metric"]) == {"accuracy", "acc[B]"}
    assert (out / "plots" / "groups_0.png").is_file()
    assert (out / "plots" / "accuracy_vs_dp_diff.png").is_file()
    assert (out / "plots" / "acc_B_vs_ratio.png").is_file()
    assert sorted(p.name for p in (out / "plots").glob("groups_*")) == ["groups_0.png", "groups_0.svg"]
    assert not list((out / "plots").glob("*.pdf"))
    with Image.open(out / "plots" / "groups_0.png") as image:  # --size two-column: 6.9 in at 300 dpi
        assert image.size[0] == 2070


def test_paper_tables_match_table_csv(sweep):
    """table.tex (booktabs) and table.md hold table.csv's means and stds at 3 decimals, one row per group."""
    table = pd.read_csv(sweep["out"] / "table.csv")
    tex = (sweep["out"] / "table.tex").read_text(encoding="utf-8").splitlines()
    md = (sweep["out"] / "table.md").read_text(encoding="utf-8").splitlines()
    body = tex[tex.index("\\midrule") + 1:tex.index("\\bottomrule")]
    assert "\\toprule" in tex and len(body) == len(table) == len(md) - 2
    assert "worst\\_group\\_acc" in tex[tex.index("\\toprule") + 1]
    for line, row, md_line in zip(body, table.itertuples(), md[2:]):
        cells, md_cells = line.removesuffix(" \\\\").split(" & "), md_line.strip("| ").split(" | ")
        assert cells[:3] == md_cells[:3] == [row.method, f"{row.imbalance_ratio:g}", str(row.n)]
        want = f"{row.accuracy_mean:.3f}" + (f" ± {row.accuracy_std:.3f}" if row.n > 1 else "")  # one run: no std
        assert cells[3].startswith("$" + want.replace("±", "\\pm")) and md_cells[3].startswith(want)
        assert cells[3].removeprefix("$" + want.replace("±", "\\pm"))[:1] in ("$", "\\")


def test_by_a_swept_override_key_missing_from_results(sweep, tmp_path):
    code = report_main([str(sweep["root"]), "--out", str(tmp_path), "--by", "dataset.n_train", "method",
                        "--metrics", "accuracy"])
    assert code == 0
    table = pd.read_csv(tmp_path / "table.csv")
    assert table[["dataset.n_train", "method", "n"]].values.tolist() == [[300, "erm", 5], [300, "reweight", 4]]


@pytest.mark.parametrize("args, names", [
    (["{missing}"], ["does not exist"]),
    (["{root}", "--metrics", "accuracy", "acuracy"], ["'acuracy'", "worst_group_acc", "dp_diff", "acc[A]"]),
    (["{root}", "--by", "methd"], ["'methd'", "method", "imbalance_ratio", "seed"]),
    (["{root}", "--split", "tset"], ["'tset'", "val", "test"]),
    (["{root}", "--baseline", "method=sgd"], ["'sgd'", "erm", "reweight"]),
    (["{root}", "--run", "99"], ["'99'", "Finished jobs", "10"]),
    (["{root}", "--bogus"], ["--bogus", "usage"]),
    (["{empty}"], ["no run directory"]),
])
def test_user_mistakes_exit_2_with_one_paragraph(sweep, tmp_path, capsys, args, names):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [a.format(root=sweep["root"], missing=tmp_path / "nope", empty=empty) for a in args]
    with pytest.raises(SystemExit) as exit_:
        fairrun_main(["report", *argv, "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith("fairrun report: error:")
    assert "\n\n" not in err.strip()  # one paragraph
    for name in names:
        assert name.lower() in " ".join(err.split()).lower(), (name, err)
    assert not (tmp_path / "out" / "sweep.pkl").exists()  # nothing written after a mistake


def test_help_exits_0(capsys):
    assert report_main(["--help"]) == 0
    assert "--baseline" in capsys.readouterr().out


def test_folder_of_single_runs_without_multirun_yaml(tmp_path):
    """outputs/<date>/<time>/ run directories (no sweep), some private: epsilon joins the table and its chart."""
    outputs = tmp_path / "outputs"
    frames = []
    for i, (method, ratio, eps) in enumerate([("erm", 0.9, np.nan), ("dpsgd", 0.9, 0.5), ("dpsgd", 0.9, 8.0),
                                              ("dpsgd", 0.5, 1.0)]):
        run_dir = outputs / "2026-01-01" / f"12-00-0{i}"
        results = fake_results(run_dir, method, ratio, 0, epsilon=eps)
        write_job(run_dir, [f"method={method}", f"imbalance.ratio={ratio}"], results)
        frames.append(results)
    (outputs / "2026-01-01" / "12-00-09" / ".hydra").mkdir(parents=True)  # killed right after it started
    assert report_main([str(outputs)]) == 0
    jobs = pd.read_csv(outputs / "jobs.csv")
    assert jobs["status"].value_counts().to_dict() == {"finished": 4, "unfinished": 1}
    assert "2026-01-01/12-00-00" in set(jobs["job"])
    table = pd.read_csv(outputs / "table.csv")
    assert "epsilon_mean" in table
    assert table[["method", "imbalance_ratio"]].values.tolist() == [["erm", 0.9], ["dpsgd", 0.9], ["dpsgd", 0.5]]
    assert_readable_png(outputs / "plots" / "epsilon_vs_acc_gap.png")
    # One run directory as PATH works too.
    single = outputs / "2026-01-01" / "12-00-00"
    assert report_main([str(single), "--out", str(tmp_path / "single")]) == 0
    assert pd.read_csv(tmp_path / "single" / "jobs.csv")["job"].tolist() == ["12-00-00"]


def test_collect_ignores_results_without_done(tmp_path):
    run_dir = tmp_path / "run"
    write_job(run_dir, ["seed=0"], fake_results(run_dir, "erm", 1.0, 0), done=False)
    coll = collect([tmp_path])
    assert coll.results.empty
    assert coll.jobs["status"].tolist() == ["unfinished"]


def test_several_paths_keep_job_names_distinct(tmp_path):
    for name in ("sweep_a", "sweep_b"):
        run_dir = tmp_path / name / "0"
        write_job(run_dir, ["seed=0"], fake_results(run_dir, "erm", 1.0, 0))
    coll = collect([tmp_path / "sweep_a", tmp_path / "sweep_b"])
    assert coll.jobs["job"].tolist() == ["sweep_a/0", "sweep_b/0"]
    assert sorted(coll.results["job"].unique()) == ["sweep_a/0", "sweep_b/0"]
