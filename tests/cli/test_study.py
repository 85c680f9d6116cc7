"""fairrun study: every study end to end with --tiny (its report in the sweep directory, with the expected rows and
arms), the full-size job counts of --dry-run, the estimate, the refusals, arms of a user's own, and a re-run."""
from __future__ import annotations

import math
import shlex
from pathlib import Path

import pandas as pd
import pytest

from fairrun.commands.study import study_main
from tests.conftest import run_fairrun

# study -> (arms of its --tiny run, its table's --by keys, table rows, jobs at full size)
STUDIES = {
    "imbalance_privacy": ({"erm", "dpsgd_sigma1.5", "dp_fedavg"}, ["arm", "imbalance_ratio"], 9, 13 * 5 * 3),
    "celeba_reweight": ({"erm", "reweight"}, ["target", "arm"], 4, 5 * 2 * 3),
    "gan_debias": ({"erm", "gan_debias"}, ["target", "arm"], 2, 20 * 2),
    "fairface_transfer": ({"erm", "fair_reg", "fair_mask"}, ["model", "arm"], 9, 4 * 3 * 3),
    "vae_minority": ({"erm", "minority_gan"}, ["arm"], 2, 2 * 3),
}


def _study(*argv: str) -> tuple[int, list | None]:
    return study_main(list(argv))


# The studies whose --tiny run the suite runs exactly as shipped, ERM's learning asserted; the others run with one
# epoch of classifier training (trainer.epochs=1 after the study's own overrides), which exercises every stage,
# arm, job and the report in a third of the time (the whole suite must stay within CI's 15 minutes; every
# study's full --tiny run is in its docs page, measured).
AS_SHIPPED = ("celeba_reweight", "gan_debias")  # gan_debias: its hyperplanes need baselines that learned


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_study_runs_end_to_end_with_tiny(name, tmp_path):
    """`fairrun study NAME --tiny`: every job finishes, the report (sweep.pkl, table.csv, comparisons.csv, plots)
    is in the sweep directory with one table row per combination of the study's --by keys and every arm; in the
    run as shipped, the ERM arm learned (no near-chance model passes for a result)."""
    arms, by, rows, _ = STUDIES[name]
    faster = [] if name in AS_SHIPPED else ["trainer.epochs=1"]
    done = run_fairrun("study", name, "--tiny", *faster, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sweep = tmp_path / "outputs" / "studies" / f"{name}-tiny"
    results = pd.read_pickle(sweep / "sweep.pkl")
    table = pd.read_csv(sweep / "table.csv")
    assert set(results["arm"]) == arms
    assert list(table.columns[:len(by)]) == by and len(table) == rows
    assert (sweep / "comparisons.csv").is_file() and (sweep / "report.txt").is_file()
    assert any((sweep / "plots").glob("*.png"))
    test = results[results["split"] == "test"]
    if name in AS_SHIPPED:
        assert test[test["arm"] == "erm"]["accuracy"].min() > 0.65, test[["arm", "accuracy"]]
    check = globals().get(f"_check_{name}")
    if check:
        check(results, table, sweep)
    if name == "celeba_reweight":
        _check_the_same_launch_again_skips_every_job_and_rewrites_the_report(done.stdout, sweep, tmp_path)


def _check_the_same_launch_again_skips_every_job_and_rewrites_the_report(stdout, sweep, cwd):
    """The same launch again, through fairrun train -m +study=NAME as the study command prints it: every job is
    skipped (finished before), the report is written again."""
    report = sweep / "report.txt"
    before = report.stat().st_mtime_ns
    same = stdout.split("the same as: fairrun train -m ", 1)[1].splitlines()[0]
    again = run_fairrun("train", "-m", *shlex.split(same), cwd=cwd, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 finished (4 already before this launch)" in again.stdout
    assert "writing its report" in again.stdout and report.stat().st_mtime_ns > before


def _check_imbalance_privacy(results, table, sweep):
    """ε of every private run, none of ERM's; one row per arm and ratio; the metric-vs-ratio charts."""
    test = results[results["split"] == "test"]
    private = test["arm"] != "erm"
    assert test.loc[private, "epsilon"].map(math.isfinite).all()
    assert test.loc[~private, "epsilon"].isna().all()
    assert sorted(table["imbalance_ratio"].unique()) == [0.5, 0.9, 1.0]
    assert (sweep / "plots" / "accuracy_vs_ratio.png").is_file()
    assert (sweep / "plots" / "epsilon_vs_acc_gap.png").is_file()


def _check_gan_debias(results, table, sweep):
    """The paper's protocol: the calibrated threshold and the bootstrap medians of AP, DEO, BA and KL."""
    assert {f"{m}_median_mean" for m in ("ap", "eopp_diff", "ba", "kl")} <= set(table.columns)
    assert results[results["split"] == "test"]["ap_median"].notna().all()


def _check_fairface_transfer(results, table, sweep):
    """The transfer to another dataset: extra rows of every model (split = the other dataset's name)."""
    other = results[results["split"] == "synthetic:test"]
    assert len(other) == 9 and set(other["model"]) == {"logreg", "mlp", "cnn"}
    assert "acc_var_mean" in table.columns


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_dry_run_at_full_size_lists_every_job(name, capsys):
    """--dry-run at full size: the jobs and their number (imbalance_privacy: 13 ratios x 5 arms x 3 seeds)."""
    *_, jobs = STUDIES[name]
    assert _study(name, "--dry-run", "--no-estimate") == (0, None)
    out = capsys.readouterr().out
    assert f"\n{jobs} jobs\n" in out
    assert out.count("\n  ") >= jobs  # one line per job (and the wrapped shared overrides)
    assert f"SLURM job array of {jobs} tasks" in " ".join(out.split())


def test_list_names_every_study_with_its_jobs(capsys):
    assert _study("--list") == (0, None)
    out = capsys.readouterr().out
    for name, (*_, jobs) in STUDIES.items():
        assert f"\n{name}\n" in out and f"{jobs} jobs:" in out


def test_dry_run_estimates_the_compute_from_timed_steps(capsys):
    assert _study("imbalance_privacy", "--tiny", "--dry-run") == (0, None)
    out = capsys.readouterr().out
    assert "9 jobs" in out and "estimated compute:" in out
    for arm in ("erm", "dpsgd_sigma1.5", "dp_fedavg"):
        assert arm in out.split("9 jobs", 1)[1]


@pytest.mark.parametrize("argv, expected", [
    (["gan_debias", "dataset.root=/data/celeba"], "needs study.params.generator=..."),
    (["imbalance_privacy"], "needs dataset.root=..."),
    (["imbalance_pricavy", "--tiny"],
     "unknown study 'imbalance_pricavy'. Did you mean 'imbalance_privacy'? Studies: celeba_reweight"),
    (["dataset.root=/x"], "needs the study's name first"),
    (["celeba_reweight", "--tiny", "--fast"], "unknown option '--fast'"),
    (["celeba_reweight", "--no-estimate"], "--no-estimate only applies to --dry-run"),
])
def test_mistakes_are_one_paragraph_before_any_job(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _study(*argv) == (2, None)
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("fairrun study: error:") and expected in err
    assert not (tmp_path / "outputs").exists()


def test_a_users_own_arm_and_study_in_config_dir(tmp_path, capsys):
    """Arms and studies of a user's --config-dir are found like the built-in ones; an arm carries its method's
    keys and its name."""
    (tmp_path / "arm").mkdir()
    (tmp_path / "study").mkdir()
    (tmp_path / "arm" / "dro_strong.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /method: groupdro\n  - _self_\narm: dro_strong\n"
        "method:\n  eta: 0.1\n")
    (tmp_path / "study" / "mine.yaml").write_text(
        "# @package _global_\nstudy:\n  name: mine\n  reproduces: my arms on the built-in data\n  needs: []\n"
        "hydra:\n  sweeper:\n    params:\n      arm: erm,dro_strong\n      seed: 0,1\n")
    assert _study("mine", "--dry-run", "--no-estimate", "--config-dir", str(tmp_path)) == (0, None)
    out = capsys.readouterr().out
    assert "4 jobs" in out and "arm=dro_strong seed=1" in out
    from fairrun.studies.catalog import compose_job

    job = compose_job(["+study=mine", "arm=dro_strong", "seed=1"], [str(tmp_path)])
    assert (job.arm, job.method.name, job.method.eta) == ("dro_strong", "groupdro", 0.1)
    assert _study("--list", "--config-dir", str(tmp_path)) == (0, None)
    assert "\nmine\n" in capsys.readouterr().out


def test_arm_is_a_results_column_and_composes_with_other_overrides(tiny_cfg):
    """An arm sets its method and keys; keys given after it win; without an arm the column is the method."""
    from fairrun.training.results import run_metadata

    cfg = tiny_cfg("arm=dpsgd_sigma1.1")
    assert (cfg.arm, cfg.method.name, cfg.method.noise_multiplier, cfg.method.max_grad_norm) == \
        ("dpsgd_sigma1.1", "dpsgd", 1.1, 5.0)
    assert tiny_cfg("arm=dpsgd_sigma1.1", "method.noise_multiplier=2").method.noise_multiplier == 2
    assert run_metadata(cfg, Path("x"))["arm"] == "dpsgd_sigma1.1"
    assert run_metadata(tiny_cfg("method=groupdro"), Path("x"))["arm"] == "groupdro"
    assert tiny_cfg("arm=dp_fedavg_small").arm == "dp_fedavg"  # a study's small variant keeps the arm's name
