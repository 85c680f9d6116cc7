"""Imbalance sampling of the training split."""
import pytest
import torch

from fairrun.core.sections import ImbalanceConfig
from fairrun.data.base import LabeledSplit
from fairrun.data.imbalance import apply_imbalance
from fairrun.core.errors import ConfigError


def _split(counts):
    g = torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])
    return LabeledSplit("train", torch.zeros(len(g), 3, 4, 4, dtype=torch.uint8), y=g % 2, g=g,
                        group_names=[f"G{k}" for k in range(len(counts))], class_names=["no", "yes"])


def test_null_ratio_keeps_data_as_is():
    split = _split([50, 10])
    assert apply_imbalance(split, ImbalanceConfig(), seed=0) is split


@pytest.mark.parametrize("ratio, expected", [(0.5, [100, 100]), (0.9, [500, 55]), (1.0, [500, 0]),
                                             (0.99, [500, 5])])
def test_largest_achievable_size_with_majority_share(ratio, expected):
    out = apply_imbalance(_split([500, 100]), ImbalanceConfig(ratio=ratio), seed=0)
    assert torch.bincount(out.g, minlength=2).tolist() == expected


def test_k_groups_share_the_minority_part_and_explicit_majority():
    out = apply_imbalance(_split([300, 300, 300]), ImbalanceConfig(ratio=0.8, majority="G1", size=300),
                          seed=0)
    assert torch.bincount(out.g, minlength=3).tolist() == [30, 240, 30]


def test_sampling_is_seeded_and_without_replacement():
    split = _split([500, 100])
    split.y = torch.arange(600)  # make rows identifiable
    a = apply_imbalance(split, ImbalanceConfig(ratio=0.9), seed=1)
    b = apply_imbalance(split, ImbalanceConfig(ratio=0.9), seed=1)
    c = apply_imbalance(split, ImbalanceConfig(ratio=0.9), seed=2)
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, c.y)
    assert len(set(a.y.tolist())) == len(a)


def test_unmeetable_ratio_names_the_cell():
    with pytest.raises(ConfigError) as err:
        apply_imbalance(_split([500, 100]), ImbalanceConfig(ratio=0.5, size=400), seed=0)
    assert "'G1'" in str(err.value) and "200" in str(err.value) and "100" in str(err.value)
    with pytest.raises(ConfigError, match="G0, G1"):
        apply_imbalance(_split([500, 100]), ImbalanceConfig(ratio=0.5, majority="male"), seed=0)


def _cells_split(cells):
    """A split from a {(group, label): count} table."""
    g = torch.cat([torch.full((n,), k) for (k, y), n in cells.items()])
    y = torch.cat([torch.full((n,), y) for (k, y), n in cells.items()])
    return LabeledSplit("train", torch.zeros(len(g), 3, 4, 4, dtype=torch.uint8), y=y, g=g,
                        group_names=["Female", "Male"], class_names=["not_Smiling", "Smiling"])


def _cell_counts(split):
    return split.counts().to_numpy().tolist()


def test_balance_target_keeps_labels_even_inside_every_group():
    split = _cells_split({(0, 0): 900, (0, 1): 300, (1, 0): 100, (1, 1): 400})
    out = apply_imbalance(split, ImbalanceConfig(ratio=0.9, size=600, balance_target=True), seed=0)
    assert _cell_counts(out) == [[270, 270], [30, 30]]
    # largest achievable: Female/Smiling (300) limits the majority, Male/not_Smiling (100) the minority
    out = apply_imbalance(split, ImbalanceConfig(ratio=0.9, balance_target=True), seed=0)
    assert _cell_counts(out) == [[300, 300], [33, 33]] or _cell_counts(out) == [[300, 300], [34, 33]]
    assert len(out) == sum(map(sum, _cell_counts(out)))


def test_balance_target_without_ratio_keeps_group_shares():
    split = _cells_split({(0, 0): 500, (0, 1): 100, (1, 0): 100, (1, 1): 100})
    out = apply_imbalance(split, ImbalanceConfig(balance_target=True), seed=0)
    counts = _cell_counts(out)
    assert counts[0][0] == counts[0][1] and counts[1][0] == counts[1][1]
    assert counts[0][0] / (counts[0][0] + counts[1][0]) == pytest.approx(0.75, abs=0.01)


def test_imbalance_study_ratios_on_a_celeba_sized_pool():
    # CelebA train: Female 94,509 (smiling ~50%), Male 68,261 (smiling ~41%): every study ratio must fit 30,000
    split = _cells_split({(0, 0): 44_000, (0, 1): 50_509, (1, 0): 40_000, (1, 1): 28_261})
    for ratio in (1, .999, .99, .98, .96, .95, .94, .92, .9, .85, .8, .7, .5):
        out = apply_imbalance(split, ImbalanceConfig(ratio=ratio, size=30_000, balance_target=True), seed=0)
        counts = _cell_counts(out)
        assert len(out) == 30_000
        assert counts[0][0] == counts[0][1] and abs(counts[1][0] - counts[1][1]) <= 1
        assert counts[0][0] + counts[0][1] == pytest.approx(ratio * 30_000, abs=1)


def test_balance_target_names_the_missing_cell():
    split = _cells_split({(0, 0): 900, (0, 1): 300, (1, 0): 100, (1, 1): 400})
    with pytest.raises(ConfigError) as err:
        apply_imbalance(split, ImbalanceConfig(ratio=0.5, size=600, balance_target=True), seed=0)
    message = str(err.value)
    assert "'Male' with label 'not_Smiling'" in message and "150" in message and "100" in message


# -- imbalance.splits: the evaluation splits skewed alike -------------------------------------------

def _named(name, cells):
    split = _cells_split(cells)
    split.name = name
    return split


def _three_splits():
    return {"train": _named("train", {(0, 0): 900, (0, 1): 300, (1, 0): 100, (1, 1): 400}),
            "val": _named("val", {(0, 0): 100, (0, 1): 100, (1, 0): 300, (1, 1): 300}),
            "test": _named("test", {(0, 0): 400, (0, 1): 400, (1, 0): 40, (1, 1): 50})}


def test_default_splits_skew_train_only_and_bit_identically():
    from fairrun.data.imbalance import apply_imbalance_to_splits

    splits = _three_splits()
    for split in splits.values():
        split.y = split.y.clone()
    cfg = ImbalanceConfig(ratio=0.9, balance_target=True)
    assert cfg.splits == ["train"]
    out = apply_imbalance_to_splits(splits, cfg, seed=3)
    before = apply_imbalance(splits["train"], cfg, seed=3)  # the training loop's call before imbalance.splits
    assert torch.equal(out["train"].g, before.g) and torch.equal(out["train"].y, before.y)
    assert out["val"] is splits["val"] and out["test"] is splits["test"]


def test_evaluation_splits_get_the_ratio_at_their_largest_size_and_the_training_majority():
    from fairrun.data.imbalance import apply_imbalance_to_splits, evaluation_seed

    splits = _three_splits()
    cfg = ImbalanceConfig(ratio=0.9, size=600, balance_target=True, splits=["train", "val", "test"])
    out = apply_imbalance_to_splits(splits, cfg, seed=0)
    assert _cell_counts(out["train"]) == [[270, 270], [30, 30]]  # size applies to train only
    # val: Female (the training split's majority, although Male is val's largest group) takes 90 %; its 100
    # images per label allow 200 / 0.9 = 222 images in all: 200 Female, 22 Male (11 per label)
    counts = _cell_counts(out["val"])
    assert counts[0][0] + counts[0][1] == 200 and sum(counts[1]) == 22
    assert abs(counts[1][0] - counts[1][1]) <= 1
    assert (counts[0][0] + counts[0][1]) / (len(out["val"])) == pytest.approx(0.9, abs=0.005)
    # test: Male/not_Smiling (40) limits it: 40 * 2 / 0.1 = 800 images, 720 Female
    assert _cell_counts(out["test"]) == [[360, 360], [40, 40]]
    # seeded per split, and not with the training seed
    again = apply_imbalance_to_splits(splits, cfg, seed=0)
    assert all(torch.equal(again[k].g, out[k].g) for k in splits)
    assert evaluation_seed(0, "val") not in (0, evaluation_seed(0, "test"), evaluation_seed(1, "val"))


def test_evaluation_split_rows_are_a_seeded_sample_without_replacement():
    from fairrun.data.imbalance import apply_imbalance_to_splits

    splits = {"train": _split([500, 100]), "val": _split([400, 200]), "test": _split([50, 10])}
    for name, split in splits.items():
        split.name = name
        split.y = torch.arange(len(split))  # identifiable rows
    cfg = ImbalanceConfig(ratio=0.8, splits=["train", "val"])
    a = apply_imbalance_to_splits(splits, cfg, seed=1)
    b = apply_imbalance_to_splits(splits, cfg, seed=2)
    assert len(set(a["val"].y.tolist())) == len(a["val"]) == 500  # 400 / 0.8: all G0, 100 of G1
    assert torch.bincount(a["val"].g).tolist() == [400, 100]
    assert not torch.equal(a["val"].y, b["val"].y)
    assert a["test"] is splits["test"]


def test_small_groups_of_a_skewed_evaluation_split_are_warned_about(caplog):
    from fairrun.data.imbalance import MIN_EVALUATION_ROWS, apply_imbalance_to_splits

    splits = {"train": _split([5000, 1000]), "val": _split([3000, 500]), "test": _split([3000, 3000])}
    for name, split in splits.items():
        split.name = name
    cfg = ImbalanceConfig(ratio=0.99, splits=["train", "val", "test"])
    with caplog.at_level("WARNING"):
        out = apply_imbalance_to_splits(splits, cfg, seed=0)
    assert torch.bincount(out["test"].g).tolist() == [3000, 30]  # 30 rows: no warning
    assert torch.bincount(out["val"].g).tolist() == [3000, 30]
    assert MIN_EVALUATION_ROWS == 30 and not any("fewer than 30" in r.message for r in caplog.records)
    splits["test"] = _split([2900, 3000])
    splits["test"].name = "test"
    with caplog.at_level("WARNING"):
        out = apply_imbalance_to_splits(splits, cfg, seed=0)
    assert torch.bincount(out["test"].g).tolist() == [2900, 29]
    warned = [r.message for r in caplog.records if "fewer than 30" in r.message]
    assert len(warned) == 1 and "test split" in warned[0] and "'G1' 29" in warned[0]


def test_an_evaluation_split_without_the_needed_group_is_a_config_error():
    from fairrun.data.imbalance import apply_imbalance_to_splits

    splits = {"train": _split([500, 100]), "val": _split([400, 0]), "test": _split([5, 5])}
    for name, split in splits.items():
        split.name = name
    with pytest.raises(ConfigError, match=r"imbalance.splits includes val.*Leave val out"):
        apply_imbalance_to_splits(splits, ImbalanceConfig(ratio=0.9, splits=["train", "val"]), seed=0)
    # ratio 1: the minority is dropped, so a split without it is fine
    out = apply_imbalance_to_splits(splits, ImbalanceConfig(ratio=1.0, splits=["train", "val"]), seed=0)
    assert torch.bincount(out["val"].g, minlength=2).tolist() == [400, 0]


@pytest.mark.parametrize("value, shown", [
    ("[train,valid]", "['train', 'valid']"), ("[val,test]", "['val', 'test']"), ("[]", "[]"),
    ("[train,train]", "['train', 'train']")])
def test_bad_splits_name_the_value_and_the_accepted_ones(value, shown):
    from fairrun.config import validate_run_config
    from tests.conftest import compose_train

    with pytest.raises(ConfigError) as err:
        validate_run_config(compose_train([f"imbalance.splits={value}"]))
    message = str(err.value)
    assert f"'imbalance.splits': {shown}" in message and "train, val, test" in message
    assert "includes train" in message


def test_splits_are_hashed_only_when_not_the_default_and_reported_in_results(tmp_path):
    from fairrun.config import validate_run_config
    from fairrun.training.results import run_metadata
    from tests.conftest import compose_train

    base = validate_run_config(compose_train(["imbalance.ratio=0.9"]))
    same = validate_run_config(compose_train(["imbalance.ratio=0.9", "imbalance.splits=[train]"]))
    skewed = validate_run_config(compose_train(["imbalance.ratio=0.9", "imbalance.splits=[test,train,val]"]))
    assert base.fingerprint() == same.fingerprint() != skewed.fingerprint()
    assert run_metadata(base, tmp_path)["imbalance_splits"] == "train"
    assert run_metadata(skewed, tmp_path)["imbalance_splits"] == "train+val+test"
    assert run_metadata(validate_run_config(compose_train([])), tmp_path)["imbalance_splits"] == "none"
    assert run_metadata(base, tmp_path)["arm"] == base.method.name


def test_a_run_config_saved_before_imbalance_splits_loads_with_its_fingerprint(tmp_path):
    import yaml

    from fairrun import rundir
    from fairrun.config import load_run_config, validate_run_config
    from fairrun.core.fingerprint import fingerprint
    from tests.conftest import compose_train

    cfg = validate_run_config(compose_train(["imbalance.ratio=0.9", "imbalance.balance_target=true"]))
    data = cfg.to_dict()
    del data["imbalance"]["splits"]
    rundir.write_text(yaml.safe_dump(data), tmp_path / rundir.RUN_CONFIG)
    saved = load_run_config(tmp_path / rundir.RUN_CONFIG)
    assert saved.imbalance.splits == ["train"] and saved.fingerprint() == cfg.fingerprint()
    # the hash is that of the config without the key, as an earlier fairrun computed it
    before = cfg.to_dict()
    for key in ("resume", "eval_datasets", "arm", "init_from"):
        before.pop(key)
    before["gpu"].pop("num_workers"), before["gpu"].pop("data_on_device")
    before["imbalance"].pop("splits")
    for section, key in (("trainer", "select"), ("trainer", "patience")):
        before[section].pop(key)
    assert cfg.trainer.precise_bn != 0 and cfg.fingerprint() == fingerprint(before)


def test_fairrun_eval_scores_the_evaluation_splits_as_the_run_skewed_them(tmp_path, tiny_cfg):
    """A run trained with imbalance.splits=[train,test] is re-evaluated on the same skewed test split (same rows,
    same metrics as at training time), and on the natural val split."""
    from hydra import compose, initialize_config_module

    from fairrun.evaluation.rerun import run_eval
    from fairrun.training import run_training

    cfg = tiny_cfg("imbalance.ratio=0.8", "imbalance.splits=[train,test]", "trainer.epochs=1", "eval.bootstrap=0",
                   "dataset.group_proportions=[0.5,0.5]")
    trained = run_training(cfg, tmp_path).set_index("split")
    assert trained.loc["test", "n"] < 300 and trained.loc["val", "n"] == 200  # test skewed, val natural (TINY)
    with initialize_config_module(config_module="fairrun.conf", version_base="1.3"):
        eval_cfg = compose(config_name="eval", overrides=[f"run_dir={tmp_path}", "gpu=cpu"])
    again = run_eval(tmp_path, eval_cfg).set_index("split")
    for column in ("n", "n[A]", "n[B]", "accuracy", "acc_gap"):
        assert again.loc["test", column] == trained.loc["test", column], column
        assert again.loc["val", column] == trained.loc["val", column], column
