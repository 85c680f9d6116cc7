"""On-disk datasets end to end through the `fairrun` command: prepare, train, cross-dataset eval, data report."""
from __future__ import annotations

import os

import pandas as pd
import pytest

from tests.conftest import TINY_CNN, run_fairrun
from tests.helpers.fixtures_celeba import make_celeba
from tests.helpers.fixtures_fairface import make_fairface
from tests.helpers.fixtures_utkface import make_utkface

FAST = ["dataset.image_size=16", "trainer.epochs=1", "trainer.batch_size=32", "gpu=cpu", *TINY_CNN]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("datasets")
    return {
        "celeba": make_celeba(base / "celeba", n=120, seed=0),
        "fairface": make_fairface(base / "fairface", n_train=120, n_val=50),
        "utkface": make_utkface(base / "utkface", n=60),
    }


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A cache folder of the test's own (the CLI subprocesses inherit FAIRRUN_CACHE)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("FAIRRUN_CACHE", str(path))
    return path


def test_prepare_builds_the_cache_that_train_then_reuses(roots, tmp_path, own_cache):
    proc = run_fairrun("prepare", "dataset=celeba", f"dataset.root={roots['celeba']}", "dataset.image_size=16",
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "120 usable images at 16px (train 72, val 24, test 24)" in proc.stdout
    entries = [p for p in own_cache.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and (entries[0] / "images.npy").is_file()
    stamp = (entries[0] / "images.npy").stat().st_mtime_ns
    proc = run_fairrun("train", "dataset=celeba", f"dataset.root={roots['celeba']}", *FAST,
                       "imbalance=study", "imbalance.ratio=0.75", "imbalance.size=40", "hydra.run.dir=run",
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "using decoded-image cache" in log and "decoding" not in proc.stderr.lower().split("epoch")[0]
    assert (entries[0] / "images.npy").stat().st_mtime_ns == stamp
    results = pd.read_pickle(tmp_path / "run" / "results.pkl")
    assert results["n_train[Female]"].iloc[0] == 30 and results["n_train[Male]"].iloc[0] == 10
    counts = pd.read_csv(tmp_path / "run" / "train_counts.csv", index_col=0)
    assert counts.loc["Female"].tolist() == [15, 15] and counts.loc["Male"].tolist() == [5, 5]
    assert results[results.split == "test"]["n"].iloc[0] == 24  # test keeps its natural distribution


def test_train_with_eval_datasets_and_fairrun_eval_on_another_dataset(roots, tmp_path, own_cache):
    utk = roots["utkface"]
    proc = run_fairrun("train", "dataset=fairface", f"dataset.root={roots['fairface']}", *FAST,
                       f"eval_datasets=[{{name:utkface,root:{utk}}}]", "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = pd.read_pickle(tmp_path / "run" / "results.pkl")
    assert results["split"].tolist() == ["val", "test", "utkface:test"]
    row = results.iloc[2]
    assert row["eval_target"] == "gender" and row["eval_protected"] == "race"
    assert {"acc[Asian]", "acc[Others]", "acc[Southeast Asian]"} <= set(results.columns)
    assert row["n"] == len(pd.read_pickle(tmp_path / "run" / "predictions_utkface.pkl"))
    before = row.copy()
    proc = run_fairrun("eval", "run_dir=run", "dataset=utkface", f"dataset.root={utk}", "gpu=cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = pd.read_pickle(tmp_path / "run" / "results.pkl")
    assert after["split"].tolist() == ["val", "test", "utkface:test"]  # replaced, not duplicated
    for key in ("n", "accuracy", "worst_group_acc", "acc[White]", "dp_diff"):
        assert after.iloc[2][key] == pytest.approx(before[key], nan_ok=True), key


def test_cross_dataset_eval_with_unmatched_classes_says_how_to_map_them(roots, tmp_path, own_cache):
    proc = run_fairrun("train", "dataset=fairface", f"dataset.root={roots['fairface']}", *FAST,
                       "dataset.target=race", "dataset.protected=gender", "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_fairrun("eval", "run_dir=run", "dataset=utkface", f"dataset.root={roots['utkface']}", "gpu=cpu",
                       cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "'Asian'" in proc.stderr and "dataset.value_map" in proc.stderr
    proc = run_fairrun("eval", "run_dir=run", "dataset=utkface", f"dataset.root={roots['utkface']}", "gpu=cpu",
                       "dataset.value_map={race:{Asian:East Asian,Others:Middle Eastern}}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "utkface:test" in pd.read_pickle(tmp_path / "run" / "results.pkl")["split"].tolist()


def test_data_report_prints_counts_and_writes_chart_and_samples(roots, tmp_path, own_cache):
    proc = run_fairrun("data", "dataset=fairface", f"dataset.root={roots['fairface']}", "dataset.image_size=16",
                       "dataset.race_groups=5", f"compare=[{{name:utkface,root:{roots['utkface']}}}]",
                       "samples=12", "hydra.run.dir=report", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    flat = " ".join(proc.stdout.split())
    assert "train White" in flat and "Asian" in flat and "total" in flat
    for name in ("counts.csv", "group_frequencies.png", "samples.png"):
        assert (tmp_path / "report" / name).stat().st_size > 1000 or name == "counts.csv"
    counts = pd.read_csv(tmp_path / "report" / "counts.csv")
    assert set(counts["split"]) == {"train", "val", "test"}
    assert counts["n"].sum() == 170 and set(counts["group"]) == {"White", "Black", "Asian", "Indian", "Others"}


@pytest.mark.parametrize("args, words", [
    (["dataset=celeba"], ["dataset.root is not set", "CelebA", "never downloads"]),
    (["dataset=celeba", "dataset.root=/nonexistent/celeba"], ["dataset.root=/nonexistent/celeba",
                                                               "not a directory"]),
    (["dataset=celeba", "ROOT:celeba", "dataset.target=Smilling"], ["'Smilling'", "Smiling"]),
    (["dataset=fairface", "ROOT:fairface", "dataset.padding=0.5"], ["dataset.padding", "1.25"]),
    (["dataset=celeba", "ROOT:celeba", "imbalance=study"], ["30000", "imbalance.size"]),
    (["dataset=celeba", "ROOT:celeba", "dataset.crop=middle"], ["dataset.crop", "square"]),
    (["dataset=utkface", "ROOT:fairface"], ["UTKFace", "[age]_[gender]_[race]"]),
])
def test_bad_dataset_input_is_one_clear_message(roots, tmp_path, own_cache, args, words):
    args = [f"dataset.root={roots[a.split(':')[1]]}" if a.startswith("ROOT:") else a for a in args]
    proc = run_fairrun("train", *FAST, *args, "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    flat = " ".join(proc.stderr.split())
    assert all(w in flat for w in words), proc.stderr[-2000:]


def test_prepare_and_data_need_a_dataset(tmp_path):
    for command in ("prepare", "data"):
        proc = run_fairrun(command, cwd=tmp_path)
        assert proc.returncode == 2 and "dataset" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_fairrun("prepare", "dataset=synthetic", cwd=tmp_path)
    assert proc.returncode == 0 and "nothing to prepare" in proc.stdout
    assert not os.listdir(tmp_path) or "outputs" not in os.listdir(tmp_path)
