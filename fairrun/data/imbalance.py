"""Imbalanced training sets: the majority group makes up a chosen share of the training split.

Used for the imbalance study (CelebA, Smiling, female share r in 1 ... 0.5): applied to the training
split only, sampled without replacement with the run's seed; validation and test keep their natural
distribution so the minority is still measured.
"""
from __future__ import annotations

import logging

import torch

from fairrun.data.base import LabeledSplit
from fairrun.errors import ConfigError

log = logging.getLogger(__name__)


def group_shares(num_groups: int, majority: int, ratio: float) -> torch.Tensor:
    """Target share per group: ``ratio`` for the majority, ``1 - ratio`` split equally among the rest."""
    shares = torch.full((num_groups,), (1.0 - ratio) / max(num_groups - 1, 1), dtype=torch.float64)
    shares[majority] = ratio
    return shares


def apply_imbalance(train: LabeledSplit, cfg, seed: int) -> LabeledSplit:
    """Subsample ``train`` so that group ``cfg.majority`` (default: the largest) has share ``cfg.ratio``.

    The size is ``cfg.size`` or, by default, the largest size achievable without replacement.
    Raises ConfigError naming the group, the images needed and those available when a size or
    ratio cannot be met. Returns ``train`` unchanged when ``cfg.ratio`` is null.
    """
    if cfg.ratio is None:
        return train
    available = torch.bincount(train.g, minlength=train.num_groups)
    if cfg.majority is None:
        majority = int(available.argmax())
    elif cfg.majority in train.group_names:
        majority = train.group_names.index(cfg.majority)
    else:
        raise ConfigError(f"Unknown group imbalance.majority={cfg.majority!r}. "
                          f"Groups of this protected attribute: {', '.join(train.group_names)}.")
    shares = group_shares(train.num_groups, majority, cfg.ratio)
    if cfg.size is None:
        feasible = [available[k].item() / shares[k].item() for k in range(train.num_groups) if shares[k] > 0]
        size = int(min(feasible))
    else:
        size = cfg.size
    wanted = torch.floor(shares * size + 1e-9).long()
    wanted[majority] += size - int(wanted.sum())  # rounding remainder goes to the majority
    for k in range(train.num_groups):
        if wanted[k] > available[k]:
            raise ConfigError(
                f"imbalance.ratio={cfg.ratio} with a training set of {size} images needs {int(wanted[k])} "
                f"images of group '{train.group_names[k]}' but the training split has only "
                f"{int(available[k])}. Lower imbalance.size or leave it null (largest achievable)."
            )
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for k in range(train.num_groups):
        members = torch.nonzero(train.g == k).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[: int(wanted[k])]])
    index = torch.sort(torch.cat(chosen)).values
    log.info("imbalance.ratio=%s: training on %d of %d images", cfg.ratio, len(index), len(train))
    return train.subset(index)
