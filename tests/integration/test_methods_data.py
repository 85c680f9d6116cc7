"""Data-side methods: reweighting (per-sample loss weights) and resampling (a sampler or a subset)."""
import dataclasses

import pytest
import torch

from fairrun.config import validate_run_config
from fairrun.data.base import LabeledSplit
from fairrun.data.batches import epoch_order
from fairrun.core.errors import ConfigError
from fairrun.methods import build_method
from fairrun.methods.resample import ResampleConfig
from fairrun.methods.reweight import ReweightConfig
from tests.conftest import compose_train


def hand_split(cells: dict, group_names=("A", "B"), class_names=("no", "yes")) -> LabeledSplit:
    """A split with ``cells[(g, y)]`` rows per cell; image i is filled with the value i (to trace rows)."""
    g = torch.tensor([k for (k, c), n in cells.items() for _ in range(n)])
    y = torch.tensor([c for (k, c), n in cells.items() for _ in range(n)])
    images = torch.arange(len(g), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    return LabeledSplit("train", images, y, g, list(group_names), list(class_names))


# A has 4 "no" + 2 "yes", B has 1 "no" + 3 "yes": N = 10, P(A) = .6, P(B) = .4, P(no) = P(yes) = .5.
CELLS = {(0, 0): 4, (0, 1): 2, (1, 0): 1, (1, 1): 3}


def prepared(method_cfg, split):
    method = build_method(method_cfg, num_classes=split.num_classes, num_groups=split.num_groups)
    return method, method.prepare(split)


def weight_of(split, g, y):
    rows = (split.g == g) & (split.y == y)
    return split.weights[rows].unique().tolist()


# -- reweight ------------------------------------------------------------------------------------

def test_reweigh_group_label_is_kamiran_calders():
    split = hand_split(CELLS)
    method, out = prepared(ReweightConfig(scheme="group_label"), split)
    expected = {(0, 0): .6 * .5 / .4, (0, 1): .6 * .5 / .2, (1, 0): .4 * .5 / .1, (1, 1): .4 * .5 / .3}
    for (g, y), w in expected.items():
        assert weight_of(out, g, y) == pytest.approx([w])
    assert out.weights.dtype == torch.float32 and out.weights.sum().item() == pytest.approx(len(split))
    # under the weights, group and label are independent: P_w(g, y) = P(g) P(y)
    for (g, y) in CELLS:
        joint = out.weights[(out.g == g) & (out.y == y)].sum() / out.weights.sum()
        assert joint.item() == pytest.approx((.6 if g == 0 else .4) * .5)
    assert split.weights is None and out.images is split.images  # no data copied, input untouched
    assert method.table.loc["B", "no"] == pytest.approx(2.0)  # the logged table


def test_reweigh_group_and_label_schemes():
    split = hand_split(CELLS)
    _, by_group = prepared(ReweightConfig(scheme="group"), split)
    assert weight_of(by_group, 0, 0) == weight_of(by_group, 0, 1) == pytest.approx([10 / (2 * 6)])
    assert weight_of(by_group, 1, 1) == pytest.approx([10 / (2 * 4)])
    assert by_group.weights.mean().item() == pytest.approx(1.0)
    total_a, total_b = (by_group.weights[by_group.g == k].sum().item() for k in (0, 1))
    assert total_a == pytest.approx(total_b)
    skewed = hand_split({(0, 0): 6, (0, 1): 1, (1, 0): 2, (1, 1): 1})
    _, by_label = prepared(ReweightConfig(scheme="label"), skewed)
    assert weight_of(by_label, 0, 0) == pytest.approx([10 / (2 * 8)])
    assert weight_of(by_label, 1, 1) == pytest.approx([10 / (2 * 2)])
    assert by_label.weights.mean().item() == pytest.approx(1.0)


@pytest.mark.parametrize("scheme", ["group_label", "group", "label"])
def test_reweigh_empty_cells_and_groups_give_no_nan(scheme):
    # B has no "no" rows and group C has no rows at all
    split = hand_split({(0, 0): 3, (0, 1): 2, (1, 1): 4}, group_names=("A", "B", "C"))
    method, out = prepared(ReweightConfig(scheme=scheme), split)
    assert torch.isfinite(out.weights).all() and (out.weights > 0).all()
    assert not method.table.isna().any().any()
    assert method.table.loc["C"].eq(0).all() and method.table.loc["B", "no"] == 0


# -- resample ------------------------------------------------------------------------------------

@pytest.mark.parametrize("by,cells", [("group", 2), ("group_label", 4)])
def test_oversampling_is_a_sampler_giving_every_cell_equal_probability(by, cells):
    split = hand_split(CELLS)
    _, out = prepared(ResampleConfig(mode="over", by=by), split)
    assert out.images is split.images and len(out) == len(split) and out.weights is None
    probs = out.sample_probs
    assert probs.sum().item() == pytest.approx(1.0)
    cell = out.g if by == "group" else out.g * 2 + out.y
    mass = torch.zeros(cells, dtype=probs.dtype).index_add(0, cell, probs)
    assert mass.tolist() == pytest.approx([1 / cells] * cells)
    # what the training loop draws: len(train) rows per epoch, with replacement, cells balanced
    drawn = torch.cat([cell[epoch_order(out, seed=0, epoch=e)] for e in range(400)])
    assert len(epoch_order(out, seed=0, epoch=0)) == len(split)
    freq = torch.bincount(drawn, minlength=cells).double() / len(drawn)
    assert freq.tolist() == pytest.approx([1 / cells] * cells, abs=0.02)


@pytest.mark.parametrize("by,per_cell", [("group", 4), ("group_label", 1)])
def test_undersampling_keeps_min_cell_size_rows_per_cell(by, per_cell):
    split = hand_split(CELLS)  # groups: 6 and 4 rows; cells: 4, 2, 1, 3
    _, out = prepared(ResampleConfig(mode="under", by=by, seed=3), split)
    counts = out.counts()
    if by == "group":
        assert counts.sum(axis=1).tolist() == [per_cell, per_cell]
    else:
        assert counts.to_numpy().flatten().tolist() == [per_cell] * 4
    kept = out.images[:, 0, 0, 0].long()  # image value = original row index
    assert len(kept.unique()) == len(kept)  # without replacement
    assert torch.equal(split.g[kept], out.g) and torch.equal(split.y[kept], out.y)
    assert out.sample_probs is None and out.weights is None
    _, again = prepared(ResampleConfig(mode="under", by=by, seed=3), split)
    assert torch.equal(again.images, out.images)  # seeded: same rows


def test_undersampling_seed_changes_the_rows_and_empty_cells_are_skipped():
    split = hand_split({(0, 0): 30, (0, 1): 20, (1, 1): 5}, group_names=("A", "B", "C"))
    subsets = {tuple(prepared(ResampleConfig(mode="under", by="group_label", seed=s), split)[1]
                     .images[:, 0, 0, 0].tolist()) for s in range(4)}
    assert len(subsets) > 1
    _, out = prepared(ResampleConfig(mode="under", by="group_label", seed=0), split)
    assert out.counts().to_numpy().flatten().tolist() == [5, 5, 0, 5, 0, 0]
    _, over = prepared(ResampleConfig(mode="over", by="group_label"), split)
    assert torch.isfinite(over.sample_probs).all() and over.sample_probs.sum().item() == pytest.approx(1.0)


# -- configuration -------------------------------------------------------------------------------

@pytest.mark.parametrize("override,message", [
    ("method.scheme=inverse",
     "Invalid value for 'method.scheme': 'inverse'. Accepted: one of group_label, group, label."),
    ("method.mode=both", "Invalid value for 'method.mode': 'both'. Accepted: one of over, under."),
    ("method.by=label", "Invalid value for 'method.by': 'label'. Accepted: one of group, group_label."),
    ("method.seed=-1", "Invalid value for 'method.seed': -1. Accepted: an integer >= 0."),
    ("+method.eta=0.1", "Unknown key 'method.eta'"),
])
def test_bad_data_method_config_is_a_clear_error(override, message):
    method = "method=reweight" if "scheme" in override or "eta" in override else "method=resample"
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        validate_run_config(compose_train([method, override]))


def test_yaml_defaults():
    cfg = validate_run_config(compose_train(["method=reweight"]))
    assert dataclasses.asdict(cfg.method) == {"name": "reweight", "scheme": "group_label"}
    cfg = validate_run_config(compose_train(["method=resample"]))
    assert dataclasses.asdict(cfg.method) == {"name": "resample", "mode": "over", "by": "group", "seed": 0}


REWEIGHT = ["method=reweight", "method.scheme=group_label"]


OVERSAMPLE = ["method=resample", "method.mode=over", "method.by=group_label"]
