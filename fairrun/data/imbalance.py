"""Imbalanced training sets: the majority group makes up a chosen share of the training split.

Used for the imbalance study (CelebA, Smiling, female share r in 1 ... 0.5, 30,000 images, the
target kept 50/50 inside each group): by default (``imbalance.splits=[train]``) applied to the training
split only, sampled without replacement with the run's seed; validation and test keep their natural
distribution so the minority is still measured. ``imbalance.splits=[train, val, test]`` (or
``[train, test]``) skews the named evaluation splits alike, as the original study did (its test set was
cut from the same skewed subset): see :func:`apply_imbalance_to_splits`.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from fairrun.data.base import LabeledSplit
from fairrun.core.errors import ConfigError

log = logging.getLogger(__name__)

EVALUATION_SPLITS = ("val", "test")
MIN_EVALUATION_ROWS = 30  # fewer rows of a group in a skewed evaluation split: a warning (per-group metrics)
_SPLIT_STREAM = 0x1B5  # evaluation-split sampling seeds: SeedSequence([seed, _SPLIT_STREAM, split index])


def group_shares(num_groups: int, majority: int, ratio: float) -> torch.Tensor:
    """Target share per group: ``ratio`` for the majority, ``1 - ratio`` split equally among the rest."""
    shares = torch.full((num_groups,), (1.0 - ratio) / max(num_groups - 1, 1), dtype=torch.float64)
    shares[majority] = ratio
    return shares


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` integers that differ by at most one (earlier parts larger)."""
    return [total // parts + (1 if k < total % parts else 0) for k in range(parts)]


def _majority(train: LabeledSplit, cfg, available: torch.Tensor) -> int:
    if cfg.majority is None:
        return int(available.argmax())
    if cfg.majority in train.group_names:
        return train.group_names.index(cfg.majority)
    raise ConfigError(f"Unknown group imbalance.majority={cfg.majority!r}. "
                      f"Groups of this protected attribute: {', '.join(train.group_names)}.")


def _cell_name(train: LabeledSplit, k: int, c: int | None) -> str:
    group = f"group '{train.group_names[k]}'"
    return group if c is None else f"{group} with label '{train.class_names[c]}'"


def _wanted_cells(train: LabeledSplit, shares: torch.Tensor, majority: int, size: int,
                  balance_target: bool, cells: torch.Tensor) -> torch.Tensor:
    """Images wanted per (group, label) cell; -1 means 'all group members, any label'."""
    per_group = torch.floor(shares * size + 1e-9).long()
    per_group[majority] += size - int(per_group.sum())  # rounding remainder goes to the majority
    wanted = torch.full((train.num_groups, train.num_classes if balance_target else 1), -1, dtype=torch.long)
    for k in range(train.num_groups):
        if balance_target:
            wanted[k] = torch.tensor(split_evenly(int(per_group[k]), train.num_classes))
        else:
            wanted[k, 0] = per_group[k]  # group-level count, stored in column 0
    return wanted


def apply_imbalance(train: LabeledSplit, cfg, seed: int, *, reference: LabeledSplit | None = None,
                    largest: bool = False) -> LabeledSplit:
    """Subsample ``train`` so that group ``cfg.majority`` (default: the largest) has share ``cfg.ratio``.

    With ``cfg.balance_target`` every group is also split equally between the target classes (the
    imbalance study's 50/50 Smiling inside each gender); with ``cfg.ratio`` null and
    ``balance_target`` the groups keep their natural shares. The size is ``cfg.size`` or, by default
    or with ``largest``, the largest achievable without replacement. ``reference``: the split whose
    largest group is the default majority (default: ``train`` itself; an evaluation split passes the
    training split, so that all splits favour the same group). Raises ConfigError naming the cell
    (group, and label when balancing), the images needed and those available when a size or ratio
    cannot be met, or when the largest achievable subset is empty. Returns ``train`` unchanged when
    there is nothing to do.
    """
    balance = bool(getattr(cfg, "balance_target", False))
    if cfg.ratio is None and not balance:
        return train
    n_groups, n_classes = train.num_groups, train.num_classes
    available = torch.bincount(train.g, minlength=n_groups)
    where = "the training split" if train.name == "train" else f"the {train.name} split"
    if balance:
        cells = torch.bincount(train.g * n_classes + train.y, minlength=n_groups * n_classes).reshape(
            n_groups, n_classes)
    else:
        cells = available[:, None]  # one column: the group, any label
    if cfg.ratio is None:
        majority = int(available.argmax())
        shares = available.double() / available.sum()
    else:
        majority = _majority(train, cfg, available if reference is None else
                             torch.bincount(reference.g, minlength=n_groups))
        shares = group_shares(n_groups, majority, cfg.ratio)
    # per-sample share of each cell: share of the group (split evenly over labels when balancing)
    if cfg.size is None or largest:
        if balance:
            feasible = [cells[k, c].item() * n_classes / shares[k].item()
                        for k in range(n_groups) for c in range(n_classes) if shares[k] > 0]
        else:
            feasible = [available[k].item() / shares[k].item() for k in range(n_groups) if shares[k] > 0]
        size = int(min(feasible) + 1e-6)
        if balance:  # integer rounding of the per-label split may need one image fewer per cell
            while size > 0 and (_wanted_cells(train, shares, majority, size, True, cells) > cells).any():
                size -= 1
        if size == 0 and largest:
            raise ConfigError(
                f"imbalance.splits includes {train.name}, but {where} has no image of a cell that "
                f"imbalance.ratio={cfg.ratio}{' with imbalance.balance_target=true' if balance else ''} "
                f"needs (group x label counts: {cells.tolist()}), so no subset of it has these shares. Leave "
                f"{train.name} out of imbalance.splits.")
    else:
        size = cfg.size
    wanted = _wanted_cells(train, shares, majority, size, balance, cells)
    for k in range(n_groups):
        for c in range(n_classes if balance else 1):
            have = cells[k, c] if balance else available[k]
            if wanted[k, c] > have:
                raise ConfigError(
                    f"imbalance.ratio={cfg.ratio}{' with imbalance.balance_target=true' if balance else ''} and "
                    f"a training set of {size} images needs {int(wanted[k, c])} images of "
                    f"{_cell_name(train, k, c if balance else None)} but {where} has only "
                    f"{int(have)}. Lower imbalance.size or leave it null (largest achievable)."
                )
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for k in range(n_groups):
        for c in range(n_classes if balance else 1):
            mask = (train.g == k) & (train.y == c) if balance else train.g == k
            members = torch.nonzero(mask).flatten()
            chosen.append(members[torch.randperm(len(members), generator=generator)[: int(wanted[k, c])]])
    index = torch.sort(torch.cat(chosen)).values
    if train.name == "train":
        log.info("imbalance.ratio=%s%s: training on %d of %d images", cfg.ratio,
                 " (target balanced in each group)" if balance else "", len(index), len(train))
    else:
        log.info("imbalance.ratio=%s%s: %s split skewed alike, %d of %d images", cfg.ratio,
                 " (target balanced in each group)" if balance else "", train.name, len(index), len(train))
    return train.subset(index)


def evaluation_seed(seed: int, split: str) -> int:
    """The sampling seed of evaluation split ``split`` (val or test): a 63-bit function of (seed, split) that
    differs from the training split's (which uses ``seed`` itself, as before ``imbalance.splits`` existed)."""
    sequence = np.random.SeedSequence([seed, _SPLIT_STREAM, EVALUATION_SPLITS.index(split)])
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))


def skewed_splits(cfg) -> list[str]:
    """The splits that ``cfg`` (an ImbalanceConfig) changes, in train, val, test order: none when it has
    neither a ratio nor balance_target."""
    if cfg.ratio is None and not getattr(cfg, "balance_target", False):
        return []
    wanted = list(getattr(cfg, "splits", ["train"]))
    return [name for name in ("train", *EVALUATION_SPLITS) if name in wanted]


def apply_imbalance_to_splits(splits: dict, cfg, seed: int) -> dict:
    """The splits with ``cfg`` (an ImbalanceConfig) applied to those in ``cfg.splits``; the others unchanged.

    ``train``: :func:`apply_imbalance` with ``seed`` (bit-identical to before ``imbalance.splits``).
    ``val`` / ``test``: the same ``ratio``, ``majority`` (default: the training split's largest group) and
    ``balance_target``, sampled without replacement from that split with :func:`evaluation_seed`; ``size``
    does not apply: each gets the largest subset achievable for the ratio. This reproduces the imbalance
    study's evaluation on skewed data (its test set was cut from the same skewed subset). Logs a warning for
    every group left with fewer than MIN_EVALUATION_ROWS rows in a skewed evaluation split (at r = .999
    the original's test set held ~6 male images, hence accuracies like 33.33 %).
    """
    out = dict(splits)
    names = skewed_splits(cfg)
    if "train" in names:
        out["train"] = apply_imbalance(splits["train"], cfg, seed)
    for name in names:
        if name != "train":
            out[name] = apply_imbalance(splits[name], cfg, evaluation_seed(seed, name),
                                        reference=splits["train"], largest=True)
            warn_small_groups(out[name])
    return out


def warn_small_groups(split: LabeledSplit) -> list[str]:
    """Log a warning naming every group with fewer than MIN_EVALUATION_ROWS rows in the skewed evaluation
    split ``split``; returns those groups' names."""
    counts = torch.bincount(split.g.cpu(), minlength=split.num_groups).tolist()
    small = [name for name, n in zip(split.group_names, counts) if n < MIN_EVALUATION_ROWS]
    if small:
        shown = ", ".join(f"'{name}' {n}" for name, n in zip(split.group_names, counts)
                          if n < MIN_EVALUATION_ROWS)
        log.warning("imbalance.splits: the skewed %s split has fewer than %d rows of group(s) %s: their "
                    "per-group metrics rest on a handful of images (the imbalance study's r = .999 test set "
                    "held ~6 male images, hence accuracies like 33.33 %%). Leave %s out of imbalance.splits "
                    "to measure every group on its natural rows.", split.name, MIN_EVALUATION_ROWS, shown,
                    split.name)
    return small
