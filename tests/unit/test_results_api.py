"""Results from Python (fairrun.load_run, load_sweep, tidy), the parameter columns of results.pkl
(method keys and overridden keys), and the one-line-per-job output of a multirun.

Run directories are written without training (fairrun.report.simulate.write_sweep: fairrun's own evaluation of
a synthetic classifier, with bootstrap intervals); one tiny one-job multirun checks the whole path once.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd
import pytest

import fairrun
from fairrun.core.errors import FairrunError
from fairrun.metrics import registry
from tests.conftest import TINY, compose_train, run_fairrun


@pytest.fixture(scope="module")
def fake_sweep(tmp_path_factory):
    """4 finished runs (2 methods x 2 seeds) with bootstrap intervals, as fairrun train writes them."""
    from fairrun.report.simulate import write_sweep

    root = tmp_path_factory.mktemp("api") / "sweep"
    write_sweep(root, {"erm": 0.0, "groupdro": 0.4}, seeds=[0, 1], n_test=300, bootstrap=20)
    return root


def test_import_fairrun_stays_light():
    import subprocess

    code = "import sys, fairrun; fairrun.tidy; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]  # tidy's module loaded on first use, without torch
    assert {"load_run", "load_sweep", "tidy"} <= set(fairrun.__all__)


def test_load_run_is_the_checksummed_results(fake_sweep):
    from fairrun import rundir

    got = fairrun.load_run(fake_sweep / "2")
    pd.testing.assert_frame_equal(got, rundir.read_results(fake_sweep / "2" / "results.pkl"))
    assert got["method"].tolist() == ["groupdro"] and got["seed"].tolist() == [0]


def test_load_sweep_is_the_reports_table(fake_sweep):
    from fairrun.report.collect import collect

    got = fairrun.load_sweep(fake_sweep)
    pd.testing.assert_frame_equal(got, collect([fake_sweep]).results)
    assert list(got.columns[:2]) == ["job", "overrides"] and got["job"].tolist() == ["0", "1", "2", "3"]
    assert got["method"].tolist() == ["erm", "erm", "groupdro", "groupdro"]


def test_tidy_has_one_row_per_metric_cell_with_its_interval(fake_sweep):
    wide = fairrun.load_sweep(fake_sweep)
    long = fairrun.load_sweep(fake_sweep, tidy=True)
    assert list(long.columns) == ["run", "split", "group", "metric", "value", "lo", "hi"]
    pd.testing.assert_frame_equal(long, fairrun.tidy(wide))
    # independently: every registered, non-interval metric cell that is not NaN is one row
    cells = [c for c in wide.columns if registry.split_column(c)[0] in registry.REGISTRY
             and registry.split_column(c)[2] is None]
    assert len(long) == int(wide[cells].notna().sum().sum())
    row = wide.iloc[3]
    acc = long[(long.run == "3") & (long.metric == "accuracy")].set_index("group")
    assert acc.loc["all", "value"] == row["accuracy"]
    assert (acc.loc["all", "lo"], acc.loc["all", "hi"]) == (row["accuracy_lo"], row["accuracy_hi"])
    assert acc.loc["A", "value"] == row["acc[A]"] and acc.loc["B", "hi"] == row["acc[B]_hi"]
    assert acc.loc["A", "lo"] < acc.loc["A", "value"] < acc.loc["A", "hi"]
    n = long[(long.run == "3") & (long.metric == "n")].set_index("group")
    assert n.loc["all", "value"] == 300 and math.isnan(n.loc["all", "lo"])  # n has no interval
    assert n.loc["A", "value"] + n.loc["B", "value"] == 300
    tpr = long[(long.metric == "tpr") & (long.group == "B")]
    assert tpr["value"].tolist() == wide["tpr[B]"].tolist()
    assert set(long["split"]) == {"test"}


def test_tidy_keeps_named_columns_and_plots_with_seaborn(fake_sweep):
    long = fairrun.tidy(fairrun.load_sweep(fake_sweep), keep=["method", "seed"])
    worst = long[long.metric == "worst_group_acc"]
    assert worst.groupby("method")["value"].count().to_dict() == {"erm": 2, "groupdro": 2}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = long[long.metric == "accuracy"].pivot_table(index="group", columns="run", values="value")
    assert bars.shape == (3, 4)  # all, A, B x the 4 runs
    ax = bars.plot.bar()
    assert len(ax.patches) == 12
    plt.close("all")
    sns = pytest.importorskip("seaborn")
    ax = sns.barplot(data=long[long.metric == "accuracy"], x="group", y="value", hue="run")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["all", "A", "B"]
    plt.close("all")


def test_tidy_without_intervals_and_bad_input():
    wide = pd.DataFrame({"run_dir": ["r"], "split": ["test"], "accuracy": [0.5], "acc[x y]": [0.25],
                         "seed": [1]})
    long = fairrun.tidy(wide)
    assert long[["run", "group", "metric", "value"]].values.tolist() == [["r", "all", "accuracy", 0.5],
                                                                     ["r", "x y", "accuracy", 0.25]]
    assert long[["lo", "hi"]].isna().all().all()
    with pytest.raises(FairrunError, match="keep=\\['nope'\\]"):
        fairrun.tidy(wide, keep=["nope"])
    with pytest.raises(FairrunError, match="expected a results DataFrame"):
        fairrun.tidy([1, 2])


@pytest.mark.parametrize("case", ["missing", "file", "empty", "sweep_to_load_run", "unverified"])
def test_bad_paths_are_one_paragraph_naming_the_path(tmp_path, fake_sweep, case):
    path = {"missing": tmp_path / "nope", "file": tmp_path / "f.txt", "empty": tmp_path / "empty",
            "sweep_to_load_run": fake_sweep, "unverified": tmp_path / "run"}[case]
    if case == "file":
        path.write_text("x")
    elif case == "empty":
        path.mkdir()
    elif case == "unverified":  # a pickle fairrun has no checksum record of is never unpickled
        path.mkdir()
        pd.DataFrame({"accuracy": [1.0]}).to_pickle(path / "results.pkl")
        (path / "done").write_text("")
    loaders = [fairrun.load_run] if case in ("sweep_to_load_run", "unverified") else \
        [fairrun.load_run, fairrun.load_sweep]
    for load in loaders:
        with pytest.raises(FairrunError) as err:
            load(path)
        text = str(err.value)
        assert str(path) in text and "\n\n" not in text, text
    if case == "sweep_to_load_run":
        assert "4 run directories" in text and "load_sweep" in text


def test_load_sweep_without_a_finished_run(tmp_path):
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "0" / "run_config.yaml").write_text("seed: 0\n")
    with pytest.raises(FairrunError, match="holds no finished run .*unfinished 1"):
        fairrun.load_sweep(tmp_path)


# ------------------------------------------------------------------ the parameter columns of results.pkl

IDENTITY = ["run_dir", "split", "dataset", "target", "protected", "model", "method", "arm", "imbalance_ratio",
            "imbalance_splits", "seed", "init_from"]


def test_run_metadata_adds_method_keys_and_overrides_without_duplicates(tmp_path):
    from fairrun.config import validate_run_config
    from fairrun.training.results import run_metadata

    overrides = ["method=groupdro", "method.eta=0.05", "imbalance.ratio=0.5", "imbalance.size=400", "seed=3",
                 "trainer.lr=0.01", "dataset.target=smiling", "+trainer.epochs=2", "hydra.run.dir=x",
                 "gpu=cpu"]
    cfg = validate_run_config(compose_train([o for o in overrides if not o.startswith(("hydra", "+"))]))
    meta = run_metadata(cfg, tmp_path, overrides)
    assert list(meta)[:len(IDENTITY)] == IDENTITY  # the identity columns first, unchanged
    assert (meta["imbalance_ratio"], meta["seed"], meta["target"]) == (0.5, 3, "smiling")
    params = {k: meta[k] for k in list(meta)[len(IDENTITY):]}
    assert params == {"method.eta": 0.05, "method.groups": cfg.method.groups, "method.adj": cfg.method.adj,
                      "imbalance.size": 400, "trainer.lr": 0.01, "trainer.epochs": cfg.trainer.epochs}
    plain = validate_run_config(compose_train([]))
    assert list(run_metadata(plain, tmp_path, [])) == IDENTITY  # erm: no keys of its own


def test_recorded_overrides(tmp_path):
    from fairrun.training.results import recorded_overrides

    assert recorded_overrides(tmp_path) == []
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- seed=1\n- method.eta=0.1\n")
    assert recorded_overrides(tmp_path) == ["seed=1", "method.eta=0.1"]


def test_override_columns_prefer_the_written_columns():
    from fairrun.report.collect import fill_parameters, override_columns

    results = pd.DataFrame({"overrides": ["method.eta=0.1 imbalance.ratio=0.5", "method.eta=1e-2 seed=2",
                                          "trainer.lr=0.3"],
                            "method.eta": [0.125, np.nan, np.nan], "imbalance_ratio": [0.5, np.nan, np.nan]})
    cols = override_columns(results)
    # the written value where a row has it (0.125, not the override's 0.1); the override's text elsewhere
    assert cols["method.eta"].tolist()[:2] == [0.125, 0.01] and math.isnan(cols["method.eta"].iat[2])
    assert cols["imbalance.ratio"].tolist()[0] == 0.5 and cols["trainer.lr"].tolist()[2] == 0.3
    filled = fill_parameters(results.copy())
    assert filled["method.eta"].tolist()[:2] == [0.125, 0.01]  # an older run's gap filled from its overrides
    assert "trainer.lr" not in filled and "imbalance.ratio" not in filled  # no column added


# ------------------------------------------------------------------ console: one line per multirun job

def test_job_line_and_single_run_table(capsys):
    from fairrun.report.console import job_line, print_results

    results = pd.DataFrame({"run_dir": ["out/3"] * 2, "split": ["val", "test"], "n": [10, 20],
                            "accuracy": [0.5, 0.9123], "worst_group_acc": [0.4, 0.8711],
                            "eopp_diff": [0.1, 0.0414]})
    line = job_line(results, 3, ["method=groupdro", "imbalance.ratio=0.9", "seed=1", "trainer.epochs=1"],
                    ["method", "imbalance.ratio", "seed"])
    assert line == ("job 3 done  method=groupdro ratio=0.9 seed=1  test acc 0.912 worst 0.871 eopp 0.041"
                    "  out/3")
    assert job_line(results[["run_dir", "split", "accuracy"]], 0, ["a.x=1", "b.x=2"], []) == \
        "job 0 done  a.x=1 b.x=2  test acc 0.912  out/3"
    print_results(results)  # not in a multirun: the table
    out = capsys.readouterr().out
    assert "Results (out/3):" in out and "worst_group_acc" in out and "job" not in out


@pytest.fixture(scope="module")
def tiny_multirun(tmp_path_factory):
    """One tiny job of a multirun (seed=range(1) makes it a sweep of one value)."""
    cwd = tmp_path_factory.mktemp("tiny_multirun")
    proc = run_fairrun("train", "-m", *TINY, "trainer.epochs=1", "method=groupdro", "method.eta=0.05",
                       "seed=range(1)", "hydra.sweep.dir=sweep", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd, proc


def test_multirun_prints_one_line_per_job_and_writes_parameter_columns(tiny_multirun):
    cwd, proc = tiny_multirun
    lines = [line for line in proc.stdout.splitlines() if line.startswith("job 0 done")]
    assert len(lines) == 1 and "Results (" not in proc.stdout, proc.stdout
    test = fairrun.load_run(cwd / "sweep" / "0").set_index("split").loc["test"]
    assert lines[0] == (f"job 0 done  seed=0  test acc {test['accuracy']:.3f} "
                        f"worst {test['worst_group_acc']:.3f} eopp {test['eopp_diff']:.3f}"
                        f"  {test['run_dir']}")
    sweep = fairrun.load_sweep(cwd / "sweep")
    assert sweep["method.eta"].tolist() == [0.05, 0.05] and sweep["dataset.n_train"].tolist() == [600, 600]
    assert sweep["trainer.epochs"].tolist() == [1, 1] and "seed" in sweep and "imbalance.ratio" not in sweep
    assert list(sweep.columns[2:2 + len(IDENTITY)]) == IDENTITY


def test_eval_writes_the_same_columns(tiny_multirun):
    from fairrun import rundir

    cwd, _ = tiny_multirun
    proc = run_fairrun("eval", "run_dir=sweep/0", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = fairrun.load_run(cwd / "sweep" / "0")
    again = rundir.read_results(cwd / "sweep" / "0" / "eval_results.pkl")
    assert list(again.columns) == list(trained.columns)
    params = [c for c in trained.columns if "." in c]
    assert "method.eta" in params and "dataset.image_size" in params and "run_dir" not in params
    pd.testing.assert_frame_equal(again[params], trained[params])
