"""Configs composed with Hydra's compose API, and validation of bad values."""
import pytest

from fairrun.config import RunConfig, validate_run_config
from fairrun.data.registry import load_dataset
from fairrun.core.errors import ConfigError
from tests.conftest import compose_train


def test_default_config_composes_and_validates():
    cfg = validate_run_config(compose_train([]))
    assert isinstance(cfg, RunConfig)
    assert (cfg.dataset.name, cfg.model.name, cfg.method.name) == ("synthetic", "cnn", "erm")
    assert cfg.dataset.target == "smiling" and cfg.dataset.protected == "group"
    assert cfg.imbalance.ratio is None and cfg.gpu.device == "auto" and cfg.gpu.amp == "off"


@pytest.mark.parametrize("model", ["logreg", "mlp", "cnn", "resnet18", "resnet34", "resnet50"])
def test_every_model_option_composes(model):
    assert validate_run_config(compose_train([f"model={model}"])).model.name == model


def test_overrides_reach_the_typed_config():
    cfg = validate_run_config(compose_train([
        "trainer.lr=0.01", "trainer.optimizer=sgd", "trainer.scheduler=step", "imbalance.ratio=0.9",
        "dataset.protected=[group,glasses]", "gpu=cuda", "gpu.amp=fp16", "seed=3"]))
    assert cfg.trainer.lr == 0.01 and cfg.trainer.optimizer == "sgd" and cfg.imbalance.ratio == 0.9
    assert cfg.dataset.protected == ["group", "glasses"] and cfg.gpu.amp == "fp16" and cfg.seed == 3


def test_fingerprint_ignores_resume_but_not_results_relevant_keys():
    a = validate_run_config(compose_train([]))
    b = validate_run_config(compose_train(["resume=false", "gpu.num_workers=4"]))
    c = validate_run_config(compose_train(["trainer.lr=0.01"]))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


@pytest.mark.parametrize("override, key, accepted", [
    ("trainer.epochs=0", "trainer.epochs", ">= 1"),
    ("trainer.lr=-1", "trainer.lr", "> 0"),
    ("trainer.optimizer=rmsprop", "trainer.optimizer", "adam, sgd"),
    ("trainer.scheduler=linear", "trainer.scheduler", "none, step, cosine"),
    ("gpu.amp=fp8", "gpu.amp", "off, bf16, fp16"),
    ("imbalance.ratio=1.5", "imbalance.ratio", "(0, 1]"),
    ("imbalance.ratio=0", "imbalance.ratio", "(0, 1]"),
    ("seed=-1", "seed", ">= 0"),
    ("+trainer.epoch=3", "trainer.epoch", "epochs"),
    ("dataset.image_size=7", "image_size", "16"),
    ("model.dropout=1.5", "model.dropout", "[0, 1)"),
])
def test_bad_values_name_the_key_and_what_is_accepted(override, key, accepted):
    overrides = ["model=mlp", override] if override.startswith("model.dropout") else [override]
    with pytest.raises(ConfigError) as err:
        validate_run_config(compose_train(overrides))
    message = str(err.value)
    assert key in message and accepted in message, message


@pytest.mark.parametrize("overrides, words", [
    (["dataset.target=age"], ["dataset.target", "'age'", "smiling", "group", "glasses"]),
    (["dataset.protected=smiling"], ["protected", "differ from the target"]),
    (["dataset.protected=[group,hat]"], ["'hat'", "glasses"]),
])
def test_unknown_or_clashing_attributes(overrides, words):
    """Refused by the config's validation, before any data is generated (the dataset's attribute names)."""
    with pytest.raises(ConfigError) as err:
        validate_run_config(compose_train(overrides + ["dataset.n_train=50", "dataset.n_val=20",
                                                       "dataset.n_test=20"]))
    assert all(w in str(err.value) for w in words), str(err.value)


def test_intersectional_groups_have_readable_names():
    cfg = validate_run_config(compose_train(["dataset.protected=[group,glasses]", "dataset.n_train=200",
                                             "dataset.n_val=50", "dataset.n_test=50"]))
    splits = load_dataset(cfg.dataset)
    names = splits["test"].group_names
    assert len(names) == 4 and all("/" in n for n in names)
    assert int(splits["test"].g.max()) <= 3


@pytest.mark.parametrize("select", ["accuracy", "worst_group_acc", "balanced_accuracy", "acc_gap", "dp_diff"])
def test_trainer_select_accepts_registered_metrics_with_a_direction(select):
    from fairrun.training.checks import require_select_metric

    cfg = validate_run_config(compose_train([f"trainer.select={select}", "trainer.patience=3"]))
    require_select_metric(cfg.trainer)
    assert cfg.trainer.select == select and cfg.trainer.patience == 3


@pytest.mark.parametrize("select, why", [("worst_grp_acc", "is not a registered metric"),
                                         ("n", "has no better or worse value"),
                                         ("acc", "is not a validation metric of one column")])
def test_a_bad_trainer_select_is_one_paragraph_listing_the_accepted_names(select, why):
    from fairrun.training.checks import require_select_metric, selectable_metrics

    cfg = validate_run_config(compose_train([f"trainer.select={select}"]))
    with pytest.raises(ConfigError) as err:
        require_select_metric(cfg.trainer)
    message = str(err.value)
    assert f"'trainer.select': {select!r}" in message and why in message and "\n" not in message
    assert all(name in message for name in selectable_metrics())
    assert "worst_group_acc" in message and "acc_gap" in message and "balanced_accuracy" in message


def test_trainer_patience_must_be_positive():
    with pytest.raises(ConfigError, match=r"trainer.patience.*integer >= 1"):
        validate_run_config(compose_train(["trainer.patience=0"]))


def test_keys_added_later_leave_the_fingerprint_of_earlier_runs_unchanged(tiny_cfg):
    """trainer.select, trainer.patience and trainer.precise_bn at the values that behave as before they existed
    are not hashed, so a run written before (whose saved config and checkpoint fingerprint lack them) still
    resumes and is still recognised; trainer.precise_bn's default (200) is a new behaviour and is hashed."""
    from fairrun.config.run import KEYS_ADDED_LATER
    from fairrun.core.fingerprint import fingerprint

    cfg = tiny_cfg("trainer.precise_bn=0")
    before = cfg.to_dict()
    for (section, key) in KEYS_ADDED_LATER:
        before[section].pop(key)
    before.pop("resume"), before.pop("eval_datasets"), before["gpu"].pop("num_workers")
    before["gpu"].pop("data_on_device")
    before.pop("arm"), before.pop("init_from")  # a name, and a key added later (null: as before)
    assert cfg.fingerprint() == fingerprint(before)
    assert tiny_cfg("arm=erm", "trainer.precise_bn=0").fingerprint() == cfg.fingerprint()
    assert tiny_cfg("init_from=/some/run", "trainer.precise_bn=0").fingerprint() != cfg.fingerprint()
    assert tiny_cfg("trainer.select=worst_group_acc", "trainer.precise_bn=0").fingerprint() != cfg.fingerprint()
    assert tiny_cfg("trainer.patience=2", "trainer.precise_bn=0").fingerprint() != cfg.fingerprint()
    assert tiny_cfg().fingerprint() != cfg.fingerprint()


def test_a_saved_config_from_before_precise_bn_loads_as_it_was_trained(tiny_cfg, tmp_path):
    """run_config.yaml written before trainer.precise_bn existed means PyTorch's running averages (0), not
    today's default, so its fingerprint is the one its checkpoints carry."""
    import yaml
    from fairrun import rundir
    from fairrun.config import load_run_config

    cfg = tiny_cfg()
    data = cfg.to_dict()
    del data["trainer"]["precise_bn"]
    rundir.write_text(yaml.safe_dump(data), tmp_path / rundir.RUN_CONFIG)
    saved = load_run_config(tmp_path / rundir.RUN_CONFIG)
    assert saved.trainer.precise_bn == 0
    assert saved.fingerprint() == tiny_cfg("trainer.precise_bn=0").fingerprint()
