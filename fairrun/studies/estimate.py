"""``fairrun study NAME --dry-run``'s compute estimate: a few timed training steps per arm and model, on
random tensors of the jobs' input shape, scaled by each job's number of steps.

No dataset is read: studies run on data that may not be on this machine (CelebA at full size). The
training-set size of a job comes from ``imbalance.size``, else from the dataset's config (the built-in
synthetic data) or the published size of its full copy (:func:`split_sizes`); where it cannot be known
without the data the job's cost is left out and its row says so.

A job's cost (:func:`plan_job`) is the sum of:

* training: ``epochs x ceil(N / batch_size)`` optimizer steps of the method's own code path (its
  ``adapt_model``, extra modules, ``wrap``, ``forward`` and ``loss``: DP-SGD's Opacus per-example gradients
  included); DP-FedAvg: ``rounds x client_rate x local_epochs x`` the local batches of all clients, at batch
  ``min(batch_size, N / num_clients)``, timed through whole rounds of its ``run_round``;
* evaluation: forward passes over the validation split at every validation and over validation + test at the
  end, at the forward time per row measured in eval mode; PreciseBN: ``min(trainer.precise_bn, steps per
  epoch)`` training batches per validation, forward only (models without BatchNorm: none);
* the generative methods' stages (gan_debias, minority_gan): the ERM baseline classifiers they train as
  sub-runs, the built-in GAN (``gan_epochs x floor(n / 32)`` steps of its real trainer), minority_gan's VAE
  (``vae_epochs x ceil(N / 128)`` steps), scoring the generated images; a stage given as a finished run or
  a file (``target_run``, ``protected_run``, ``generator``) costs nothing.

Each distinct step (:class:`StepSpec`: kind, method and its cost-relevant keys, model, image shape, batch,
device) is timed once (:func:`time_spec`): one untimed warm-up step, then ``steps`` timed ones (the median
is kept), under the torch thread count the jobs get. A step too slow for the time cap (a ResNet-50 at 224 px
on the CPU) is timed at the largest batch that fits the cap (at least :data:`PROBE_BATCH` rows) and
extrapolated to the job's batch (:func:`extrapolate`), which the row's note states.

Checked against real runs on a 2-core CPU, 1 thread (synthetic data; estimate vs the run's ``train_seconds``):
the imbalance_privacy study's --tiny arms erm 7.7 vs 7.1 s, dpsgd 7.1 vs 7.4 s, dp_fedavg 4.4 vs 4.3 s; the
built-in GAN 0.45 vs 0.50 s per epoch.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import statistics
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from fairrun.config import RunConfig, validate_run_config
from fairrun.core.devices import resolve_device

# Published sizes of the full datasets (rows the readers keep: fairrun/data/<name>.py)
CELEBA_SPLITS = {"train": 162_770, "val": 19_867, "test": 19_962}  # the official partition (Liu et al. 2015)
FAIRFACE_CSV_ROWS = {"train": 86_744, "test": 10_954}  # fairface_label_train.csv / _val.csv (becomes test)
UTKFACE_IMAGES = 23_705  # the aligned UTKFace/ folder, less the 3 files without a race field
PROBE_BATCH = 2  # rows of the first, probing step (BatchNorm needs two)
BUDGET_S = 1.0  # seconds: the cap on one calibration's ramp and timed steps (not on a single step)
GAN_BATCH, VAE_BATCH = 32, 128  # the built-in GAN's and the stage VAE's batch sizes (GanConfig, VaeConfig)
EXCLUDED = ("data loading and image decoding (building a decoded-image cache), checkpoint and TensorBoard "
            "writes, process start-up; jobs counted one after another (divide by the parallel workers)")


# -- what is timed ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepSpec:
    """One distinct step to time: jobs with equal specs share a calibration. ``run`` (not compared) is a
    job's RunConfig to build the model and method from."""

    kind: str  # classifier | local_sgd (a DP-FedAvg client step) | gan | vae
    method: str
    method_keys: tuple  # the method's cost-relevant keys
    model: tuple  # the model config's items (gan/vae: their width and latent size)
    channels: int
    image_size: int
    batch: int
    device: str
    amp: str = "off"
    channels_last: bool = False
    run: Any = field(default=None, compare=False, hash=False, repr=False)


@dataclass
class Timing:
    """What a calibration measured: seconds per training step at ``StepSpec.batch`` rows, seconds per row of
    an eval-mode forward pass, whether the model has BatchNorm (PreciseBN), and a note."""

    seconds_per_step: float
    forward_seconds_per_row: float = 0.0
    batchnorm: bool = False
    note: str = ""


# Keys of each built-in method that change the time of one step; a method not listed counts all its keys.
COST_KEYS = {
    "erm": (), "reweight": (), "resample": (), "groupdro": (), "fair_reg": (), "fairalm": (),
    "domain_independent": (), "fair_mask": ("latent_dim",),
    "adversarial": ("input", "adv_hidden", "adv_layers"),
    "dbvae": ("latent_dim", "width", "vae_weight", "vae_on"),
    "dpsgd": ("grad_sample_mode", "physical_batch_size"),
    "dp_fedavg": ("local_epochs", "private"), "gan_debias": (), "minority_gan": (),
}


def method_keys(method) -> tuple:
    """The cost-relevant ``method.*`` items of a method config (:data:`COST_KEYS`)."""
    items = dataclasses.asdict(method)
    keys = COST_KEYS.get(method.name, tuple(k for k in items if k != "name"))
    return tuple((k, repr(items[k])) for k in keys)


def model_label(model) -> str:
    """``name`` and the keys that differ from the model's defaults, e.g. ``cnn(width=8)``."""
    try:
        defaults = dataclasses.asdict(type(model)())
    except TypeError:  # a user's model config without defaults for every key
        defaults = {}
    changed = [f"{k}={v}" for k, v in dataclasses.asdict(model).items()
               if k != "name" and defaults.get(k, v) != v]
    return f"{model.name}({', '.join(changed)})" if changed else model.name


def model_items(model) -> tuple:
    """The model config's items that shape the network (all but ``pretrained``: weights cost nothing)."""
    return tuple((k, repr(v)) for k, v in dataclasses.asdict(model).items() if k != "pretrained")


# -- dataset sizes ---------------------------------------------------------------------------------------

@dataclass
class SplitSizes:
    """Rows of the train / val / test splits (None: unknown without the data) and how they were found."""

    train: Optional[int]
    val: Optional[int]
    test: Optional[int]
    source: str = ""


def split_sizes(dataset) -> SplitSizes:
    """Split sizes from the dataset config: synthetic's ``n_train/n_val/n_test``; CelebA's official partition;
    FairFace's label CSVs (test = the val CSV, val carved from train by ``val_fraction``); UTKFace's 23,705
    aligned images carved by ``test_fraction`` and ``val_fraction`` (fairrun.data.files.assign_splits). Any
    other dataset, or a subset (FairFace's ``service_test_only``, ``race_groups=4``): unknown."""
    name = dataset.name
    if name == "synthetic":
        return SplitSizes(dataset.n_train, dataset.n_val, dataset.n_test, "dataset.n_train")
    if name == "celeba":
        return SplitSizes(**CELEBA_SPLITS, source="CelebA's official partition (full copy)")
    if name == "fairface" and not dataset.service_test_only and dataset.race_groups != 4:
        val = round(FAIRFACE_CSV_ROWS["train"] * dataset.val_fraction)
        return SplitSizes(FAIRFACE_CSV_ROWS["train"] - val, val, FAIRFACE_CSV_ROWS["test"],
                          "FairFace's label CSVs (full copy), val carved from train")
    if name == "utkface":
        test = round(UTKFACE_IMAGES * dataset.test_fraction)
        val = round(UTKFACE_IMAGES * dataset.val_fraction)
        return SplitSizes(UTKFACE_IMAGES - test - val, val, test, "UTKFace's 23,705 aligned images, carved")
    return SplitSizes(None, None, None)


def training_rows(run: RunConfig, sizes: SplitSizes) -> tuple[Optional[int], str]:
    """(rows the job trains on, a note): ``imbalance.size``; the whole training split without imbalance;
    with ``imbalance.ratio`` (or ``balance_target``) and no size, the largest subset the ratio allows, which
    depends on the group counts: computed for synthetic data with ``protected=group``, else bounded by the
    whole split (the note says so)."""
    imb = run.imbalance
    if imb.size is not None:
        return imb.size, ""
    if sizes.train is None:
        return None, "unknown training-set size: give imbalance.size or prepare the dataset"
    if imb.ratio is None and not imb.balance_target:
        return sizes.train, ""
    ds = run.dataset
    if ds.name == "synthetic" and ds.protected == "group" and not imb.balance_target and ds.num_groups > 1:
        from fairrun.data.synthetic import _train_proportions

        counts = [round(p * ds.n_train) for p in _train_proportions(ds)]
        major = counts.index(max(counts)) if imb.majority is None else \
            [chr(ord("A") + k) for k in range(ds.num_groups)].index(imb.majority)
        shares = [(1 - imb.ratio) / (ds.num_groups - 1)] * ds.num_groups
        shares[major] = imb.ratio
        return int(min(c / s for c, s in zip(counts, shares) if s > 0) + 1e-6), ""
    return sizes.train, ("at most: imbalance.ratio without imbalance.size keeps a subset set by the group "
                         "counts")


# -- a job's cost ----------------------------------------------------------------------------------------

@dataclass
class Part:
    """``count`` units of ``spec``'s timing: training steps (``unit="step"``) or forward rows (``"row"``;
    ``"bn_row"``: PreciseBN rows, counted only for a model with BatchNorm)."""

    spec: StepSpec
    unit: str
    count: float


@dataclass
class JobPlan:
    """One job: its main (grouping) step, the steps of its main training run, every cost part, notes."""

    run: RunConfig
    main: StepSpec
    steps: Optional[int]
    parts: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def known(self) -> bool:
        return self.steps is not None


def validations(epochs: int, eval_every: int) -> int:
    """Validations of a run: every ``eval_every`` epochs and after the last (training.loop.Trainer.fit)."""
    return epochs // eval_every + (1 if epochs % eval_every else 0)


def classifier_parts(spec: StepSpec, run: RunConfig, n: int, sizes: SplitSizes, epochs: int,
                     steps_per_epoch: int, step_count: int) -> list[Part]:
    """Training steps, validation/test forward rows and PreciseBN rows of one training run."""
    t = run.trainer
    v = validations(epochs, t.eval_every)
    rows = v * sizes.val + sizes.val + sizes.test
    bn_rows = v * min(t.precise_bn, steps_per_epoch) * min(spec.batch, n)
    return [Part(spec, "step", step_count), Part(spec, "row", rows), Part(spec, "bn_row", bn_rows)]


def _spec(run: RunConfig, kind: str, batch: int, device: str, method=None) -> StepSpec:
    method = method or run.method
    cuda = device.startswith("cuda")
    return StepSpec(kind, method.name, method_keys(method), model_items(run.model), channels_of(run.dataset),
                    run.dataset.image_size, max(1, batch), device, run.gpu.amp if cuda else "off",
                    bool(run.gpu.channels_last and cuda), run)


def channels_of(dataset) -> int:
    """Image channels: 3 for every built-in dataset (synthetic faces and the on-disk readers are RGB)."""
    return int(getattr(dataset, "channels", 3))


def client_batches(n: int, clients: int, batch_size: int) -> int:
    """Local batches of one local epoch summed over all clients of an iid partition of ``n`` rows into
    ``clients`` parts that differ by at most one row (fairrun.methods.fedavg_clients; other partitions are
    taken to cost the same); a client without rows trains nothing."""
    small, extra = divmod(n, clients)
    return extra * math.ceil((small + 1) / batch_size) + (clients - extra) * math.ceil(small / batch_size)


def plan_job(run: RunConfig, device: str) -> JobPlan:
    """The cost parts of one job (see the module docstring)."""
    from fairrun.methods.dpsgd import physical_count

    t, m = run.trainer, run.method
    sizes = split_sizes(run.dataset)
    n, note = training_rows(run, sizes)
    notes = [note] if note else []
    if n is not None and sizes.val is None:
        sizes = dataclasses.replace(sizes, val=0, test=0)
        notes.append("evaluation not counted: validation and test sizes unknown without the data")
    if run.gpu.compile:
        notes.append("timed without torch.compile (its compilation is not counted)")
    if t.patience is not None:
        notes.append("at most: trainer.patience may stop early")
    if run.eval_datasets:
        notes.append("eval_datasets not counted")
    if m.name == "dbvae":
        notes.append("the per-epoch re-encoding of the training set not timed")
    if m.name == "dp_fedavg":
        return federated_plan(run, n, sizes, device, notes)
    physical = getattr(m, "physical_batch_size", None) if m.name == "dpsgd" else None
    spec = _spec(run, "classifier", min(t.batch_size, physical or t.batch_size), device)
    if m.name == "dpsgd" and m.balance == "under" and n is not None:
        notes.append("at most: dpsgd balance=under trains on a balanced subset")
    if m.name in ("gan_debias", "minority_gan"):
        return generative_plan(run, spec, n, sizes, device, notes)
    if n is None:
        return JobPlan(run, spec, None, notes=notes)
    per_epoch = math.ceil(n / t.batch_size) * physical_count(t.batch_size, physical)
    steps = t.epochs * per_epoch
    parts = classifier_parts(spec, run, n, sizes, t.epochs, per_epoch, steps)
    if m.name == "fair_mask":  # its unmasked evaluation_variants: val and test once more
        parts.append(Part(spec, "row", sizes.val + sizes.test))
    return JobPlan(run, spec, steps, parts, notes)


def federated_plan(run: RunConfig, n: Optional[int], sizes: SplitSizes, device: str, notes: list) -> JobPlan:
    """dp_fedavg: ``rounds x client_rate x`` (local batches of all clients, :func:`client_batches`) local SGD
    steps at batch ``min(batch_size, rows per client)``, timed through whole rounds of the method's own
    ``run_round`` where a client has few local steps (:func:`_time_federated`: aggregation and clipping
    included), and the validations of its ``ceil(rounds / rounds_per_epoch)`` loop epochs."""
    m, t = run.method, run.trainer
    clients = getattr(m, "num_clients", None)
    if clients is None:
        notes.append("unknown number of clients: partition=identity has one per person in the training split")
        n = None
    per_client = max(1, math.ceil(n / clients)) if n is not None else t.batch_size
    spec = _spec(run, "local_sgd", min(t.batch_size, per_client), device)
    spec = dataclasses.replace(spec, method_keys=spec.method_keys + (("rows_per_client", per_client),))
    if n is None:
        return JobPlan(run, spec, None, notes=notes)
    steps = round(m.rounds * m.client_rate * m.local_epochs * client_batches(n, clients, t.batch_size))
    epochs = math.ceil(m.rounds / m.rounds_per_epoch)
    return JobPlan(run, spec, steps, classifier_parts(spec, run, n, sizes, epochs, m.rounds_per_epoch, steps),
                   notes)


def generative_plan(run: RunConfig, spec: StepSpec, n: Optional[int], sizes: SplitSizes, device: str,
                    notes: list) -> JobPlan:
    """gan_debias / minority_gan: baseline ERM sub-runs, GAN and VAE stages, scoring, the final classifier
    on real + generated images (fairrun.methods.generative_stages)."""
    from fairrun.methods.erm import ERMConfig

    m, t = run.method, run.trainer
    if n is None:
        return JobPlan(run, spec, None, notes=notes)
    erm = _spec(run, "classifier", t.batch_size, device, method=ERMConfig())
    parts = []
    roles = [("target", m.target_run, n)]
    if m.name == "gan_debias" or m.source == "vae":
        full = sizes.train if sizes.train is not None else n  # it trains on the whole training split
        if sizes.train is None and m.protected_run is None:
            notes.append("the protected classifier's training split taken as imbalance.size")
        roles.append(("protected", m.protected_run, full))
    for role, given, rows in roles:
        if given is None:
            steps = t.epochs * math.ceil(rows / t.batch_size)
            parts += classifier_parts(erm, run, rows, sizes, t.epochs, math.ceil(rows / t.batch_size), steps)
    if m.name == "gan_debias":
        gan_rows, generated, scored = n, 2 * (m.num_latents - m.svm_samples), 2 * m.num_latents
        final = generated if m.fake_only else n + generated
    else:
        if m.source == "vae":
            vae = dataclasses.replace(spec, kind="vae", model=(("latent_dim", m.vae_latent_dim),),
                                      batch=VAE_BATCH, method="", method_keys=(), amp="off",
                                      channels_last=False)
            parts.append(Part(vae, "step", m.vae_epochs * math.ceil(n / VAE_BATCH)))
            gan_rows = round(m.fraction * n)
        else:
            gan_rows = n
            notes.append("at most: the GAN trains on group %s only" % m.group)
        scored = m.num_generated * (2 if m.source == "vae" else 1)
        final = n + m.num_generated
    size_ok = spec.image_size in (16, 32, 64, 128)
    if m.generator is None and not size_ok:
        notes.append(f"the built-in GAN needs 16, 32, 64 or 128 px, not {spec.image_size}: this job would "
                     f"fail")
    if m.generator is None and size_ok:
        gan = dataclasses.replace(spec, kind="gan", model=(("width", m.gan_width),), batch=GAN_BATCH,
                                  method="", method_keys=(), amp="off", channels_last=False)
        parts.append(Part(gan, "step", m.gan_epochs * max(1, gan_rows // GAN_BATCH)))
    parts.append(Part(erm, "row", scored))
    steps = t.epochs * math.ceil(final / t.batch_size)
    parts += classifier_parts(spec, run, final, sizes, t.epochs, math.ceil(final / t.batch_size), steps)
    notes.append("stages: " + ", ".join(
        [f"{role} classifier" for role, given, _ in roles if given is None] +
        (["VAE"] if m.name == "minority_gan" and m.source == "vae" else []) +
        (["GAN"] if m.generator is None else [])) +
        (" (generating images and VAE encoding not timed)" if m.name == "minority_gan" and m.source == "vae"
         else " (generating images not timed)"))
    return JobPlan(run, spec, steps, parts, notes)


# -- timing ---------------------------------------------------------------------------------------------

def _median_seconds(fn: Callable[[], None], repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # work queued before is not counted
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_scaled(make: Callable[[int], Callable[[], None]], batch: int, steps: int, device: torch.device,
                budget: float) -> tuple[float, str]:
    """(seconds of one call at ``batch`` rows, a note). ``make(b)`` returns a call on ``b`` rows.

    The batch ramps up from :data:`PROBE_BATCH` rows by x4 to ``batch``: at each size one untimed warm-up
    call, then one timed call; the next size is tried only if its warm-up and timed call, predicted
    linearly from the last timing, fit in what is left of ``budget`` seconds (the second size: of 5 budgets).
    At the last size reached,
    ``steps`` calls are timed in all (fewer if they would take more than ``budget`` seconds, at least one)
    and the median is kept. A size short of ``batch`` (a ResNet-50 at 224 px on the CPU) is extrapolated by
    :func:`extrapolate` from the last two sizes, which the note says."""
    start = time.perf_counter()
    rows = min(batch, PROBE_BATCH)
    call = make(rows)
    call()
    ramp = [(rows, _median_seconds(call, 1, device))]
    while rows < batch:
        bigger = min(batch, rows * 4)
        predicted = 2 * ramp[-1][1] * bigger / rows
        # a second size is always timed when it fits in 5 budgets: one point cannot tell a fixed cost per call
        # from a cost per row, and scaling a batch-2 step linearly to batch 128 overstates it many times
        cap = 5 * budget if len(ramp) < 2 else budget
        if time.perf_counter() - start + predicted > cap:
            break
        rows, call = bigger, make(bigger)
        call()
        ramp.append((rows, _median_seconds(call, 1, device)))
    times = [ramp[-1][1]]
    more = min(steps - 1, int(budget / max(times[0], 1e-9)))
    times += [_median_seconds(call, 1, device) for _ in range(max(0, more))]
    ramp[-1] = (rows, statistics.median(times))
    if rows == batch:
        return ramp[-1][1], ""
    return extrapolate(ramp, batch), f"{len(times)} step(s) timed at batch {rows}, extrapolated to {batch}"


def extrapolate(ramp: list, batch: int) -> float:
    """Seconds at ``batch`` rows from ``ramp``, the (rows, seconds) measured at growing sizes: the line
    through the last two points (a fixed cost per call plus a cost per row), kept between the last time (a
    larger batch is not faster) and its linear scaling ``t x batch / rows`` (the cost per row does not
    grow)."""
    rows, seconds = ramp[-1]
    linear = seconds * batch / rows
    if len(ramp) < 2:
        return linear
    (rows0, seconds0) = ramp[-2]
    affine = seconds + (seconds - seconds0) / (rows - rows0) * (batch - rows)
    return min(linear, max(seconds, affine))


def time_spec(spec: StepSpec, steps: int, budget: float = BUDGET_S) -> Timing:
    """Calibrate one :class:`StepSpec` on random inputs (see :func:`time_scaled`)."""
    if spec.kind == "gan":
        return _time_gan(spec)
    if spec.kind == "vae":
        return _time_vae(spec, steps, budget)
    return _time_classifier(spec, steps, budget)


def _random_split(rows: int, spec: StepSpec, classes: int, groups: int):
    from fairrun.data.base import LabeledSplit

    images = torch.randint(0, 256, (rows, spec.channels, spec.image_size, spec.image_size), dtype=torch.uint8)
    y, g = torch.arange(rows) % classes, (torch.arange(rows) // classes) % groups
    return LabeledSplit("calibration", images, y, g, [f"g{k}" for k in range(groups)],
                        [f"c{k}" for k in range(classes)])


def class_counts(dataset) -> tuple[int, int]:
    """(classes, groups) for the heads: synthetic's ``num_groups`` where ``group`` is the target or
    protected attribute, else 2 per attribute (they change only the size of a linear head)."""
    def values(attr: str) -> int:
        return dataset.num_groups if dataset.name == "synthetic" and attr == "group" else 2

    protected = [dataset.protected] if isinstance(dataset.protected, str) else list(dataset.protected)
    return values(dataset.target), math.prod(values(a) for a in protected)


def _calibration_method(method):
    """The method config to time: DP keys that change only the noise or the sampled rows are neutralised (σ
    need not be searched for a target ε; balance=under would shrink the random batch)."""
    if method.name == "dpsgd":
        return dataclasses.replace(method, target_epsilon=None, noise_multiplier=1.0, balance="none")
    if method.name == "dp_fedavg":
        return dataclasses.replace(method, target_epsilon=None, noise_multiplier=1.0)
    return method


def _time_classifier(spec: StepSpec, steps: int, budget: float) -> Timing:
    from fairrun.data.base import Batch
    from fairrun.evaluation.predictions import autocast
    from fairrun.methods import build_method
    from fairrun.methods.base import TrainingPlan
    from fairrun.methods.erm import ERMConfig
    from fairrun.methods.generative_stages import GenerativeStages
    from fairrun.data.batches import Augmentation
    from fairrun.models import build_model
    from fairrun.training.optimizers import build_optimizer
    from fairrun.training.precise_bn import batchnorm_layers

    run, device = spec.run, torch.device(spec.device)
    classes, groups = class_counts(run.dataset)
    method_cfg = _calibration_method(run.method) if spec.method == run.method.name else ERMConfig()
    method = build_method(method_cfg, num_classes=classes, num_groups=groups)
    train = _random_split(max(spec.batch, classes * groups), spec, classes, groups)
    if not isinstance(method, GenerativeStages):
        train = method.prepare(train)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = method.adapt_model(build_model(run.model, spec.channels, spec.image_size, classes)).to(device)
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = list(model.parameters()) + [p for e in method.extra_modules() for p in e.to(device).parameters()]
    if spec.kind == "local_sgd":
        optimizer = torch.optim.SGD(params, lr=method_cfg.client_lr)
    else:
        plan = TrainingPlan(train=train, batch_size=spec.batch, epochs=run.trainer.epochs, lr=run.trainer.lr,
                            seed=0, device=device, augmentation=Augmentation(),
                            channels_last=spec.channels_last, model_name=run.model.name)
        model, optimizer = method.wrap(model, build_optimizer(params, run.trainer), plan)
    scaler = torch.amp.GradScaler("cuda", enabled=spec.amp == "fp16")
    memory = torch.channels_last if spec.channels_last else torch.contiguous_format

    def batch_of(rows: int) -> Batch:
        x = torch.randn(rows, spec.channels, spec.image_size, spec.image_size, device=device)
        y, g = train.y[:rows].to(device), train.g[:rows].to(device)
        return Batch(x.contiguous(memory_format=memory), y, g, torch.arange(rows, device=device))

    def train_step(rows: int) -> Callable[[], None]:
        batch = batch_of(rows)

        def step() -> None:
            model.train()
            method.on_step(0, 1)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, spec.amp):
                outputs = method.forward(model, batch.x)
                loss = (method.per_sample_loss(outputs, batch).mean() if spec.kind == "local_sgd"
                        else method.loss(outputs, batch))
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        return step

    def forward(rows: int) -> Callable[[], None]:
        batch = batch_of(rows)

        def call() -> None:
            model.eval()
            with torch.no_grad(), autocast(device, spec.amp):
                method.forward(model, batch.x)
        return call

    seconds, note = time_scaled(train_step, spec.batch, steps, device, budget)
    if spec.kind == "local_sgd":
        seconds = _time_federated(spec, classes, groups, steps, budget, seconds) or seconds
    eval_rows = max(min(run.trainer.eval_batch_size, 128 if device.type == "cuda" else 64), 2)
    forward_seconds, _ = time_scaled(forward, eval_rows, 1, device, budget / 4)
    return Timing(seconds, forward_seconds / eval_rows, bool(batchnorm_layers(model)), note)


FEDERATED_ROWS = 4096  # rows of the random training split whose clients run the timed rounds


def _time_federated(spec: StepSpec, classes: int, groups: int, steps: int, budget: float,
                    step_seconds: float) -> Optional[float]:
    """Seconds per local step of dp_fedavg including each client's share of its round (copying the global
    weights, the update's flattening, clipping and aggregation, the noise and the server step): whole rounds
    of the method's own ``run_round`` on ``k`` clients of ``rows_per_client`` random rows each, every client
    sampled, divided by the ``k x local steps`` they take (``k`` up to 8, as two rounds fit in ``budget`` by
    ``step_seconds``, the local step's time). None (the local step's time is used) when a client has more than
    8 local steps or more than FEDERATED_ROWS rows, or one client's two rounds exceed ``budget``: the
    round's overhead is then small next to its steps."""
    from fairrun.data.batches import Augmentation
    from fairrun.methods import build_method
    from fairrun.methods.base import TrainingPlan
    from fairrun.models import build_model

    run, device = spec.run, torch.device(spec.device)
    per_client = int(dict(spec.method_keys)["rows_per_client"])
    local_steps = run.method.local_epochs * math.ceil(per_client / run.trainer.batch_size)
    k = min(8, FEDERATED_ROWS // per_client, int(budget / (2 * local_steps * step_seconds)))
    if local_steps > 8 or k < 1:
        return None
    cfg = dataclasses.replace(_calibration_method(run.method), num_clients=k, client_rate=1.0,
                              partition="iid", rounds=10 ** 6, rounds_per_epoch=10 ** 6)
    method = build_method(cfg, num_classes=classes, num_groups=groups)
    train = _random_split(k * per_client, spec, classes, groups)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = method.adapt_model(build_model(run.model, spec.channels, spec.image_size, classes)).to(device)
    plan = TrainingPlan(train=train, batch_size=run.trainer.batch_size, epochs=1, lr=run.trainer.lr, seed=0,
                        device=device, augmentation=Augmentation(), model_name=run.model.name)
    method.wrap(model, torch.optim.SGD(model.parameters(), lr=1.0), plan)
    rounds = iter(range(10 ** 6))
    method.run_round(next(rounds))  # warm-up
    def one_round() -> float:
        return _median_seconds(lambda: method.run_round(next(rounds)), 1, device)

    first = one_round()
    times = [first] + [one_round() for _ in range(min(steps - 1, int(budget / max(first, 1e-9))))]
    return statistics.median(times) / (k * local_steps)


def _time_gan(spec: StepSpec) -> Timing:
    """The built-in GAN's real trainer (fairrun.generative.gan_training.GanTrainer) on random images: one
    untimed epoch of one step, then one timed epoch of ``r1_every`` steps (so the lazy R1 penalty counts once
    per ``r1_every`` steps, as in training)."""
    from fairrun.data.base import LabeledSplit
    from fairrun.generative.gan import GanConfig
    from fairrun.generative.gan_training import GanTrainer

    cfg = GanConfig(width=dict(spec.model)["width"], seed=0, batch_size=GAN_BATCH)
    device = torch.device(spec.device)

    def trainer(steps: int) -> GanTrainer:
        rows = steps * cfg.batch_size
        shape = (rows, spec.channels, spec.image_size, spec.image_size)
        images = torch.randint(0, 256, shape, dtype=torch.uint8)
        zeros = torch.zeros(rows, dtype=torch.long)
        return GanTrainer(LabeledSplit("calibration", images, zeros, zeros, ["all"], ["all"]), cfg, device)

    first = _median_seconds(trainer(1).train_epoch, 1, device)  # the untimed warm-up (one step with R1)
    if first * cfg.r1_every > 2 * BUDGET_S:  # too slow to time an epoch of r1_every steps
        return Timing(first, note="GAN step from its warm-up step (with the R1 penalty)")
    timed = trainer(cfg.r1_every)
    return Timing(_median_seconds(timed.train_epoch, 1, device) / cfg.r1_every)


def _time_vae(spec: StepSpec, steps: int, budget: float) -> Timing:
    """A step of minority_gan's stage VAE (fairrun.generative.vae.train_vae: forward, vae_loss, Adam)."""
    from fairrun.generative.vae import VaeConfig, build_vae, vae_loss

    device = torch.device(spec.device)
    cfg = VaeConfig(latent_dim=dict(spec.model)["latent_dim"])
    vae = build_vae(cfg, (spec.channels, spec.image_size, spec.image_size)).to(device)
    optimizer = torch.optim.Adam(vae.parameters(), lr=cfg.lr)

    def make(rows: int) -> Callable[[], None]:
        x = torch.rand(rows, spec.channels, spec.image_size, spec.image_size, device=device) * 2 - 1

        def step() -> None:
            recon, mu, logvar = vae(x)
            total, _, _ = vae_loss(x, recon, mu, logvar, cfg.beta)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
        return step

    seconds, note = time_scaled(make, spec.batch, steps, device, budget)
    return Timing(seconds, note=note)


# -- the estimate ---------------------------------------------------------------------------------------

def part_seconds(part: Part, timing: Timing) -> float:
    """Seconds of one cost part under its spec's timing."""
    if part.unit == "step":
        return part.count * timing.seconds_per_step
    if part.unit == "bn_row" and not timing.batchnorm:
        return 0.0
    return part.count * timing.forward_seconds_per_row


def format_duration(seconds: float) -> str:
    """``42 s``, ``12.3 min`` or ``3.2 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Estimate:
    """A study's estimated compute: ``total_seconds`` (jobs of known size), one row per arm and calibrated
    step (:data:`COLUMNS`), and how it was measured."""

    total_seconds: float
    rows: pd.DataFrame
    devices: str = "cpu"
    threads: int = 1
    steps: int = 3
    unknown_jobs: int = 0

    def text(self) -> str:
        """One line per group and a total line saying what the estimate covers and what it does not."""
        lines = []
        for r in self.rows.itertuples(index=False):
            if pd.isna(r.seconds_total):
                cost = "cost unknown"
            else:
                per_step = (f"{r.seconds_per_step:.2f} s" if r.seconds_per_step >= 1
                            else f"{r.seconds_per_step * 1e3:.1f} ms")
                cost = (f"{r.steps_per_job} steps x {per_step}/step, "
                        f"{format_duration(r.seconds_per_job)}/job, {format_duration(r.seconds_total)}")
            note = f"  [{r.note}]" if r.note else ""
            arm = "-" if pd.isna(r.arm) else r.arm
            lines.append(f"  {arm}: {r.method} / {r.model} {r.image_size}px batch {r.batch_size}, "
                         f"{r.jobs} job{'s' if r.jobs != 1 else ''}: {cost}{note}")
        unknown = f"; {self.unknown_jobs} job(s) of unknown cost not included" if self.unknown_jobs else ""
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        lines.append(f"estimated compute: {format_duration(self.total_seconds)} on this machine "
                     f"({self.devices}, {threads}); calibrated from {self.steps} "
                     f"timed steps per arm and model on random inputs{unknown}. Covers training steps, "
                     f"evaluation and PreciseBN passes and generative stages; excludes {EXCLUDED}.")
        return "\n".join(lines)


COLUMNS = ["arm", "method", "model", "image_size", "batch_size", "jobs", "steps_per_job", "seconds_per_step",
           "seconds_per_job", "seconds_total", "note"]


def estimate(jobs: list[DictConfig], steps: int = 3, device: Optional[str] = None,
             threads: Optional[int] = None,
             calibrate: Optional[Callable[[StepSpec], Timing]] = None, budget: float = BUDGET_S) -> Estimate:
    """Estimate the compute of ``jobs`` (composed ``fairrun train`` configs) on this machine.

    Every job is validated (:func:`fairrun.config.validate_run_config`) and planned (:func:`plan_job`); every
    distinct :class:`StepSpec` is timed once by ``calibrate`` (default :func:`time_spec` with ``steps`` timed
    steps and ``budget`` seconds at most each) under ``threads`` torch threads (default
    :func:`default_threads`; pass the count each job of the study's launcher gets, e.g. cores // parallel
    jobs), on ``device`` (default: each job's ``gpu.device``). Rows group the jobs by arm and main step.
    """
    if steps < 1:
        from fairrun.core.errors import FairrunError

        raise FairrunError(f"estimate(steps={steps!r}): the timed steps per calibration must be an integer "
                           f">= 1.")
    runs = [validate_run_config(without_hydra(job)) for job in jobs]
    plans = [plan_job(run, device or str(resolve_device(run.gpu))) for run in runs]
    calibrate = calibrate or (lambda spec: time_spec(spec, steps, budget))
    timings: dict = {}
    threads = threads or default_threads()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
            for plan in plans:
                for spec in [plan.main] + [p.spec for p in plan.parts]:
                    if spec not in timings:
                        timings[spec] = calibrated(calibrate, spec)
    finally:
        torch.set_num_threads(before)
    groups: dict = {}
    for plan in plans:
        groups.setdefault((plan.run.arm, plan.main), []).append(plan)
    rows, unknown = [], 0
    for (arm, spec), members in groups.items():
        row, missing = _row(arm, spec, members, timings)
        rows.append(row)
        unknown += missing
    frame = pd.DataFrame(rows, columns=COLUMNS)
    total = float(frame["seconds_total"].dropna().sum()) if len(frame) else 0.0
    devices = ", ".join(sorted({p.main.device for p in plans})) or "cpu"
    return Estimate(total, frame, devices, threads, steps, unknown)


def without_hydra(job: DictConfig) -> DictConfig:
    """A job's config without the ``hydra`` node (a config composed with ``return_hydra_config`` has one)."""
    if "hydra" not in job:
        return job
    return OmegaConf.masked_copy(job, [key for key in job if key != "hydra"])


def default_threads() -> int:
    """The torch threads a job of the basic launcher gets (fairrun.sweep.resources.JobResources): this
    process's count, capped at the usable cores unless ``OMP_NUM_THREADS`` is set."""
    from fairrun.sweep.resources import usable_cores

    threads = torch.get_num_threads()
    if "OMP_NUM_THREADS" not in os.environ and 0 < usable_cores() < threads:
        return usable_cores()
    return threads


def calibrated(calibrate: Callable[[StepSpec], Timing], spec: StepSpec) -> Timing:
    """``calibrate(spec)``, or a timing of NaN whose note names the error when the step cannot run here
    (e.g. out of GPU memory, a model Opacus cannot handle): that group's cost is then unknown."""
    fairrun_log = logging.getLogger("fairrun")
    level = fairrun_log.level
    fairrun_log.setLevel(logging.ERROR)  # set-up messages of the methods (dpsgd's GroupNorm, σ): real runs'
    try:
        with warnings.catch_warnings():  # e.g. Opacus' accountant on the calibration's made-up sampling rates
            warnings.simplefilter("ignore")
            return calibrate(spec)
    except Exception as err:  # noqa: BLE001 (any failure of a user's model or method: reported, not raised)
        text = " ".join(str(err).split())[:160]
        return Timing(math.nan, math.nan, False, f"calibration failed: {type(err).__name__}: {text}")
    finally:
        fairrun_log.setLevel(level)
        if spec.device.startswith("cuda"):
            torch.cuda.empty_cache()


def _row(arm, spec: StepSpec, members: list, timings: dict) -> tuple[dict, int]:
    """One table row (the jobs of one arm and main step) and the number of its jobs of unknown cost."""
    run, timing = members[0].run, timings[spec]
    known = [p for p in members if p.known]
    notes = list(dict.fromkeys(n for p in members for n in p.notes))
    if timing.note:
        notes.insert(0, timing.note)
    per_job = [sum(part_seconds(part, timings[part.spec]) for part in p.parts) for p in known]
    per_job = [seconds for seconds in per_job if not math.isnan(seconds)]  # NaN: a calibration failed
    step_counts = sorted({p.steps for p in known})
    if len(step_counts) > 1:
        notes.append(f"steps per job {step_counts[0]}..{step_counts[-1]}")
    for p in known:  # what the stages' calibrations say (a GAN timed from one step, a failure)
        notes += [f"{part.spec.kind} {part.spec.method}: {timings[part.spec].note}".replace("  ", " ")
                  for part in p.parts if part.spec != spec and timings[part.spec].note]
    notes = list(dict.fromkeys(notes))
    if len(per_job) < len(members):
        notes.append(f"{len(members) - len(per_job)} job(s) of unknown cost not included")
    steps = (round(sum(p.steps for p in known) / len(known)) if known else None)
    row = {"arm": arm, "method": spec.method, "model": model_label(run.model), "image_size": spec.image_size,
           "batch_size": spec.batch, "jobs": len(members), "steps_per_job": steps,
           "seconds_per_step": timing.seconds_per_step,
           "seconds_per_job": sum(per_job) / len(per_job) if per_job else math.nan,
           "seconds_total": sum(per_job) if per_job else math.nan, "note": "; ".join(notes)}
    return row, len(members) - len(per_job)
