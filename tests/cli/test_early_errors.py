"""Mistakes caught early, with help (issue 20): a misspelled key, group option or dataset attribute is
reported with the closest valid name, before Hydra starts and before any data is generated, read or decoded, and a
refused command leaves no run directory behind."""
import logging

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

import fairrun.commands.preflight as preflight
from fairrun.commands.common import launched_fresh, remove_launch_dir
from fairrun.data import csv_table
from fairrun.data.registry import DATASETS
from fairrun.data.synthetic import SyntheticConfig, make_synthetic
from tests.conftest import run_fairrun_in_process
from tests.helpers.fixtures_celeba import make_celeba
from tests.helpers.fixtures_csv import make_csv_dataset

# (arguments after `fairrun train`, words the one-paragraph message must hold)
MISTAKES = [
    (["methd=erm"], ["unknown key 'methd'", "Did you mean 'method=erm'?", "trainer"]),
    (["+methd=erm"], ["unknown key 'methd'", "Did you mean 'method=erm'?"]),
    (["+trainer.epoch=3"], ["'trainer.epoch'", "Did you mean 'trainer.epochs=3'?", "batch_size"]),
    (["trainer.epoch=3"], ["'trainer.epoch'", "Did you mean 'trainer.epochs=3'?"]),
    (["method=grupdro"], ["unknown method 'grupdro'", "Did you mean 'method=groupdro'?", "erm, fair_mask"]),
    (["model=resnt18"], ["unknown model 'resnt18'", "Did you mean 'model=resnet18'?", "mlp"]),
    (["+sweep=methds"], ["unknown sweep 'methds'", "Did you mean '+sweep=methods'?", "seeds"]),
    (["dataset.target=smilling"], ["'dataset.target': 'smilling'", "Did you mean 'smiling'?",
                                   "smiling, group, glasses"]),
    (["dataset.protected=smiling"], ["'dataset.protected': 'smiling'", "differ from the target",
                                     "group, glasses"]),
    (["dataset.protected=[group,glases]"], ["'glases'", "Did you mean 'glasses'?"]),
    (["dataset=celeba", "dataset.target=smilling"], ["'smilling'", "Did you mean 'Smiling'?", "Young"]),
    (["dataset=celeba", "dataset.protected=smiling"], ["'smiling'", "Did you mean 'Smiling'?", "Male"]),
    (["-m", "method=erm,grupdro"], ["'grupdro'", "Did you mean 'method=groupdro'?"]),
    (["-m", "seed=0,1", "trainer.lr=0.1,-1"], ["'trainer.lr': -1", "> 0"]),
    (["dataset=celeba", "dataset.root=/nonexistent-fairrun-root"],
     ["dataset.root=/nonexistent-fairrun-root is not a directory", "your copy of CelebA", "never downloads"]),
    (["dataset=fairface"], ["dataset.root is not set for dataset=fairface", "dataset.root=DIR"]),
]


@pytest.fixture
def no_data(monkeypatch):
    """Every dataset's reader and table reader replaced by one that records the call (and fails the test)."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("data was read")

    for name in list(DATASETS):
        monkeypatch.setattr(DATASETS[name], "read", staticmethod(refuse))
        monkeypatch.setattr(DATASETS[name], "read_table", staticmethod(refuse))
    monkeypatch.setattr(csv_table, "_read_csv", refuse)  # the whole CSV (its header alone may be read)
    return calls


@pytest.mark.parametrize("args, words", MISTAKES)
def test_a_mistake_gets_one_paragraph_with_the_closest_name_before_any_data_and_no_folder(
        tmp_path, no_data, args, words):
    proc = run_fairrun_in_process("train", "dataset=synthetic", *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("fairrun: error: ") and "Traceback" not in proc.stderr
    message = " ".join(proc.stderr.split())  # the paragraph is wrapped at the terminal's width
    assert all(w in message for w in words), message
    assert no_data == [] and list(tmp_path.iterdir()) == []  # nothing read, no outputs/ nor multirun/


def test_the_check_runs_before_hydra_starts(tmp_path, no_data, monkeypatch):
    """The preflight itself returns the paragraph (Hydra's app, its run directory and logging never start)."""
    monkeypatch.chdir(tmp_path)
    message = preflight.unknown_key_message("train", ["dataset=celeba", f"dataset.root={tmp_path}",
                                                      "dataset.target=smilling"])
    assert "Did you mean 'Smiling'?" in message and no_data == []
    assert preflight.unknown_key_message("train", ["dataset=synthetic", "trainer.epochs=1"]) is None
    assert preflight.unknown_key_message("data", ["dataset=synthetic", "dataset.target=glases"]).count(
        "Did you mean 'glasses'?") == 1
    assert "Did you mean 'race'?" in preflight.unknown_key_message(
        "prepare", ["dataset=utkface", f"dataset.root={tmp_path}", "dataset.protected=rase"])


def test_a_csv_dataset_is_checked_from_its_header_line(tmp_path, no_data, monkeypatch):
    (tmp_path / "labels.csv").write_text("path,gender,smiling,split\nimages/a.jpg,Female,1,train\n")
    monkeypatch.chdir(tmp_path)
    message = preflight.unknown_key_message("train", ["dataset=csv", "dataset.csv=labels.csv",
                                                      "dataset.split_column=split", "dataset.target=smilling",
                                                      "dataset.protected=gender"])
    assert "Did you mean 'smiling'?" in message and "gender, smiling." in message and no_data == []


def test_attribute_names_are_those_the_data_has(tmp_path):
    """The names known without reading are exactly the attributes the readers produce."""
    synthetic = make_synthetic(SyntheticConfig(n_train=4, n_val=2, n_test=2, image_size=16))
    assert DATASETS["synthetic"].attribute_names(None) == list(synthetic["train"].attribute_values)
    cfg = DATASETS["csv"].Config(csv=str(make_csv_dataset(tmp_path / "csv", n=10)), split_column="split")
    assert DATASETS["csv"].attribute_names(cfg) == list(csv_table.read_table(cfg).attribute_values)
    cfg = DATASETS["celeba"].Config(root=str(make_celeba(tmp_path / "celeba", n=20, image_size=(20, 24))))
    table = DATASETS["celeba"].read_table(cfg)
    assert sorted(DATASETS["celeba"].attribute_names(cfg)) == sorted({*table.attribute_values, "gender"}
                                                                      - {"identity"})


def test_a_sweep_is_checked_value_by_value():
    parsed = OverridesParser.create().parse_overrides(["seed=0,1,2", "trainer.lr=0.1",
                                                       "+method=erm,groupdro"])
    assert preflight.override_sets(parsed) == [
        ["trainer.lr=0.1", "seed=0", "+method=erm"], ["trainer.lr=0.1", "seed=1", "+method=erm"],
        ["trainer.lr=0.1", "seed=2", "+method=erm"], ["trainer.lr=0.1", "seed=0", "+method=groupdro"]]


def _without_preflight(monkeypatch):
    monkeypatch.setattr(preflight, "unknown_key_message", lambda *args: None)


def test_a_refusal_inside_the_app_removes_the_folder_it_made(tmp_path, monkeypatch):
    _without_preflight(monkeypatch)
    proc = run_fairrun_in_process("train", "dataset=synthetic", "dataset.target=smilling", cwd=tmp_path)
    assert proc.returncode == 2 and "Did you mean 'smiling'?" in " ".join(proc.stderr.split())
    assert list(tmp_path.iterdir()) == []
    logging.getLogger("fairrun").warning("logged after the refusal")  # no handler reopens the removed log
    assert not any(isinstance(h, logging.FileHandler) and str(tmp_path) in h.baseFilename
                   for h in logging.getLogger().handlers)


def test_a_dataset_without_its_files_leaves_no_folder(tmp_path, monkeypatch):
    """dataset.root is a folder, but not one holding CelebA: the reader's message names the files it expected,
    and the launch removes the folder it made (its log, .hydra/ and error.txt) since nothing was trained."""
    (tmp_path / "empty").mkdir()
    proc = run_fairrun_in_process("train", "dataset=celeba", "dataset.root=empty", cwd=tmp_path)
    assert proc.returncode == 2 and "list_attr_celeba.txt" in proc.stderr, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]


@pytest.mark.parametrize("before", [{"done": "", "results.json": "{}", "train.log": "trained\n"},
                                    {"train.log": "an earlier launch\n"}, {"notes.txt": "mine"}])
def test_a_refusal_never_removes_a_folder_that_held_something_before(tmp_path, monkeypatch, before):
    _without_preflight(monkeypatch)
    run = tmp_path / "run"
    run.mkdir()
    for name, text in before.items():
        (run / name).write_text(text)
    proc = run_fairrun_in_process("train", "dataset=synthetic", "dataset.target=smilling",
                                  "hydra.run.dir=run", cwd=tmp_path)
    assert proc.returncode == 2
    assert all((run / name).read_text().startswith(text) for name, text in before.items())


def test_launch_folder_helpers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "outputs" / "day" / "time"
    run.mkdir(parents=True)
    (run / "train.log").write_text("")
    assert launched_fresh(run)
    (run / "error.txt").write_text("fairrun: error: ...")
    assert not launched_fresh(run)  # an earlier launch's error
    (run / "checkpoints").mkdir()
    assert not remove_launch_dir(run) and run.is_dir()  # part of a run
    (run / "checkpoints").rmdir()
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("seed: 0\n")  # the accepted config of this launch
    assert remove_launch_dir(run) and list(tmp_path.iterdir()) == []  # and the empty parents Hydra made


@pytest.mark.parametrize("args, words", [
    (["trian"], ["unknown command 'trian'", "Did you mean 'fairrun train'?"]),
    (["study", "celeba_rewieght", "--dry-run"], ["unknown study 'celeba_rewieght'",
                                                  "Did you mean 'celeba_reweight'?"]),
    (["study", "imbalance_privacy", "--tiyn"], ["unknown option '--tiyn'", "Did you mean '--tiny'?"]),
    (["report", ".", "--metrcs", "accuracy"], ["unrecognized arguments: --metrcs", "Did you mean '--metrics'?"]),
])
def test_commands_and_flags_get_the_closest_name_too(tmp_path, args, words):
    proc = run_fairrun_in_process(*args, cwd=tmp_path)
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and all(w in message for w in words), message
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_report_metric_gets_the_closest_column(tmp_path):
    import pandas as pd

    from fairrun.core.errors import FairrunError
    from fairrun.report.cli import check_metrics

    results = pd.DataFrame({"accuracy": [0.9], "worst_group_acc": [0.8], "method.lam": [1.0]})
    with pytest.raises(FairrunError) as err:
        check_metrics(results, ["acuracy"])
    assert "Did you mean 'accuracy'?" in str(err.value) and "method.lam" not in str(err.value)
