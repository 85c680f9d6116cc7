"""init_from=RUN_DIR (fairrun.training.init_from): a fresh run starts from a finished run's best.pt
weights."""
from __future__ import annotations

import logging
import re
import shlex
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

import fairrun.training.run as train_module
from fairrun.core.errors import ConfigError, Interrupted
from fairrun.methods import build_method
from fairrun.models import build_model
from fairrun.training import run_training
from fairrun.training.init_from import InitSource, initialise, resolve_source
from fairrun.training.loop import Trainer
from tests.conftest import TINY, compose_train
from tests.helpers.resume import StopAfter

DOCS = Path(__file__).resolve().parents[2] / "docs" / "datasets.md"


def documented_task() -> tuple:
    """The overrides of docs/datasets.md's synthetic example, ``fairrun train init_from=RUN ...``: another
    target with 3 classes (group of a 3-group synthetic set), protected=glasses."""
    for block in re.findall(r"```bash\n(.*?)```", DOCS.read_text(), re.S):
        for line in block.splitlines():
            if line.startswith("fairrun train init_from=RUN "):
                return tuple(shlex.split(line)[3:])
    raise AssertionError("docs/datasets.md shows no `fairrun train init_from=RUN ...` command")


THREE_CLASSES = documented_task()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A finished tiny run (target smiling, 2 classes) and its best.pt model weights."""
    from fairrun.config import validate_run_config

    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("init_from") / "source"
    run_training(validate_run_config(compose_train(TINY + ["trainer.epochs=1"])), run_dir)
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)["model"]
    return run_dir, best


class Captured(Exception):
    """Raised by :func:`weights_at_start` to end a run once its starting weights are read."""


def weights_at_start(monkeypatch, stop: bool) -> dict:
    """Make run_training's Trainer record its model's weights when fit() starts (before step 0); ``stop``:
    then raise :class:`Captured` instead of training."""
    seen = {}

    class Spy(Trainer):
        def fit(self, writer, stop_flag):
            seen.update({k: v.detach().clone() for k, v in self.model.state_dict().items()})
            if stop:
                raise Captured
            return super().fit(writer, stop_flag)

    monkeypatch.setattr(train_module, "Trainer", Spy)
    return seen


def test_fine_tuning_starts_from_best_pt_with_a_fresh_head_and_records_the_source(tiny_cfg, source, tmp_path,
                                                                                  monkeypatch):
    src, best = source
    fresh = weights_at_start(monkeypatch, stop=True)
    with pytest.raises(Captured):
        run_training(tiny_cfg(*THREE_CLASSES, "trainer.epochs=1"), tmp_path / "scratch")
    start = weights_at_start(monkeypatch, stop=False)
    results = run_training(tiny_cfg(*THREE_CLASSES, "trainer.epochs=1", f"init_from={src}"), tmp_path / "ft")

    backbone = [k for k in best if not k.startswith("head.")]
    assert len(backbone) == 12 and set(start) == set(best)  # 2 conv blocks: conv weight + 5 BatchNorm tensors
    for name in backbone:  # every backbone tensor (running statistics included) is the source's, exactly
        assert torch.equal(start[name], best[name]), name
    assert not torch.equal(fresh["backbone.0.weight"], best["backbone.0.weight"])  # so the copy did something
    assert start["head.weight"].shape == (3, 16) and best["head.weight"].shape == (2, 16)
    for name in ("head.weight", "head.bias"):  # the head: as a run without init_from initialises it
        assert torch.equal(start[name], fresh[name]), name

    saved = pd.read_pickle(tmp_path / "ft" / "results.pkl")
    assert (tmp_path / "ft" / "done").is_file() and set(saved["split"]) >= {"val", "test"}
    assert saved["init_from"].tolist() == [str(src.resolve())] * len(saved)
    assert results["init_from"].iloc[0] == str(src.resolve())
    assert pd.read_pickle(src / "results.pkl")["init_from"].isna().all()  # a run from scratch: None


def _model_and_method(cfg, num_classes: int):
    method = build_method(cfg.method, num_classes=num_classes, num_groups=2)
    return method.adapt_model(build_model(cfg.model, 3, 16, num_classes))


def test_same_number_of_classes_copies_the_head_and_warns_about_the_class_order(tiny_cfg, source, caplog):
    src, best = source
    cfg = tiny_cfg("dataset.target=glasses", "dataset.protected=group", f"init_from={src}")
    model = _model_and_method(cfg, 2)
    with caplog.at_level(logging.INFO, logger="fairrun"):
        report = initialise(model, resolve_source(cfg, src.parent / "ft"), ["no_glasses", "glasses"])
    assert report.copied == list(best) and report.fresh == [] and report.unused == []
    assert all(torch.equal(model.state_dict()[k], best[k]) for k in best)
    assert "copied 14 of the model's 14 tensors" in caplog.text
    assert "mapping the source's classes ['not_smiling', 'smiling'] to this run's ['no_glasses', 'glasses']" \
        in caplog.text


@pytest.mark.parametrize("method, copied, fresh", [
    # DP-SGD: BatchNorm -> GroupNorm (same affine shapes, no running statistics)
    ("dpsgd", {"backbone.0.weight", "backbone.1.weight", "backbone.1.bias", "backbone.4.weight",
               "backbone.5.weight", "backbone.5.bias", "head.weight", "head.bias"}, set()),
    # fair_mask: a bottleneck (latent_dim units) before a new head; the backbone is the source's
    ("fair_mask", {"backbone.0.weight", "backbone.1.weight", "backbone.1.bias", "backbone.1.running_mean",
                   "backbone.1.running_var", "backbone.1.num_batches_tracked", "backbone.4.weight",
                   "backbone.5.weight", "backbone.5.bias", "backbone.5.running_mean",
                   "backbone.5.running_var", "backbone.5.num_batches_tracked"},
     {"bottleneck.linear.weight", "bottleneck.linear.bias", "bottleneck.mask", "head.weight", "head.bias"}),
])
def test_a_method_that_changes_the_architecture_gets_the_tensors_that_fit(tiny_cfg, source, method, copied,
                                                                          fresh):
    src, best = source
    cfg = tiny_cfg(f"method={method}", "model=cnn", "model.width=8", "model.blocks=2", f"init_from={src}")
    model = _model_and_method(cfg, 2)
    init = resolve_source(cfg, src.parent / "ft")
    report = initialise(model, init, ["not_smiling", "smiling"])
    assert set(report.copied) == copied and set(report.fresh) == fresh
    assert set(report.unused) == set(best) - copied
    assert all(torch.equal(model.state_dict()[k], best[k]) for k in copied)


def test_nothing_of_the_backbone_fitting_is_refused(tiny_cfg, source):
    src, best = source
    model = _model_and_method(tiny_cfg(), 2)
    other = {k: torch.zeros(*v.shape, 2) for k, v in best.items() if k.startswith("backbone.")}  # shapes
    init = InitSource(src, {**other, "head.weight": best["head.weight"], "head.bias": best["head.bias"]},
                      ["not_smiling", "smiling"])
    with pytest.raises(ConfigError, match="no tensor of the backbone of .*best.pt fits this run's model"):
        initialise(model, init, ["not_smiling", "smiling"])


def _unfinished(src, tmp_path):
    copy = tmp_path / "unfinished"
    shutil.copytree(src, copy)
    (copy / "done").unlink()
    return copy


@pytest.mark.parametrize("case, match", [
    ("missing", r"init_from=.*missing: .*missing does not exist\. Pass init_from=RUN_DIR"),
    ("file", r"is a file, not a run directory"),
    ("own", r"is this run's own directory"),
    ("unfinished", r"holds no finished run \(no done marker and results.pkl\).*Finish it first"),
    ("model", r"was trained with another model \(model.width=8 there, 16 here\)"),
])
def test_a_bad_source_is_refused_before_any_data_is_read(tiny_cfg, source, tmp_path, monkeypatch, case,
                                                         match):
    import fairrun.data.registry as registry_module

    src, _ = source
    target = tmp_path / "ft"
    value = {"missing": tmp_path / "missing", "file": src / "results.pkl", "own": target,
             "unfinished": _unfinished(src, tmp_path) if case == "unfinished" else None, "model": src}[case]
    if case == "own":
        target.mkdir()
    extra = ["model.width=16"] if case == "model" else []
    monkeypatch.setattr(registry_module, "make_synthetic", lambda *a: pytest.fail("data read before check"))
    with pytest.raises(ConfigError, match=match):
        run_training(tiny_cfg(*extra, f"init_from={value}"), target)
    assert not (target / "run_config.yaml").exists()


def test_only_keys_that_change_no_tensor_may_differ_from_the_source_model(tiny_cfg, tmp_path):
    mlp, source = ("model=mlp", "model.hidden=[32]"), f"init_from={tmp_path / 'mlp'}"
    run_training(tiny_cfg(*mlp, "trainer.epochs=1"), tmp_path / "mlp")
    init = resolve_source(tiny_cfg(*mlp, "model.dropout=0.5", source), tmp_path / "ft")
    best = torch.load(tmp_path / "mlp" / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert init.run_dir == (tmp_path / "mlp").resolve() and list(init.weights) == list(best)
    assert all(torch.equal(init.weights[k], best[k]) for k in best)
    with pytest.raises(ConfigError, match=r"model.hidden=\[32\] there, \[16\] here"):
        resolve_source(tiny_cfg("model=mlp", "model.hidden=[16]", source), tmp_path / "ft")


def test_a_resumed_fine_tuning_run_continues_from_last_pt_without_reading_the_source(tiny_cfg, source,
                                                                                     tmp_path, monkeypatch):
    src = tmp_path / "src"
    shutil.copytree(source[0], src)
    cfg = tiny_cfg(*THREE_CLASSES, f"init_from={src}")
    full = run_training(cfg, tmp_path / "full")
    monkeypatch.setattr(train_module, "StopFlag", lambda: StopAfter(12))  # in epoch 2 (10 steps each)
    with pytest.raises(Interrupted):
        run_training(cfg, tmp_path / "cut")
    monkeypatch.undo()
    shutil.rmtree(src)  # reading it again would now fail: resuming must not
    resumed = run_training(cfg, tmp_path / "cut")
    volatile = ["run_dir", "train_seconds"]
    pd.testing.assert_frame_equal(full.drop(columns=volatile), resumed.drop(columns=volatile),
                                  check_exact=True)
    assert resumed["init_from"].iloc[0] == str(src.resolve())
