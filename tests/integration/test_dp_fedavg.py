"""method=dp_fedavg: partitions, one round by hand, clipping and noise, user-level ε (Opacus), target ε,
resume, config errors, and that private and plain federated training learn."""
import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from opacus.accountants import RDPAccountant
from torch import nn

from fairrun.config import validate_run_config
from fairrun.data.base import LabeledSplit
from fairrun.data.batches import Augmentation
from fairrun.core.errors import ConfigError
from fairrun.methods import build_method
from fairrun.methods.base import StepResult, TrainingPlan
from fairrun.methods.dp_fedavg import DPFedAvgConfig
from fairrun.methods.fedavg_clients import clients_per_group, make_partition
from fairrun.models.classifier import Classifier
from fairrun.methods.privacy import noise_for_epsilon
from fairrun.training import Trainer, run_training
from tests.conftest import TINY, compose_train
from tests.helpers.resume import assert_same_results, resume_after_interrupt

# Tiny synthetic runs that learn in a few seconds on one core: glasses (a large feature) is the target,
# both groups equally frequent; 600 rows in 30 clients of 20, half of them per round, 2 local epochs.
LEARNS = ["dataset.target=glasses", "dataset.group_proportions=[0.5,0.5]", "trainer.batch_size=10",
          "method=dp_fedavg", "method.num_clients=30", "method.client_rate=0.5", "method.rounds=20",
          "method.client_lr=0.1", "method.local_epochs=2"]
PRIVATE = ["method.noise_multiplier=0.3", "method.clip=0.5"]


def run(tmp_path: Path, name: str, *overrides: str) -> pd.DataFrame:
    return run_training(validate_run_config(compose_train([*TINY, *LEARNS, *overrides])), tmp_path / name)


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """One private and one plain federated run (shared by the tests that read their results)."""
    root = tmp_path_factory.mktemp("dp_fedavg")
    return {"private": (run(root, "private", *PRIVATE), root / "private"),
            "plain": (run(root, "plain", "method.private=false"), root / "plain")}


# -- end to end ----------------------------------------------------------------------------------

def test_private_and_plain_fedavg_learn_and_report_privacy(learned):
    # measured test accuracy: private 0.777, plain 0.777 (chance 0.5)
    for mode, (results, _) in learned.items():
        test = results.set_index("split").loc["test"]
        assert test["accuracy"] > 0.68, (mode, test["accuracy"])
        assert test["fl_num_clients"] == 30 and test["fl_partition"] == "iid" and test["fl_rounds"] == 20
        assert test["fl_local_epochs"] == 2 and test["dp_sample_rate"] == 0.5
        # ε and the step count cover every round trained, whichever epoch's checkpoint is kept
        assert test["dp_steps"] == 20
    private = learned["private"][0].iloc[0]
    assert math.isfinite(private["epsilon"]) and private["epsilon"] > 0 and bool(private["fl_private"])
    assert (private["noise_multiplier"], private["max_grad_norm"]) == (0.3, 0.5)
    assert private["dp_accountant"] == "rdp"
    plain = learned["plain"][0].iloc[0]
    assert all(math.isnan(plain[k]) for k in ("epsilon", "delta", "noise_multiplier", "max_grad_norm"))
    assert plain["dp_accountant"] is None and not plain["fl_private"]


def test_epsilon_is_opacus_rdp_of_the_sampled_gaussian_mechanism_per_round(learned):
    row = learned["private"][0].iloc[0]
    assert row["delta"] == 0.01  # the default: largest power of ten below 1 / num_clients (30 clients)
    accountant = RDPAccountant()
    accountant.history = [(0.3, 0.5, int(row["dp_steps"]))]
    assert row["epsilon"] == pytest.approx(accountant.get_epsilon(delta=0.01), rel=1e-9)


def test_epsilon_covers_every_round_when_an_earlier_epoch_is_kept(tmp_path, monkeypatch):
    """The released checkpoint is chosen after all rounds were run, so ε counts all of them."""
    real = Trainer.validate

    def first_epoch_best(self, writer):
        accuracy, worst = real(self, writer)
        return 1.0 - 0.01 * self.state.epoch, worst

    monkeypatch.setattr(Trainer, "validate", first_epoch_best)
    row = run(tmp_path, "early", *PRIVATE).set_index("split").loc["test"]
    assert row["best_epoch"] == 1 and row["dp_steps"] == 20
    fresh = RDPAccountant()
    fresh.history = [(0.3, 0.5, 20)]
    assert row["epsilon"] == pytest.approx(fresh.get_epsilon(delta=0.01), rel=1e-9)
    saved = torch.load(tmp_path / "early" / "checkpoints" / "best.pt", weights_only=True)
    assert saved["method"]["rounds_done"] == 20


def test_batchnorm_is_replaced_by_groupnorm_in_both_modes(learned):
    for _, run_dir in learned.values():
        lines = (run_dir / "architecture.txt").read_text().splitlines()
        architecture = "\n".join(line for line in lines if not line.startswith("#"))
        assert "GroupNorm" in architecture and "BatchNorm" not in architecture
        assert any("BatchNorm layer(s) replaced by GroupNorm" in line for line in lines)  # the note


def test_target_epsilon_is_met(tmp_path):
    results = run(tmp_path, "target", "method.noise_multiplier=null", "method.target_epsilon=4",
                  "method.rounds=8", "method.rounds_per_epoch=8", "method.clip=0.5", "method.delta=1e-3")
    row = results.iloc[0]
    assert row["dp_steps"] == 8
    assert 0.9 * 4 <= row["epsilon"] <= 4
    assert row["noise_multiplier"] == pytest.approx(noise_for_epsilon(4, 1e-3, 0.5, 8, "rdp"))


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, monkeypatch):
    cfg = validate_run_config(compose_train([
        *TINY, *LEARNS, *PRIVATE, "method.rounds=6", "method.rounds_per_epoch=3", "method.num_clients=12",
        "method.server_momentum=0.9", "method.partition=dirichlet", "method.local_epochs=1"]))
    full = run_training(cfg, tmp_path / "full")
    resumed = resume_after_interrupt(cfg, tmp_path / "cut", monkeypatch, 4)  # in the middle of epoch 2
    assert_same_results(full, resumed)


# -- one round by hand ------------------------------------------------------------------------------

def square_split(n=10, groups=None, labels=None) -> LabeledSplit:
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 1, 2, 2), dtype=torch.uint8, generator=gen)
    y = torch.tensor(labels) if labels is not None else torch.arange(n) % 2
    g = torch.tensor(groups) if groups is not None else (torch.arange(n) // 5).clamp(max=1)
    return LabeledSplit("train", images, y, g, ["A", "B"], ["no", "yes"])


def wrapped(split, batch_size=16, **keys):
    cfg = DPFedAvgConfig(**{"num_clients": 1, "client_rate": 1.0, "rounds": 1, "rounds_per_epoch": 1,
                            "client_lr": 0.3, **keys})
    cfg.validate()
    method = build_method(cfg, num_classes=2, num_groups=2)
    torch.manual_seed(0)
    model = method.adapt_model(Classifier(nn.Flatten(), 4, 2))
    plan = TrainingPlan(train=split, batch_size=batch_size, epochs=1, lr=1.0, seed=0,
                        device=torch.device("cpu"), augmentation=Augmentation())
    model, server = method.wrap(model, None, plan)
    return method, model, plan


def test_one_client_one_step_plain_fedavg_is_one_sgd_step():
    split = square_split()
    method, model, plan = wrapped(split, private=False, server_lr=1.0, server_momentum=0.0)
    reference = copy.deepcopy(model)
    x = split.images.float().div(127.5).sub(1.0)
    loss = F.cross_entropy(reference(x), split.y)
    loss.backward()
    with torch.no_grad():
        expected = [p - 0.3 * p.grad for p in reference.parameters()]
    steps = list(method.epoch_batches(plan, 0, 0))
    assert len(steps) == 1 and isinstance(steps[0], StepResult) and steps[0].seen == 10
    assert steps[0].loss == pytest.approx(loss.item(), rel=1e-5)
    for p, e in zip(model.parameters(), expected):
        assert torch.allclose(p, e, atol=1e-6)
    assert method.rounds_done == 1 and method.extra_results()["dp_steps"] == 1


def test_private_update_is_clipped_and_a_round_with_nobody_still_adds_noise():
    split = square_split()
    method, model, plan = wrapped(split, clip=1e-3, noise_multiplier=0.0, client_lr=1.0)
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    list(method.epoch_batches(plan, 0, 0))
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm().item() == pytest.approx(1e-3, rel=1e-4)  # ||Δ|| >> S: clipped to S
    # 40 clients at q = 0.02: round 0 samples none for seed 0, yet noise N(0, (σ S / (q W))²) is added
    method, model, plan = wrapped(square_split(), num_clients=40, client_rate=0.02, clip=0.5,
                                  noise_multiplier=2.0)
    assert len(method.sampled_clients(0)) == 0
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    step = next(iter(method.epoch_batches(plan, 0, 0)))
    change = torch.cat([p.detach().flatten() for p in model.parameters()]) - before
    std = 2.0 * 0.5 / (0.02 * 40)
    assert step.seen == 0 and change.std().item() == pytest.approx(std, rel=0.6)
    assert method.accountant.history == [(2.0, 0.02, 1)]


def test_client_sampling_is_poisson_at_rate_q_and_seeded_per_round():
    method, _, _ = wrapped(square_split(), num_clients=1000, client_rate=0.1, rounds=3)
    counts = [len(method.sampled_clients(t)) for t in range(3)]
    assert all(60 < c < 140 for c in counts)  # Binomial(1000, 0.1): sd 9.5
    assert np.array_equal(method.sampled_clients(2), method.sampled_clients(2))
    assert not np.array_equal(method.sampled_clients(1), method.sampled_clients(2))


# -- partitions -------------------------------------------------------------------------------------

def partition(n, partition, seed=0, num_clients=10, y=None, g=None, **keys):
    y = torch.as_tensor(y) if y is not None else torch.arange(n) % 2
    g = torch.as_tensor(g) if g is not None else torch.zeros(n, dtype=torch.long)
    cfg = DPFedAvgConfig(num_clients=num_clients, partition=partition, **keys)
    return make_partition(y, g, int(y.max()) + 1, int(g.max()) + 1, cfg, seed)


def covers_once(clients, n):
    rows = torch.cat(clients).sort().values
    return torch.equal(rows, torch.arange(n))


def test_iid_partition_sizes_differ_by_at_most_one():
    clients = partition(103, "iid")
    sizes = [len(c) for c in clients]
    assert len(clients) == 10 and max(sizes) - min(sizes) <= 1 and covers_once(clients, 103)
    assert not all(torch.equal(a, b) for a, b in zip(clients, partition(103, "iid", seed=1)))


def test_group_partition_gives_single_group_clients_in_proportion():
    g = [0] * 90 + [1] * 8 + [2] * 2
    clients = partition(100, "group", g=g)
    groups = [set(torch.as_tensor(g)[c].tolist()) for c in clients]
    assert all(len(s) == 1 for s in groups) and covers_once(clients, 100)
    assert [sum(s == {k} for s in groups) for k in range(3)] == [8, 1, 1]  # at least one per group
    assert clients_per_group(np.array([60, 0, 40]), 5).tolist() == [3, 0, 2]  # empty groups get none
    with pytest.raises(ConfigError, match="method.num_clients"):
        partition(100, "group", g=g, num_clients=2)


def label_skew(clients, y):
    """Mean total-variation distance between each client's label mix and the overall one (size-weighted)."""
    y = torch.as_tensor(y)
    overall = torch.bincount(y).double() / len(y)
    tv = [(torch.bincount(y[c], minlength=len(overall)).double() / len(c) - overall).abs().sum() / 2 * len(c)
          for c in clients if len(c)]
    return float(sum(tv) / len(y))


def test_dirichlet_partition_is_reproducible_and_skewed_by_small_alpha():
    y = torch.arange(2000) % 4
    a = partition(2000, "dirichlet", y=y, num_clients=20, alpha=0.1)
    b = partition(2000, "dirichlet", y=y, num_clients=20, alpha=0.1)
    assert all(torch.equal(p, q) for p, q in zip(a, b)) and covers_once(a, 2000)
    c = partition(2000, "dirichlet", y=y, num_clients=20, alpha=0.1, seed=1)
    assert not all(torch.equal(p, q) for p, q in zip(a, c))
    flat = partition(2000, "dirichlet", y=y, num_clients=20, alpha=100.0)
    assert label_skew(a, y) > 0.4 > 0.1 > label_skew(flat, y)
    # over groups: the clients' group mixes are skewed instead
    g = torch.arange(2000) % 2
    by_group = partition(2000, "dirichlet", y=y, g=g, num_clients=20, alpha=0.1, dirichlet_over="group")
    assert label_skew(by_group, g) > 0.2 and covers_once(by_group, 2000)


# -- configuration errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, key, accepted", [
    (["method.noise_multiplier=1", "method.target_epsilon=3"], "method.noise_multiplier", "method.target_epsilon"),
    (["method.clip=0"], "method.clip", "> 0"),
    (["method.clip=-1"], "method.clip", "> 0"),
    (["method.client_rate=0"], "method.client_rate", "(0, 1]"),
    (["method.client_rate=1.5"], "method.client_rate", "(0, 1]"),
    (["method.partition=shards"], "method.partition", "iid, group, dirichlet"),
    (["method.alpha=0"], "method.alpha", "> 0"),
    (["method.server_momentum=1"], "method.server_momentum", "[0, 1)"),
    (["method.rounds=0"], "method.rounds", ">= 1"),
])
def test_bad_values_name_the_key(overrides, key, accepted):
    with pytest.raises(ConfigError) as err:
        validate_run_config(compose_train(["method=dp_fedavg", *overrides]))
    assert key in str(err.value) and accepted in str(err.value), str(err.value)


def test_too_few_clients_for_the_groups_is_a_config_error(tmp_path):
    cfg = validate_run_config(compose_train([*TINY, "method=dp_fedavg", "method.partition=group",
                                             "method.num_clients=2", "dataset.num_groups=3"]))
    with pytest.raises(ConfigError, match=r"'method.num_clients': 2\..*>= 3"):
        run_training(cfg, tmp_path / "r")


def test_yaml_defaults_match_the_config_dataclass():
    assert validate_run_config(compose_train(["method=dp_fedavg"])).method == DPFedAvgConfig()
    # plain mode ignores the privacy keys
    validate_run_config(compose_train(["method=dp_fedavg", "method.private=false",
                                       "method.target_epsilon=3"]))
