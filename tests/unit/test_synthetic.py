import dataclasses

import numpy as np
import pytest
import torch

from fairrun.data.synthetic import SplitData, SyntheticConfig, make_synthetic, validate_synthetic

SMALL = dict(n_train=60, n_val=30, n_test=40, image_size=16)


def test_splits_shapes_dtypes_and_columns():
    data = make_synthetic(SyntheticConfig(**SMALL))
    assert set(data) == {"train", "val", "test"}
    for name, n in [("train", 60), ("val", 30), ("test", 40)]:
        split = data[name]
        assert isinstance(split, SplitData)
        assert split.images.dtype == torch.uint8 and split.images.shape == (n, 3, 16, 16)
        assert list(split.attributes.columns) == ["smiling", "group", "glasses"]
        assert all(dtype == np.int64 for dtype in split.attributes.dtypes)
        assert len(split.attributes) == n
        assert split.attribute_values == {
            "smiling": ["not_smiling", "smiling"],
            "group": ["A", "B"],
            "glasses": ["no_glasses", "glasses"],
        }
        for column, names in split.attribute_values.items():
            assert split.attributes[column].between(0, len(names) - 1).all()
        assert split.images.float().std() > 20  # not blank


@pytest.mark.parametrize("size", [16, 45, 128])
def test_image_sizes(size):
    data = make_synthetic(SyntheticConfig(n_train=3, n_val=2, n_test=2, image_size=size, num_groups=4))
    assert data["train"].images.shape == (3, 3, size, size)
    assert data["test"].attribute_values["group"] == ["A", "B", "C", "D"]


def test_deterministic_and_seeded_per_split():
    cfg = SyntheticConfig(**SMALL)
    first, again = make_synthetic(cfg), make_synthetic(cfg)
    other_seed = make_synthetic(dataclasses.replace(cfg, seed=1))
    bigger_train = make_synthetic(dataclasses.replace(cfg, n_train=100))
    for name in ("train", "val", "test"):
        assert torch.equal(first[name].images, again[name].images)
        assert first[name].attributes.equals(again[name].attributes)
        assert not torch.equal(first[name].images, other_seed[name].images)
    for name in ("val", "test"):
        assert torch.equal(first[name].images, bigger_train[name].images)


def test_group_proportions_in_train_and_balanced_eval_splits():
    cfg = SyntheticConfig(n_train=1000, n_val=999, n_test=600, image_size=16, num_groups=3,
                          group_proportions=[0.7, 0.2, 0.1])
    data = make_synthetic(cfg)
    assert data["train"].attributes.group.value_counts().sort_index().tolist() == [700, 200, 100]
    assert data["val"].attributes.group.value_counts().sort_index().tolist() == [333, 333, 333]
    assert data["test"].attributes.group.value_counts().sort_index().tolist() == [200, 200, 200]
    for split in data.values():
        by_group = split.attributes.groupby("group")
        assert np.allclose(by_group.smiling.mean(), 0.5, atol=0.01)
        assert np.allclose(by_group.glasses.mean(), 0.5, atol=0.12)


def test_default_group_proportions():
    two = make_synthetic(SyntheticConfig(n_train=1000, n_val=10, n_test=10, image_size=16))
    assert two["train"].attributes.group.value_counts().sort_index().tolist() == [950, 50]
    three = make_synthetic(SyntheticConfig(n_train=1000, n_val=9, n_test=9, image_size=16, num_groups=3))
    assert three["train"].attributes.group.value_counts().sort_index().tolist() == [950, 25, 25]


@pytest.mark.parametrize("corr", [-0.3, 0.3, 0.6])
def test_label_group_corr_realised_in_train_only(corr):
    cfg = SyntheticConfig(n_train=4000, n_val=1000, n_test=1000, image_size=16,
                          group_proportions=[0.6, 0.4], label_group_corr=corr)
    data = make_synthetic(cfg)

    def realised(split):
        a = split.attributes
        return np.corrcoef(a.smiling, a.group == 0)[0, 1]

    assert realised(data["train"]) == pytest.approx(corr, abs=0.01)
    assert data["train"].attributes.smiling.mean() == pytest.approx(0.5, abs=0.01)
    assert realised(data["val"]) == pytest.approx(0, abs=0.01)
    assert realised(data["test"]) == pytest.approx(0, abs=0.01)


@pytest.mark.parametrize(
    "changes, key",
    [
        (dict(n_train=0), "n_train"),
        (dict(n_test=2.5), "n_test"),
        (dict(image_size=8), "image_size"),
        (dict(image_size=129), "image_size"),
        (dict(num_groups=0), "num_groups"),
        (dict(group_proportions=[0.5, 0.3, 0.2]), "group_proportions"),
        (dict(group_proportions=[0.6, 0.6]), "group_proportions"),
        (dict(group_proportions=[1.0, 0.0]), "group_proportions"),
        (dict(group_proportions=0.9), "group_proportions"),
        (dict(label_group_corr=1.5), "label_group_corr"),
        (dict(label_group_corr=0.5), "label_group_corr"),  # > 1/3, the limit for a 0.9 share
        (dict(noise=-0.1), "noise"),
        (dict(seed=-1), "seed"),
    ],
)
def test_validation_errors_name_the_key(changes, key):
    cfg = dataclasses.replace(SyntheticConfig(), **changes)
    with pytest.raises(ValueError, match=f"dataset.{key}="):
        validate_synthetic(cfg)
    with pytest.raises(ValueError, match=f"dataset.{key}="):
        make_synthetic(cfg)


def test_unachievable_correlation_message_gives_the_limit():
    with pytest.raises(ValueError, match=r"not achievable .* \[-0\.229, 0\.229\]"):
        validate_synthetic(SyntheticConfig(label_group_corr=0.4))  # default train share 0.95
    validate_synthetic(SyntheticConfig(label_group_corr=(0.05 / 0.95) ** 0.5))
    with pytest.raises(ValueError, match=r"not achievable .* \[-0\.333, 0\.333\]"):
        validate_synthetic(SyntheticConfig(group_proportions=[0.9, 0.1], label_group_corr=0.4))
