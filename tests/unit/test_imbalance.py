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
