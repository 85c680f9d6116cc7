"""fairrun.studies.estimate: grouping of jobs into calibrations, the step arithmetic, unknown sizes, speed."""
from __future__ import annotations

import importlib
import math
import time

import numpy as np
import pytest
import torch

from fairrun.config import validate_run_config
from fairrun.data.groups import label_split
from fairrun.data.imbalance import apply_imbalance
from fairrun.data.synthetic import make_synthetic
from fairrun.methods.fedavg_clients import split_iid
from fairrun.studies.estimate import Timing, estimate, extrapolate, plan_job, time_spec
from tests.conftest import TINY, compose_train

FIXED = Timing(seconds_per_step=0.5, forward_seconds_per_row=0.001, batchnorm=True)


class Recorder:
    """A calibrator returning fixed timings and recording what it was asked to time."""

    def __init__(self, timing: Timing = FIXED):
        self.timing, self.specs = timing, []

    def __call__(self, spec):
        self.specs.append(spec)
        return self.timing


def jobs(*variants: list[str]) -> list:
    return [compose_train(TINY + list(v)) for v in variants]


def test_jobs_differing_in_seed_or_ratio_share_one_calibration():
    calibrate = Recorder()
    variants = (["seed=0"], ["seed=1"], ["imbalance.ratio=0.9"], ["model.width=16"])
    est = estimate(jobs(*variants), calibrate=calibrate)
    assert len(calibrate.specs) == 2  # the width-8 CNN once, the width-16 one once
    assert sorted(est.rows["jobs"]) == [1, 3]
    shared = est.rows[est.rows["jobs"] == 3].iloc[0]
    # the ratio job trains on fewer rows, so its steps differ and the row says so
    assert "steps per job" in shared["note"]


def test_step_arithmetic_matches_a_hand_computation():
    est = estimate(jobs([], ["imbalance.size=300"]), calibrate=Recorder())
    assert len(est.rows) == 1
    # TINY: 600 train / 200 val / 300 test rows, batch 64, 2 epochs, validation every epoch, PreciseBN 200
    full = 2 * math.ceil(600 / 64) * 0.5 + (2 * 200 + 200 + 300) * 0.001 + 2 * min(200, 10) * 64 * 0.001
    small = 2 * math.ceil(300 / 64) * 0.5 + (2 * 200 + 200 + 300) * 0.001 + 2 * min(200, 5) * 64 * 0.001
    row = est.rows.iloc[0]
    assert row["seconds_total"] == pytest.approx(full + small)
    assert row["seconds_per_job"] == pytest.approx((full + small) / 2)
    assert row["steps_per_job"] == (20 + 10) // 2
    assert est.total_seconds == pytest.approx(full + small)
    no_bn = estimate(jobs([]), calibrate=Recorder(Timing(0.5, 0.001, batchnorm=False)))
    assert no_bn.total_seconds == pytest.approx(full - 2 * 10 * 64 * 0.001)


def test_imbalance_ratio_without_size_uses_the_size_training_would_use():
    cfg = compose_train(TINY + ["imbalance.ratio=0.9"])
    run = validate_run_config(cfg)
    ds = run.dataset
    train = label_split("train", make_synthetic(ds)["train"], ds.target, ds.protected)
    rows = len(apply_imbalance(train, run.imbalance, run.seed))  # the real subsampling of a training run
    plan = plan_job(run, "cpu")
    assert plan.steps == run.trainer.epochs * math.ceil(rows / run.trainer.batch_size)
    assert plan.notes == []


def test_known_full_dataset_sizes():
    overrides = ["dataset=celeba", "gpu=cpu", "trainer.batch_size=100", "trainer.epochs=3"]
    celeba = plan_job(validate_run_config(compose_train(overrides)), "cpu")
    assert celeba.steps == 3 * 1628  # 162,770 training images of CelebA's official partition


def test_unknown_training_size_gives_the_note_instead_of_a_number():
    est = estimate([compose_train(["dataset=csv", "gpu=cpu"]), compose_train(TINY)], calibrate=Recorder())
    unknown = est.rows[est.rows["seconds_total"].isna()]
    assert len(unknown) == 1 and len(est.rows) == 2
    assert "unknown training-set size: give imbalance.size or prepare the dataset" in unknown.iloc[0]["note"]
    assert math.isnan(unknown.iloc[0]["steps_per_job"])
    known = estimate(jobs([]), calibrate=Recorder())
    assert est.total_seconds == pytest.approx(known.total_seconds)  # only the known job counts
    assert est.unknown_jobs == 1 and "1 job(s) of unknown cost not included" in est.text()
    assert "cost unknown" in est.text()
    sized = estimate([compose_train(["dataset=csv", "gpu=cpu", "imbalance.size=1000"])], calibrate=Recorder())
    assert sized.rows.iloc[0]["steps_per_job"] == 5 * math.ceil(1000 / 128)  # default trainer: 5 epochs, 128
    assert not sized.rows["seconds_total"].isna().any()
    assert "evaluation not counted" in sized.rows.iloc[0]["note"]


def test_dpsgd_is_timed_on_its_own_group_with_opacus_and_estimate_is_fast():
    timed = {}

    def calibrate(spec):
        timed[spec.method] = time_spec(spec, steps=3)
        return timed[spec.method]

    # one-off imports of seconds that any training process pays too: Opacus, torch._dynamo (first optimizer)
    importlib.import_module("opacus.grad_sample.utils")
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    configs = jobs([], ["method=dpsgd", "trainer.batch_size=64", "model=cnn", *TINY[-2:]])
    start = time.perf_counter()
    est = estimate(configs, steps=3, calibrate=calibrate)
    wall = time.perf_counter() - start
    assert wall < 3, wall
    # same model, batch and shape: only the method differs, and each has its own calibration and row
    assert list(timed) == ["erm", "dpsgd"]
    rows = est.rows.set_index("method")
    for name in ("erm", "dpsgd"):
        assert rows.loc[name, "seconds_per_step"] == timed[name].seconds_per_step > 0
    # dpsgd's model is Opacus-compatible (BatchNorm -> GroupNorm): no PreciseBN cost, unlike ERM's CNN
    assert not timed["dpsgd"].batchnorm and timed["erm"].batchnorm
    assert "estimated compute:" in est.text() and "timed steps per arm and model" in est.text()


def test_generative_stages_count_unless_given():
    run = validate_run_config(compose_train(TINY + ["method=gan_debias", "method.gan_epochs=3"]))
    plan = plan_job(run, "cpu")
    kinds = {}
    for part in plan.parts:
        kinds.setdefault((part.spec.kind, part.spec.method, part.unit), []).append(part.count)
    assert kinds[("gan", "", "step")] == [3 * (600 // 32)]  # the built-in GAN: epochs x full batches of 32
    # the target and the protected classifiers, trained as ERM sub-runs
    assert kinds[("classifier", "erm", "step")] == [2 * math.ceil(600 / 64)] * 2
    final = 600 + 2 * (run.method.num_latents - run.method.svm_samples)
    assert plan.steps == 2 * math.ceil(final / 64)
    given = validate_run_config(compose_train(TINY + ["method=gan_debias", "method.target_run=/x",
                                                      "method.protected_run=/y"]))
    kinds = {(p.spec.kind, p.unit) for p in plan_job(given, "cpu").parts if p.spec.method == "erm"}
    assert ("classifier", "step") not in kinds


def test_dp_fedavg_counts_rounds_clients_and_local_steps():
    fed = ["method=dp_fedavg", "method.num_clients=1000", "method.rounds=7", "method.client_rate=0.5",
           "method.local_epochs=2", "trainer.batch_size=2"]
    run = validate_run_config(compose_train(TINY + fed))
    plan = plan_job(run, "cpu")
    assert plan.main.kind == "local_sgd" and plan.main.batch == 1  # 600 rows over 1000 clients: 0 or 1 each
    clients = split_iid(600, 1000, np.random.default_rng(0))  # the real iid partition
    local = sum(math.ceil(len(c) / 2) for c in clients)
    assert local == 600
    assert plan.steps == round(7 * 0.5 * 2 * local)
    run = validate_run_config(compose_train(TINY + fed[:-1] + ["method.num_clients=7"]))
    local = sum(math.ceil(len(c) / 64) for c in split_iid(600, 7, np.random.default_rng(0)))
    assert local == 7 * 2 and plan_job(run, "cpu").steps == round(7 * 0.5 * 2 * local)


def test_a_step_that_cannot_run_here_leaves_its_group_unknown():
    def calibrate(spec):
        if spec.method == "dpsgd":
            raise RuntimeError("CUDA out of memory")
        return FIXED

    est = estimate(jobs([], ["method=dpsgd"]), calibrate=calibrate)
    rows = est.rows.set_index("method")
    assert "calibration failed: RuntimeError: CUDA out of memory" in rows.loc["dpsgd", "note"]
    assert math.isnan(rows.loc["dpsgd", "seconds_total"]) and est.unknown_jobs == 1
    assert est.total_seconds == pytest.approx(rows.loc["erm", "seconds_total"])


def test_calibration_runs_under_the_given_threads_and_restores_them():
    seen = []

    def calibrate(spec):
        seen.append(torch.get_num_threads())
        return FIXED

    before = torch.get_num_threads()
    est = estimate(jobs([]), threads=3, calibrate=calibrate)
    assert seen == [3] and torch.get_num_threads() == before
    assert "(cpu, 3 threads)" in est.text()


def test_extrapolation_to_the_full_batch():
    # a fixed 0.08 s per step plus 0.01 s per row, measured at 2 and 8 rows: 0.08 + 0.32 at 32 rows
    assert extrapolate([(2, 0.1), (8, 0.16)], 32) == pytest.approx(0.4)
    assert extrapolate([(8, 0.16)], 32) == pytest.approx(0.64)  # one size: linear scaling
    assert extrapolate([(2, 0.2), (8, 0.16)], 32) == pytest.approx(0.16)  # noise: never faster than measured
    assert extrapolate([(2, 0.01), (8, 0.16)], 32) == pytest.approx(0.64)  # at most linear scaling
