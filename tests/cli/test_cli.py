"""End to end through the `fairrun` command, as a user runs it."""
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from fairrun.evaluation.predictions import metrics_from_predictions
from tests.conftest import TINY, fairrun_env, run_fairrun

REQUIRED_COLUMNS = ["run_dir", "split", "dataset", "target", "protected", "model", "method",
                    "imbalance_ratio", "seed", "n", "accuracy", "balanced_accuracy", "auc", "ap", "acc_gap",
                    "acc_var", "worst_group_acc", "dp_diff", "eo_diff", "eopp_diff", "train_seconds"]
PER_GROUP = ["acc[{}]", "n[{}]", "tpr[{}]", "fpr[{}]", "sel[{}]"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny `fairrun train` run shared by the tests of this module."""
    cwd = tmp_path_factory.mktemp("cli")
    proc = run_fairrun("train", *TINY, "hydra.run.dir=run", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd / "run", proc


def test_train_writes_the_run_directory(trained_run):
    run_dir, proc = trained_run
    for name in ("results.pkl", "predictions.pkl", "run_config.yaml", "train_counts.csv", "done",
                 "checkpoints/last.pt", "checkpoints/best.pt", ".hydra/config.yaml", "train.log"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tb").iterdir())
    assert "Results" in proc.stdout and "worst_group_acc" in proc.stdout and "acc[A]" in proc.stdout


def test_results_have_the_documented_columns(trained_run):
    results = pd.read_pickle(trained_run[0] / "results.pkl")
    assert list(results["split"]) == ["val", "test"]
    missing = [c for c in REQUIRED_COLUMNS if c not in results]
    assert not missing, missing
    for group in ("A", "B"):
        for pattern in PER_GROUP:
            assert pattern.format(group) in results, pattern.format(group)
    assert "n_train[A]" in results and "n_train[B]" in results
    row = results.set_index("split").loc["test"]
    assert row["n"] == 300 and row["n[A]"] + row["n[B]"] == 300
    assert row["dataset"] == "synthetic" and row["method"] == "erm" and row["model"] == "cnn"
    assert np.isnan(row["imbalance_ratio"]) and row["seed"] == 0 and row["train_seconds"] > 0


def test_predictions_agree_with_results(trained_run):
    run_dir = trained_run[0]
    results = pd.read_pickle(run_dir / "results.pkl").set_index("split")
    preds = pd.read_pickle(run_dir / "predictions.pkl")
    assert list(preds.columns) == ["split", "index", "y_true", "y_score", "y_pred", "group"]
    for split, frame in preds.groupby("split", observed=True):
        recomputed = metrics_from_predictions(frame, list(frame["group"].cat.categories), 2)
        for key, value in recomputed.items():
            assert results.loc[split, key] == pytest.approx(value, nan_ok=True, abs=0), key
        assert ((frame["y_score"] > 0.5).astype(int) == frame["y_pred"]).all()


def test_eval_reproduces_training_time_metrics_exactly(trained_run):
    run_dir = trained_run[0]
    proc = run_fairrun("eval", f"run_dir={run_dir}", "gpu=cpu", cwd=run_dir.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    original = pd.read_pickle(run_dir / "results.pkl").set_index("split")
    again = pd.read_pickle(run_dir / "eval_results.pkl").set_index("split")
    metric_columns = [c for c in original.columns if c not in ("run_dir", "train_seconds", "epochs")
                      and not c.startswith("n_train") and original[c].dtype.kind == "f"]
    pd.testing.assert_frame_equal(again.loc[["val", "test"], metric_columns],
                                  original.loc[["val", "test"], metric_columns], check_exact=True)


def test_relaunching_a_finished_run_does_not_train_again(trained_run):
    run_dir = trained_run[0]
    before = (run_dir / "results.pkl").stat().st_mtime_ns
    proc = run_fairrun("train", *TINY, f"hydra.run.dir={run_dir}", cwd=run_dir.parent)
    assert proc.returncode == 0 and "already finished" in proc.stderr + proc.stdout
    assert (run_dir / "results.pkl").stat().st_mtime_ns == before


def test_help_lists_subcommands_and_config_groups(tmp_path):
    top = run_fairrun("--help", cwd=tmp_path)
    assert top.returncode == 0 and "train" in top.stdout and "eval" in top.stdout
    train_help = run_fairrun("train", "--help", cwd=tmp_path)
    assert train_help.returncode == 0
    for group in ("dataset:", "model:", "method:", "imbalance:", "gpu:", "trainer:"):
        assert group in train_help.stdout, group
    assert "resnet18" in train_help.stdout
    cfg = run_fairrun("train", "--cfg", "job", "model=mlp", cwd=tmp_path)
    assert cfg.returncode == 0 and "name: mlp" in cfg.stdout and "hidden:" in cfg.stdout


def test_console_script_is_installed(tmp_path):
    exe = shutil.which("fairrun") or str(__import__("pathlib").Path(sys.executable).parent / "fairrun")
    proc = subprocess.run([exe, "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0 and "fairrun train" in proc.stdout


def test_multirun_runs_one_job_per_value(tmp_path):
    proc = run_fairrun("train", "-m", *TINY, "trainer.epochs=1", "seed=0,1", "hydra.sweep.dir=sweep",
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seeds = sorted(pd.read_pickle(p)["seed"].iloc[0] for p in (tmp_path / "sweep").glob("*/results.pkl"))
    assert seeds == [0, 1]


@pytest.mark.parametrize("args, words", [
    (["trainer.epochs=0"], ["trainer.epochs", ">= 1"]),
    (["trainer.lr=fast"], ["trainer.lr", "Accepted: a number"]),
    (["dataset.target=age"], ["dataset.target", "'age'", "smiling"]),
    (["dataset.protected=smiling"], ["protected", "target"]),
    (["model=vgg"], ["model/vgg", "options of 'model'", "resnet18"]),
    (["imbalance.ratio=1.2"], ["imbalance.ratio", "(0, 1]"]),
    (["gpu.amp=fp8"], ["gpu.amp", "bf16"]),
    (["+trainer.foo=1"], ["trainer.foo", "epochs"]),
    (["-m", "--cfg", "job"], ["-m and --cfg cannot be combined", "drop -m"]),
])
def test_bad_input_gives_one_clear_message_and_exit_code_2(tmp_path, args, words):
    proc = run_fairrun("train", *TINY, *args, "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    assert all(w in proc.stderr for w in words), proc.stderr[-2000:]
    assert not (tmp_path / "run" / "results.pkl").exists()


def test_bad_subcommand_and_missing_run_dir(tmp_path):
    proc = run_fairrun("trian", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown command 'trian'" in proc.stderr
    assert "Did you mean 'fairrun train'?" in " ".join(proc.stderr.split())
    proc = run_fairrun("eval", cwd=tmp_path)
    assert proc.returncode == 2 and "run_dir=PATH" in proc.stderr
    proc = run_fairrun("eval", "run_dir=nowhere", cwd=tmp_path)
    assert proc.returncode == 2 and "run_config.yaml" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_saves_last_checkpoint_and_resume_matches_uninterrupted_run(tmp_path, signum, code):
    """Ctrl-C, and SIGTERM (kill, docker stop, SLURM preemption), save last.pt; the relaunch resumes exactly."""
    args = [*TINY, "trainer.epochs=3", "trainer.batch_size=32"]
    full = run_fairrun("train", *args, "hydra.run.dir=full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-2000:]
    proc = subprocess.Popen([sys.executable, "-m", "fairrun.cli", "train", *args, "hydra.run.dir=cut"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=fairrun_env())
    last = tmp_path / "cut" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err and last.exists() and not (tmp_path / "cut" / "results.pkl").exists()
    resumed = run_fairrun("train", *args, "hydra.run.dir=cut", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = pd.read_pickle(tmp_path / "full" / "results.pkl").drop(columns=["run_dir", "train_seconds"])
    b = pd.read_pickle(tmp_path / "cut" / "results.pkl").drop(columns=["run_dir", "train_seconds"])
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_generative_subcommands_need_their_second_word_and_valid_keys(tmp_path):
    missing = run_fairrun("vae", cwd=tmp_path)
    assert missing.returncode == 2 and "train, minority" in missing.stderr
    bad = run_fairrun("gan", "train", "gan.loss=wasserstein", f"out_dir={tmp_path / 'gan'}", cwd=tmp_path)
    assert bad.returncode == 2 and "gan.loss" in bad.stderr and "Traceback" not in bad.stderr
