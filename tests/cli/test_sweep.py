"""Sweeps (issue 7): +sweep presets, failures that stay in their job, the end-of-sweep summary, re-runs that
skip finished jobs and resume killed ones, the local_parallel and submitit launchers, and TensorBoard's HParams
view of a sweep directory."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf, open_dict

from fairrun.sweep import slot_dir_name, sweep_jobs
from tests.conftest import fairrun_env, run_fairrun

TINY = ["dataset.n_train=300", "dataset.n_val=100", "dataset.n_test=200", "dataset.image_size=16",
        "trainer.epochs=1", "gpu=cpu", "model=logreg"]
STUDY_RATIOS = [1, .999, .99, .98, .96, .95, .94, .92, .9, .85, .8, .7, .5]
METRICS = ["n", "accuracy", "balanced_accuracy", "auc", "worst_group_acc", "acc_gap", "dp_diff", "eo_diff",
           "eopp_diff", "acc[A]", "acc[B]", "n_train[A]", "n_train[B]", "imbalance_ratio", "seed"]


def expand(overrides: list[str]) -> list[dict]:
    """The jobs the basic sweeper launches for `fairrun train -m <overrides>`, each as {key: value}: the
    presets and plain overrides composed by Hydra's compose API (sweeps given after it, as the sweeper does)."""
    plain = [o for o in overrides if not re.search(r"=[^\[]*,", o)]
    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=plain, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.overrides.task = list(overrides)
    jobs = sweep_jobs(cfg)
    return [dict(o.lstrip("+").split("=", 1) for o in job if not o.startswith("+sweep=")) for job in jobs]


def test_presets_expand_to_the_study_jobs_and_compose():
    jobs = expand(["+sweep=imbalance"])
    assert [float(j["imbalance.ratio"]) for j in jobs] == STUDY_RATIOS
    assert [int(j["seed"]) for j in expand(["+sweep=seeds"])] == [0, 1, 2]
    both = expand(["+sweep=[imbalance,seeds]"])
    assert len(both) == 39 and {(float(j["imbalance.ratio"]), int(j["seed"])) for j in both} == \
        {(r, s) for r in STUDY_RATIOS for s in (0, 1, 2)}
    with_seeds = expand(["+sweep=imbalance", "seed=0,1"])  # a preset plus a plain sweep
    assert len(with_seeds) == 26 and {j["seed"] for j in with_seeds} == {"0", "1"}
    replaced = expand(["+sweep=imbalance", "imbalance.ratio=1,0.9", "seed=0,1"])  # the command line wins
    assert [(j["imbalance.ratio"], j["seed"]) for j in replaced] == [("1", "0"), ("1", "1"), ("0.9", "0"),
                                                                        ("0.9", "1")]
    assert len(expand(["imbalance.ratio=1,0.9", "seed=0,1"])) == 4  # plain sweeps as before


def test_methods_preset_keeps_the_methods_that_suit_the_data():
    methods = [j["method"] for j in expand(["+sweep=methods"])]
    assert methods[0] == "erm" and "dpsgd_study" not in methods and len(methods) == len(set(methods))
    assert {"groupdro", "fairalm", "gan_debias", "dpsgd", "adversarial", "reweight"} <= set(methods)
    # intersectional groups: gan_debias flips one binary attribute; one group: nothing to adversarially remove
    intersectional = expand(["+sweep=methods", "dataset.protected=[group,glasses]"])
    assert "gan_debias" not in [j["method"] for j in intersectional]
    one_group = [j["method"] for j in expand(["+sweep=methods", "dataset.num_groups=1"])]
    assert "adversarial" not in one_group and "fairalm" not in one_group and "erm" in one_group
    # DP-SGD refuses AMP (gpu=cuda turns bf16 on)
    assert "dpsgd" not in [j["method"] for j in expand(["+sweep=methods", "gpu=cuda"])]
    # composes with the other presets
    assert len(expand(["+sweep=[methods,seeds]"])) == 3 * len(methods)


def test_cfg_hydra_resolves_the_method_list_and_a_single_run_refuses_a_preset(tmp_path, monkeypatch, capsys):
    from hydra._internal.hydra import Hydra

    from fairrun.cli import main

    # `fairrun train +sweep=methods --cfg hydra --resolve` resolves the hydra node without the task config
    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        cfg = compose(config_name="train", return_hydra_config=True,
                      overrides=["+sweep=[seeds,methods]", "dataset.protected=[group,glasses]"])
        params = OmegaConf.to_container(Hydra.get_sanitized_hydra_cfg(cfg).hydra.sweeper.params, resolve=True)
    assert params["seed"] == "0,1,2" and params["method"].startswith("erm,")
    assert "gan_debias" not in params["method"]  # composed with the command line's dataset.protected
    # without -m the preset would be ignored: a clear error instead
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # main() sets it for Hydra
    monkeypatch.setattr("fairrun.commands.common._started", [False])
    with pytest.raises(SystemExit) as exit_:
        main(["train", *TINY, "+sweep=seeds", "hydra.run.dir=run"])
    assert exit_.value.code == 2 and "add -m" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "run" / "done").exists()


def test_slurm_config_gives_the_sbatch_script(tmp_path, monkeypatch):
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # no srun here

    def sbatch(*overrides):
        with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
            cfg = compose(config_name="train", overrides=["hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path}",
                                                          *overrides], return_hydra_config=True)
        params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
        assert params.pop("_target_") == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
        assert params["submitit_folder"] == f"{tmp_path}/slurm_logs/%j"
        # what the plugin's SlurmLauncher.launch does with them
        executor = submitit.AutoExecutor(folder=params.pop("submitit_folder"), cluster="slurm",
                                         slurm_max_num_timeout=params.pop("max_num_timeout"))
        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in generic else f"slurm_{k}": v for k, v in params.items()})
        executor._executor.parameters["map_count"] = 3  # a job array of 3 jobs, as map_array sets it
        return executor._executor._make_submission_file_text("python job.py", "uid")

    text = sbatch("hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=30")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=30", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB", "#SBATCH --array=0-2%3",
                 f"#SBATCH --output={tmp_path}/slurm_logs/%A_%a/%A_%a_0_log.out"):
        assert line in text, (line, text)
    assert "--account" not in text and "--qos" not in text
    text = sbatch("hydra.launcher.account=proj", "hydra.launcher.qos=high", "hydra.launcher.gpus_per_node=null")
    assert "#SBATCH --account=proj" in text and "#SBATCH --qos=high" in text and "--gpus-per-node" not in text


def _test_rows(sweep_dir) -> pd.DataFrame:
    rows = {int(p.parent.name): pd.read_pickle(p).set_index("split").loc["test", METRICS]
            for p in sweep_dir.glob("*/results.pkl")}
    return pd.DataFrame(rows).T.sort_index()


CORES = sorted(os.sched_getaffinity(0))[:2]  # the sweeps below run on (at most) two cores, one thread per job


def _sweep(*args, wait: bool = True):
    cmd = [sys.executable, "-m", "fairrun.cli", "train", "-m", *TINY, "imbalance.ratio=0.5,0.9,1", "seed=0,1",
           *args]
    options = dict(env={**fairrun_env(), "OMP_NUM_THREADS": "1"},
                   preexec_fn=lambda: os.sched_setaffinity(0, CORES))
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **options)
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            **options)


def test_failures_stay_in_their_job_reruns_skip_finished_jobs_and_a_killed_sweep_resumes(tmp_path):
    first = tmp_path / "first"
    # job 3 (ratio 0.9, seed 1) fails on purpose: a corrupt checkpoint it would resume from
    (first / "3" / "checkpoints").mkdir(parents=True)
    (first / "3" / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    proc = _sweep(f"hydra.sweep.dir={first}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert sorted(int(p.parent.name) for p in first.glob("*/done")) == [0, 1, 2, 4, 5]
    error = (first / "3" / "error.txt").read_text()
    # a damaged checkpoint is one paragraph naming the file and the cure (tests/unit/test_integrity.py), no traceback
    flat = " ".join(error.split())
    assert flat.startswith("fairrun: error: ") and "Traceback" not in error and "resume=false" in flat
    assert "last.pt is not a readable fairrun checkpoint" in flat.replace("- ", "-")
    assert "6 job(s), 5 finished, 1 failed" in proc.stdout
    assert f"failed: {first / '3'}: " in proc.stdout and f"fairrun report {first}" in proc.stdout
    assert "job 3 failed" in (first / "3" / "train.log").read_text()
    rows = _test_rows(first)
    assert list(rows.index) == [0, 1, 2, 4, 5]  # every job records its sweep coordinates
    assert list(rows["imbalance_ratio"]) == [0.5, 0.5, 0.9, 1.0, 1.0] and list(rows["seed"]) == [0, 1, 0, 0, 1]

    # fairrun report on the real sweep: one row per ratio, the failed job listed, charts written.
    from PIL import Image

    from fairrun.report.cli import report_main

    assert report_main([str(first), "--out", str(tmp_path / "report_first")]) == 0
    table = pd.read_csv(tmp_path / "report_first" / "table.csv")
    assert sorted(table["imbalance_ratio"]) == [0.5, 0.9, 1.0] and list(table["n"]) == [2, 1, 2]
    assert {"accuracy_mean", "acc_gap_std", "acc_gap_lo", "acc_gap_hi"} <= set(table.columns)
    jobs = pd.read_csv(tmp_path / "report_first" / "jobs.csv").set_index("job")
    assert jobs.loc[3, "status"] == "failed" and (jobs["status"] == "finished").sum() == 5
    for chart in ("acc_gap_vs_ratio.png", "accuracy_vs_acc_gap.png"):
        with Image.open(tmp_path / "report_first" / "plots" / chart) as image:
            assert image.width >= 400 and len(np.unique(np.asarray(image.convert("L")))) > 16

    # The HParams dashboard pointed at the sweep directory: one session per finished job, with its metrics.
    from tests.helpers.hparams import hparams_dashboard

    _, sessions = hparams_dashboard(first)
    # each run is named by its swept values (fairrun/training/tensorboard.py)
    assert sorted(sessions) == ["0/tb/ratio=0.5,seed=0", "1/tb/ratio=0.5,seed=1", "2/tb/ratio=0.9,seed=0",
                                "4/tb/ratio=1,seed=0", "5/tb/ratio=1,seed=1"]
    sessions = {name.split("/")[0]: group for name, group in sessions.items()}
    for job in (0, 1, 2, 4, 5):
        group = sessions[str(job)]
        assert group.hparams["imbalance_ratio"].number_value == rows.loc[job, "imbalance_ratio"]
        assert group.hparams["seed"].number_value == rows.loc[job, "seed"]
        assert group.hparams["method"].string_value == "erm"
        metrics = {m.name.tag: m.value for m in group.metric_values}
        assert metrics["hparam/test_accuracy"] == pytest.approx(rows.loc[job, "accuracy"], abs=1e-6)

    # Relaunch after fixing the cause: the finished jobs are skipped, the failed one runs again and finishes.
    mtimes = {p: p.stat().st_mtime_ns for p in first.glob("*/results.pkl")}
    (first / "3" / "checkpoints" / "last.pt").unlink()
    again = _sweep(f"hydra.sweep.dir={first}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert again.stdout.count("already finished") == 5
    assert "6 finished (5 already before this launch), 0 failed" in again.stdout
    assert (first / "3" / "done").exists() and not (first / "3" / "error.txt").exists()
    reference = _test_rows(first)

    # The same sweep two jobs at a time (hydra/launcher=local_parallel), kill -9 of the whole process group once
    # a job has finished and a third one started; launched again (sequentially), it ends with the same results.
    killed = tmp_path / "killed"
    run = _sweep("hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={killed}",
                 wait=False)
    deadline = time.time() + 180
    while not ((killed / "0" / "done").exists() and (killed / "2" / ".hydra").exists()):
        assert run.poll() is None and time.time() < deadline, "the sweep ended before it could be killed"
        time.sleep(0.01)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    shutil.rmtree(os.path.join(tempfile.gettempdir(), slot_dir_name(run.pid, 2)), ignore_errors=True)
    assert not (killed / "5" / "done").exists()
    # local_parallel divided the cores: two jobs at once on len(CORES) cores, each worker in its own slot
    for job in (0, 1):
        line = re.search(r"job \d: (\d+) CPU thread\(s\), CUDA_VISIBLE_DEVICES=.*, slot ([01])$",
                         (killed / str(job) / "train.log").read_text(), re.M)
        assert line and int(line.group(1)) == max(1, len(CORES) // 2), line
    resumed = _sweep(f"hydra.sweep.dir={killed}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{killed / '0'} already finished" in resumed.stdout and "6 job(s), 6 finished" in resumed.stdout
    pd.testing.assert_frame_equal(_test_rows(killed), reference, check_exact=True)
    # ... and so does its report
    assert report_main([str(first), "--out", str(tmp_path / "r1")]) == 0
    assert report_main([str(killed), "--out", str(tmp_path / "r2")]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "r1" / "table.csv"), pd.read_csv(tmp_path / "r2" / "table.csv"))


def test_submitit_path_runs_the_jobs_and_a_nan_loss_fails_only_its_job(tmp_path):
    # hydra/launcher=slurm_local: hydra-submitit-launcher; submitit pickles each job and runs it in its own process
    proc = run_fairrun("train", "-m", *TINY, "trainer.lr=1e-3,1e36", "hydra/launcher=slurm_local",
                       "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    sweep = tmp_path / "sweep"
    assert (sweep / "0" / "done").exists() and not (sweep / "0" / "error.txt").exists()
    error = (sweep / "1" / "error.txt").read_text()
    assert "The training loss became nan at epoch 1, step" in error and "Lower trainer.lr" in error
    assert "Traceback" not in error and "2 job(s), 1 finished, 1 failed" in proc.stdout
    assert list(sweep.glob("slurm_logs/*_log.out")), "submitit's job logs under the sweep dir"


def test_local_parallel_gives_each_worker_slot_its_gpu_and_share_of_the_cores(monkeypatch):
    import multiprocessing

    from fairrun.sweep import parallel_share, selected_gpus, take_slot

    # 4 jobs at once on 2 GPUs: slots 0..3 run on GPUs 0, 1, 0, 1; 16 cores give each 4 threads
    assert [parallel_share(k, 4, ["0", "1"], None, 16) for k in range(4)] == \
        [("0", 4), ("1", 4), ("0", 4), ("1", 4)]
    assert parallel_share(2, 3, [], None, 2) == (None, 1)  # no GPU: threads only, at least one
    assert parallel_share(0, 2, ["0"], 6, 2) == ("0", 6)  # threads_per_job wins
    # `gpus` picks among the GPUs the launching process sees (CUDA_VISIBLE_DEVICES entries)
    monkeypatch.setenv("FAIRRUN_GPU_TOKENS", "2,3,5")
    assert selected_gpus(None) == ["2", "3", "5"] and selected_gpus([2, 0]) == ["5", "2"]
    with pytest.raises(Exception, match="gpus"):
        selected_gpus([3])
    # worker processes hold distinct slots while they live
    ctx = multiprocessing.get_context("fork")
    lock_dir = os.path.join(tempfile.gettempdir(), f"fairrun-test-slots-{os.getpid()}")
    queue, release = ctx.Queue(), ctx.Event()

    def worker():
        queue.put(take_slot(lock_dir, 3))
        release.wait(30)

    workers = [ctx.Process(target=worker) for _ in range(3)]
    for w in workers:
        w.start()
    slots = sorted(queue.get(timeout=30) for _ in workers)
    release.set()
    for w in workers:
        w.join(30)
    shutil.rmtree(lock_dir, ignore_errors=True)
    assert slots == [0, 1, 2]


def test_error_txt_is_one_paragraph_for_user_errors_and_adds_the_traceback_otherwise():
    import torch

    from fairrun.core.errors import ConfigError
    from fairrun.sweep import failure_text

    def raised(err):
        try:
            raise err
        except Exception as caught:  # noqa: BLE001
            return failure_text(caught)

    user = raised(ConfigError("Invalid value for 'trainer.lr': 0. Accepted: a number > 0."))
    assert user == "fairrun: error: Invalid value for 'trainer.lr': 0. Accepted: a number > 0.\n"
    oom = raised(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert oom.startswith("fairrun: error: out of GPU memory (CUDA out of memory.")
    assert "trainer.batch_size" in oom
    assert "hydra.launcher.n_jobs" in oom and "Traceback" in oom
    other = raised(KeyError("boom"))
    assert other.startswith("fairrun: error: unexpected KeyError: 'boom'\n\nTraceback") and "raise err" in other
