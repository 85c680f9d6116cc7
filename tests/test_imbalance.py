"""Imbalance sampling of the training split."""
import pytest
import torch

from fairrun.config import ImbalanceConfig
from fairrun.data.base import LabeledSplit
from fairrun.data.imbalance import apply_imbalance
from fairrun.errors import ConfigError


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
