"""dp_fedavg with method.partition=identity: one client per person (CelebA's identity_CelebA.txt), W = the
number of distinct people in the (imbalance-sampled) training set, and the user-level accounting using it."""
import dataclasses
import logging
import math

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from torch import nn

from fairrun.config import validate_run_config
from fairrun.core.errors import ConfigError
from fairrun.data.batches import Augmentation
from fairrun.data.celeba import IdentifiedSplit, with_identity
from fairrun.data.groups import label_split
from fairrun.data.imbalance import apply_imbalance
from fairrun.data.registry import read_splits
from fairrun.methods import build_method
from fairrun.methods.base import TrainingPlan
from fairrun.methods.dp_fedavg import DPFedAvgConfig
from fairrun.methods.fedavg_clients import make_partition
from fairrun.models.classifier import Classifier
from fairrun.training import run_training
from tests.conftest import TINY_CNN, compose_train
from tests.helpers.fixtures_celeba import make_celeba

PEOPLE = [7, 3, 7, 9, 3, 3, 12, 7, 9, 40, 3, 12]  # 12 rows of 5 people (codes, not numbers)


def people_split(identity=PEOPLE) -> IdentifiedSplit:
    n = len(identity)
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (n, 1, 2, 2), dtype=torch.uint8, generator=generator)
    return IdentifiedSplit("train", images, torch.arange(n) % 2, (torch.arange(n) // 6).clamp(max=1),
                           ["A", "B"], ["no", "yes"], identity=torch.tensor(identity))


def wrapped(split, **keys):
    cfg = DPFedAvgConfig(**{"num_clients": None, "partition": "identity", "client_rate": 0.5, "rounds": 3,
                            "rounds_per_epoch": 3, "client_lr": 0.3, "noise_multiplier": 1.3, **keys})
    cfg.validate()
    method = build_method(cfg, num_classes=2, num_groups=2)
    model = method.adapt_model(Classifier(nn.Flatten(), 4, 2))
    plan = TrainingPlan(train=split, batch_size=4, epochs=1, lr=1.0, seed=0, device=torch.device("cpu"),
                        augmentation=Augmentation())
    model, _ = method.wrap(model, None, plan)
    return method, model, plan


def test_one_client_per_person_holding_exactly_their_rows():
    split = people_split()
    cfg = DPFedAvgConfig(num_clients=None, partition="identity")
    clients = make_partition(split.y, split.g, 2, 2, cfg, 0, identity=split.identity)
    expected = {person: [i for i, p in enumerate(PEOPLE) if p == person] for person in sorted(set(PEOPLE))}
    assert [c.tolist() for c in clients] == list(expected.values())  # people in code order, rows in order
    seeded = make_partition(split.y, split.g, 2, 2, cfg, 5, identity=split.identity)
    assert all(torch.equal(a, b) for a, b in zip(clients, seeded))  # nothing random


def test_rows_without_a_person_or_a_split_without_identities_are_config_errors():
    cfg = DPFedAvgConfig(num_clients=None, partition="identity")
    split = people_split([3, -1, 3, 4, -1, 4, 4, 4, 4, 4, 4, 4])
    with pytest.raises(ConfigError, match="2 training rows have no identity"):
        make_partition(split.y, split.g, 2, 2, cfg, 0, identity=split.identity)
    with pytest.raises(ConfigError, match="Datasets with identities: celeba"):
        make_partition(split.y, split.g, 2, 2, cfg, 0)


def test_w_is_the_number_of_people_in_sampling_noise_delta_and_results():
    method, model, plan = wrapped(people_split())
    assert method.num_clients == 5 and len(method.clients) == 5
    assert method.delta == 0.1  # the largest power of ten below 1/5, as method.delta=null promises
    # Poisson sampling draws one uniform per person per round
    rng = np.random.default_rng([0, 0xFED1, 1])
    assert method.sampled_clients(1).tolist() == [k for k, u in enumerate(rng.random(5)) if u < 0.5]
    # the noise std on the averaged update is σ S / (q W), W = 5: a round with a zero update shows it
    list(method.epoch_batches(plan, 0, 0))
    results = method.extra_results()
    accountant = RDPAccountant()
    for _ in range(3):
        accountant.step(noise_multiplier=1.3, sample_rate=0.5)
    assert results["fl_num_clients"] == 5 and results["dp_steps"] == 3 and results["delta"] == 0.1
    assert results["epsilon"] == pytest.approx(accountant.get_epsilon(delta=0.1), rel=1e-9)
    assert results["fl_partition"] == "identity"


def test_noise_is_scaled_by_the_number_of_people():
    split = people_split()
    method, model, plan = wrapped(split, client_rate=0.01, noise_multiplier=2.0, clip=0.5, rounds=1,
                                  rounds_per_epoch=1)
    assert len(method.sampled_clients(0)) == 0  # nobody sampled: the update is the noise alone
    before = torch.cat([p.detach().flatten() for p in model.parameters()])
    list(method.epoch_batches(plan, 0, 0))
    change = torch.cat([p.detach().flatten() for p in model.parameters()]) - before
    expected = 2.0 * 0.5 / (0.01 * 5)  # σ S / (q W)
    assert change.std().item() == pytest.approx(expected, rel=0.6)
    assert change.std().item() > 2.0 * 0.5 / (0.01 * 12) * 1.5  # not scaled by the 12 rows


@pytest.mark.parametrize("overrides, accepted", [
    (["method.partition=identity"], "null with method.partition=identity"),
    (["method.partition=identity", "method.num_clients=50"], "null with method.partition=identity"),
    (["method.num_clients=null"], "an integer >= 1 (null only with method.partition=identity)"),
])
def test_num_clients_must_be_null_exactly_with_identity(overrides, accepted):
    with pytest.raises(ConfigError) as err:
        validate_run_config(compose_train(["method=dp_fedavg", *overrides]))
    assert "'method.num_clients'" in str(err.value) and accepted in str(err.value)
    cfg = validate_run_config(compose_train(["method=dp_fedavg", "method.partition=identity",
                                             "method.num_clients=null"]))
    assert cfg.method.num_clients is None


def test_datasets_without_identities_are_refused_before_training(tmp_path):
    cfg = validate_run_config(compose_train(["dataset=synthetic", "dataset.n_train=40", "dataset.n_val=20",
                                             "dataset.n_test=20", "gpu=cpu", "method=dp_fedavg",
                                             "method.partition=identity", "method.num_clients=null"]))
    with pytest.raises(ConfigError) as err:
        run_training(cfg, tmp_path / "run")
    message = str(err.value)
    assert "dataset=synthetic has no identities" in message and "Datasets with identities: celeba" in message
    assert "identity_CelebA.txt beside list_attr_celeba.txt" in message


def test_celeba_run_with_people_as_clients_and_skewed_evaluation_splits(tmp_path, monkeypatch, caplog):
    """End to end on a CelebA of 60 images in the official file formats: 36 training images of 12 people,
    imbalance.ratio=0.8 on train, val and test."""
    monkeypatch.setenv("FAIRRUN_CACHE", str(tmp_path / "cache"))
    root = make_celeba(tmp_path / "data", n=60, seed=0)
    cfg = validate_run_config(compose_train([
        "dataset=celeba", f"dataset.root={root}", "dataset.image_size=16", "gpu=cpu", *TINY_CNN,
        "imbalance.ratio=0.8", "imbalance.majority=Female", "imbalance.splits=[train,val,test]",
        "method=dp_fedavg", "method.partition=identity", "method.num_clients=null", "method.client_rate=0.5",
        "method.rounds=2", "method.rounds_per_epoch=2", "method.noise_multiplier=1.1",
        "trainer.batch_size=8"]))
    with caplog.at_level(logging.WARNING):
        results = run_training(cfg, tmp_path / "run")
    test = results[results["split"] == "test"].iloc[0]
    # train: 18 Female, 18 Male -> 18 / 0.8 = 22 images (18 + 4); val and test: 6 + 6 -> 7 images (6 + 1)
    assert (test["n_train[Female]"], test["n_train[Male]"]) == (18, 4)
    assert test["n"] == 7 and results[results["split"] == "val"].iloc[0]["n"] == 7
    assert test["imbalance_splits"] == "train+val+test"
    assert sum("skewed test split has fewer than 30 rows" in r.message for r in caplog.records) == 1
    # W: the people among the 22 training images, from identity_CelebA.txt read here
    numbers = {name: int(k) for name, k in (line.split() for line in
                                              (root / "identity_CelebA.txt").read_text().splitlines())}
    raw = read_splits(cfg.dataset)["train"]
    train = with_identity(label_split("train", raw, "Smiling", "Male"), raw)
    probe = dataclasses.replace(train, images=torch.arange(len(train)).view(-1, 1, 1, 1))
    kept = apply_imbalance(probe, cfg.imbalance, cfg.seed).images.flatten().tolist()
    people = {numbers[f"{i + 1:06d}.jpg"] for i in kept}  # training rows are images 1-36, in order
    assert 4 <= len(people) <= 12 and test["fl_num_clients"] == len(people)
    delta = 10.0 ** (math.ceil(math.log10(1.0 / len(people))) - 1)
    accountant = RDPAccountant()
    for _ in range(2):
        accountant.step(noise_multiplier=1.1, sample_rate=0.5)
    assert test["delta"] == delta and test["dp_steps"] == 2
    assert test["epsilon"] == pytest.approx(accountant.get_epsilon(delta=delta), rel=1e-9)
    assert (tmp_path / "run" / "results.pkl").is_file()
