"""The run's own sections: ``trainer``, ``gpu`` and ``imbalance`` (schemas, defaults and value checks).

Dataset, model and method sections belong to their registries; :mod:`fairrun.config` assembles all of them
into a RunConfig.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

from omegaconf import DictConfig

from fairrun.core.validation import require, require_choice

AMP_MODES = ("off", "bf16", "fp16")
IMBALANCE_SPLITS = ("train", "val", "test")  # the splits imbalance.splits may name
DEVICES = ("auto", "cpu", "cuda")
DATA_ON_DEVICE = ("auto", "true", "false")
OPTIMIZERS = ("adam", "sgd")
SCHEDULERS = ("none", "step", "cosine")


@dataclass
class TrainerConfig:
    """Optimisation settings (``trainer.*``)."""

    epochs: int = 5  # passes over the training set
    batch_size: int = 128  # training batch size
    eval_batch_size: int = 512  # batch size when predicting val and test
    lr: float = 1e-3  # learning rate
    optimizer: str = "adam"  # adam | sgd
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0  # L2 penalty (adam: coupled, as torch.optim.Adam)
    scheduler: str = "none"  # none | step (lr x gamma every epoch) | cosine
    gamma: float = 0.9  # step scheduler factor
    eval_every: int = 1  # validate every N epochs (and always after the last)
    # validation metric that picks the kept checkpoint (best.pt): any registered metric with a direction,
    select: str = "accuracy"  # e.g. accuracy | worst_group_acc | balanced_accuracy | acc_gap (gaps minimised)
    patience: Optional[int] = None  # stop after N evaluations without a better trainer.select (null = never)
    # PreciseBN (Wu & Johnson 2021): before each validation, recompute BatchNorm's eval-mode statistics over
    precise_bn: int = 200  # up to this many training batches with the current weights (0 = PyTorch's running averages)


@dataclass
class GpuConfig:
    """Device settings (``gpu.*``); AMP and channels_last apply on CUDA only."""

    device: str = "auto"  # auto (CUDA when available, else CPU) | cpu | cuda
    amp: str = "off"  # off | bf16 | fp16 (CUDA only)
    channels_last: bool = False  # CUDA only
    compile: bool = False  # torch.compile the model
    num_workers: int = 0  # image-decoding processes when a dataset cache is built (0 = one per core)
    # CUDA: keep the training images on the GPU: auto (when they fit) | true | false
    data_on_device: str = "auto"


@dataclass
class ImbalanceConfig:
    """Training-set imbalance (``imbalance.*``): ``ratio`` is the majority group's share (null = as is).

    ``splits`` names the splits skewed alike: train only by default; val and test as
    :func:`fairrun.data.imbalance.apply_imbalance_to_splits` says."""

    ratio: Optional[float] = None  # null = data as is; 1.0 = minority absent; 0.5 = balanced (two groups)
    majority: Optional[str] = None  # group name; null = the largest group of the training split
    size: Optional[int] = None  # training-set size; null = the largest achievable for the ratio
    # true: the target classes are equally frequent inside every group (the imbalance study)
    balance_target: bool = False
    # splits skewed alike: [train] (default) | [train, test] | [train, val, test]; val, test: the largest
    # subset achievable for the ratio (size applies to train only)
    splits: List[str] = field(default_factory=lambda: ["train"])


def validate_trainer(t: TrainerConfig) -> None:
    require(t.epochs >= 1, "trainer.epochs", t.epochs, "an integer >= 1")
    require(t.batch_size >= 1, "trainer.batch_size", t.batch_size, "an integer >= 1")
    require(isinstance(t.precise_bn, int) and t.precise_bn >= 0, "trainer.precise_bn", t.precise_bn,
            "an integer >= 0 (batches; 0 keeps PyTorch's running averages)")
    require(t.eval_batch_size >= 1, "trainer.eval_batch_size", t.eval_batch_size, "an integer >= 1")
    require(math.isfinite(t.lr) and t.lr > 0, "trainer.lr", t.lr, "a finite number > 0, e.g. 0.001")
    require(math.isfinite(t.weight_decay) and t.weight_decay >= 0, "trainer.weight_decay", t.weight_decay,
            "a finite number >= 0, e.g. 0 or 1e-4")
    require(0 <= t.momentum < 1, "trainer.momentum", t.momentum, "a number in [0, 1)")
    require(0 < t.gamma <= 1, "trainer.gamma", t.gamma, "a number in (0, 1]")
    require(t.eval_every >= 1, "trainer.eval_every", t.eval_every, "an integer >= 1")
    if t.patience is not None:
        require(t.patience >= 1, "trainer.patience", t.patience,
                "null (no early stopping) or an integer >= 1")
    require_choice("trainer.optimizer", t.optimizer, OPTIMIZERS)
    require_choice("trainer.scheduler", t.scheduler, SCHEDULERS)


def validate_gpu(g: GpuConfig) -> None:
    require_choice("gpu.device", g.device, DEVICES)
    require_choice("gpu.amp", g.amp, AMP_MODES)
    require(g.num_workers >= 0, "gpu.num_workers", g.num_workers, "an integer >= 0 (0 = one per core)")
    require_choice("gpu.data_on_device", g.data_on_device, DATA_ON_DEVICE)


def validate_imbalance(i: ImbalanceConfig) -> None:
    if i.ratio is not None:
        require(0 < i.ratio <= 1, "imbalance.ratio", i.ratio,
                "null (data as is) or a number in (0, 1]: the majority group's share of the training set")
    if i.size is not None:
        require(i.size >= 1, "imbalance.size", i.size, "null (largest achievable) or an integer >= 1")
    validate_imbalance_splits(list(i.splits))


def validate_imbalance_splits(splits: list) -> None:
    """``imbalance.splits``: distinct names among train, val, test, and ``train`` among them.

    ``train`` is required: ``ratio``, ``majority`` (default: the training split's largest group) and ``size``
    describe the training set, and skewing only the evaluation splits would measure a model trained on one
    population against another, an experiment the imbalance study never ran (its whole subset was skewed).
    """
    accepted = ("a list of distinct split names among train, val, test that includes train: [train] "
                "(default), [train, test] or [train, val, test]")
    require(all(isinstance(s, str) and s in IMBALANCE_SPLITS for s in splits), "imbalance.splits", splits,
            accepted)
    require(len(set(splits)) == len(splits) and "train" in splits, "imbalance.splits", splits, accepted)


def normalise_amp(node: DictConfig) -> None:
    """YAML 1.1 reads a bare ``off`` as False: accept it as the string 'off' (and true/false as strings)."""
    amp = node.get("amp", "off") if node is not None else "off"
    if amp is False or amp is None:
        node.amp = "off"
    on_device = node.get("data_on_device", "auto") if node is not None else "auto"
    if isinstance(on_device, bool):  # YAML true/false for a three-way auto|true|false key
        node.data_on_device = str(on_device).lower()
