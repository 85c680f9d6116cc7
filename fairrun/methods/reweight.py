"""Reweighting: per-sample loss weights computed from the training split's group x label counts."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import pandas as pd
import torch

from fairrun.core.validation import require_choice
from fairrun.methods.base import Method
from fairrun.methods.registry import register

log = logging.getLogger("fairrun")

SCHEMES = ("group_label", "group", "label")


@dataclass
class ReweightConfig:
    """``method=reweight``: which weighting ``scheme`` to use (see :class:`Reweight`)."""

    name: str = "reweight"
    scheme: str = "group_label"  # group_label | group | label

    def validate(self) -> None:
        require_choice("method.scheme", self.scheme, SCHEMES)


def cell_counts(train) -> torch.Tensor:
    """Training counts per (group, label) cell, float64 (num_groups, num_classes)."""
    cell = train.g.cpu() * train.num_classes + train.y.cpu()
    n = torch.bincount(cell, minlength=train.num_groups * train.num_classes)
    return n.reshape(train.num_groups, train.num_classes).double()


def weight_table(counts: torch.Tensor, scheme: str) -> torch.Tensor:
    """Weight of every (group, label) cell, shape (num_groups, num_classes); empty cells get 0.

    * ``group_label`` - Kamiran & Calders (2012) reweighing: ``w(g, y) = P(g) P(y) / P(g, y)``
      (the weight that makes group and label independent in the weighted training set);
    * ``group`` - inverse group frequency, ``w(g) = N / (G' n_g)`` with ``G'`` the non-empty groups,
      so every group carries the same total weight and the mean weight per sample is 1;
    * ``label`` - class-balanced, inverse class frequency ``w(y) = N / (C' n_y)``.

    With every cell non-empty all three schemes have a per-sample mean of exactly 1.
    """
    total = counts.sum()
    n_g, n_y = counts.sum(dim=1, keepdim=True), counts.sum(dim=0, keepdim=True)
    if scheme == "group_label":
        expected = n_g * n_y / total  # N P(g) P(y)
        table = expected / counts.clamp(min=1)
    elif scheme == "group":
        table = (total / ((n_g > 0).sum() * n_g.clamp(min=1))).expand_as(counts)
    elif scheme == "label":
        table = (total / ((n_y > 0).sum() * n_y.clamp(min=1))).expand_as(counts)
    else:
        raise ValueError(f"unknown reweighting scheme {scheme!r}")
    return torch.where(counts > 0, table, torch.zeros_like(table))


@register
class Reweight(Method):
    """Weighted empirical risk: minimise ``sum_i w(g_i, y_i) l(f(x_i), y_i) / sum_i w(g_i, y_i)``.

    ``method.scheme`` picks the weights (computed once in :meth:`prepare` from the training split
    actually used, i.e. after imbalance sampling):

    * ``group_label`` (default): ``w(g, y) = P(g) P(y) / P(g, y)``, the *reweighing* of F. Kamiran and
      T. Calders, "Data preprocessing techniques for classification without discrimination",
      Knowledge and Information Systems 33(1), 2012. Under these weights the protected group and
      the label are statistically independent.
    * ``group``: inverse group frequency, ``w(g) ∝ 1 / n_g`` normalised to a per-sample mean of 1,
      so every group contributes the same total weight.
    * ``label``: class-balanced weights, ``w(y) ∝ 1 / n_y`` (mean 1).

    Empty (group, label) cells get weight 0 (they have no samples), never NaN. No data is copied:
    the weights travel with each batch (``Batch.weight``) and the base loss uses them.
    """

    name = "reweight"
    Config = ReweightConfig

    def __init__(self, cfg, *, num_classes: int, num_groups: int):
        super().__init__(cfg, num_classes=num_classes, num_groups=num_groups)
        self.table: pd.DataFrame | None = None

    def prepare(self, train):
        counts = cell_counts(train)
        table = weight_table(counts, self.cfg.scheme)
        self.table = pd.DataFrame(table.numpy(), index=pd.Index(train.group_names, name="group"),
                                  columns=pd.Index(train.class_names, name="label"))
        log.info("reweight (scheme=%s): loss weight per group x label cell:\n%s", self.cfg.scheme,
                 self.table.to_string(float_format=lambda v: f"{v:.4g}"))
        weights = table.float()[train.g.cpu(), train.y.cpu()].to(train.y.device)
        return dataclasses.replace(train, weights=weights)
