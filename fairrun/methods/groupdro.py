"""Group DRO: minimise the worst group's loss with online exponentiated-gradient group weights."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from fairrun.core.validation import require, require_choice
from fairrun.methods.base import Batch, Method, Outputs
from fairrun.methods.registry import register

log = logging.getLogger("fairrun")

GROUPINGS = ("group_label", "group")


@dataclass
class GroupDROConfig:
    """``method=groupdro``: step size ``eta`` of the group weights, the ``groups`` they range over and the
    generalisation adjustment ``adj``."""

    name: str = "groupdro"
    # step size: q_g <- q_g exp(eta (L_g + adj / sqrt(n_g))), then q normalised (paper: 0.01)
    eta: float = 0.01
    groups: str = "group_label"  # group_label: protected group x label cells | group: protected groups only
    adj: float = 0.0  # generalisation adjustment C: C / sqrt(n_g) is added to each group's loss

    def validate(self) -> None:
        require(math.isfinite(self.eta) and self.eta > 0, "method.eta", self.eta, "a number > 0")
        require_choice("method.groups", self.groups, GROUPINGS)
        require(math.isfinite(self.adj) and self.adj >= 0, "method.adj", self.adj,
                "a number >= 0 (0 = no adjustment)")


@register
class GroupDRO(Method):
    """Group distributionally robust optimisation (S. Sagawa, P. W. Koh, T. B. Hashimoto and P. Liang,
    "Distributionally Robust Neural Networks for Group Shifts: On the Importance of Regularization for
    Worst-Case Generalization", ICLR 2020).

    Objective: ``min_θ max_{q ∈ Δ} sum_g q_g (L_g(θ) + C / sqrt(n_g))``, with ``L_g`` the mean
    cross-entropy of group ``g`` (by default a protected group x label cell, ``method.groups``),
    ``n_g`` its training count and ``C = method.adj`` (0: plain group DRO). It is solved online
    (the paper's Algorithm 1, minibatch form of the authors' code): at every step, with ``L_g`` the
    batch's mean loss of each group,

    1. ``q_g <- q_g exp(η (L_g + C / sqrt(n_g)))`` then ``q <- q / sum(q)`` (``η = method.eta``);
    2. the training loss is ``sum_g q_g L_g`` over the groups present in the batch.

    A group absent from a batch has ``L_g = 0`` there (it is not pushed by the loss; the adjustment
    term, a property of the group and not of the batch, still applies, as in the authors' code).
    Groups with no training rows are left out (``q_g = 0``). ``q`` starts uniform, is part of the
    method's state (checkpointed, so a resumed run continues exactly) and is reported as
    ``dro_q[<group>]`` result columns (the value of the kept, best-validation checkpoint).
    """

    name = "groupdro"
    Config = GroupDROConfig

    def __init__(self, cfg, *, num_classes: int, num_groups: int):
        super().__init__(cfg, num_classes=num_classes, num_groups=num_groups)
        per_label = cfg.groups == "group_label"
        self.num_units = num_groups * num_classes if per_label else num_groups
        self.q = torch.full((self.num_units,), 1.0 / self.num_units)
        self.adjustment = torch.zeros(self.num_units)  # C / sqrt(n_g), set by prepare()
        self.unit_names = [str(k) for k in range(self.num_units)]

    def units(self, g: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The DRO group of each sample: its protected group, or its (group, label) cell."""
        return g * self.num_classes + y if self.cfg.groups == "group_label" else g

    def prepare(self, train):
        counts = torch.bincount(self.units(train.g.cpu(), train.y.cpu()), minlength=self.num_units).double()
        present = counts > 0
        self.adjustment = torch.where(present, self.cfg.adj / counts.clamp(min=1).sqrt(),
                                      torch.zeros_like(counts)).float()
        self.q = present.float() / present.sum()
        if self.cfg.groups == "group_label":
            self.unit_names = [f"{g}/{c}" for g in train.group_names for c in train.class_names]
        else:
            self.unit_names = list(train.group_names)
        log.info("groupdro: %d groups (%s), training counts %s, eta=%g, adj=%g", int(present.sum()),
                 self.cfg.groups, ", ".join(f"{n}={int(c)}" for n, c in zip(self.unit_names, counts)),
                 self.cfg.eta, self.cfg.adj)
        return train

    def group_losses(self, losses: torch.Tensor, units: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss per DRO group in the batch (0 where absent) and the mask of groups present."""
        sums = torch.zeros(self.num_units, dtype=losses.dtype, device=losses.device)
        sums = sums.index_add(0, units, losses)
        counts = torch.bincount(units, minlength=self.num_units)
        return sums / counts.clamp(min=1), counts > 0

    def update_q(self, group_loss: torch.Tensor) -> None:
        """One exponentiated-gradient step of the group weights (in place of ``self.q``)."""
        if self.q.device != group_loss.device:
            self.q = self.q.to(group_loss.device)
            self.adjustment = self.adjustment.to(group_loss.device)
        with torch.no_grad():
            q = self.q * torch.exp(self.cfg.eta * (group_loss.detach().float() + self.adjustment))
            self.q = q / q.sum()

    def loss(self, outputs: Outputs, batch: Batch) -> torch.Tensor:
        losses = self.per_sample_loss(outputs, batch)
        group_loss, _ = self.group_losses(losses, self.units(batch.g, batch.y))
        self.update_q(group_loss)
        return (group_loss * self.q).sum()

    def extra_results(self) -> dict:
        return {f"dro_q[{name}]": float(v) for name, v in zip(self.unit_names, self.q.cpu())}

    def after_fit(self, model, val, train=None) -> None:
        log.info("groupdro: group weights q of the kept checkpoint: %s",
                 ", ".join(f"{n}={float(v):.4f}" for n, v in zip(self.unit_names, self.q.cpu())))

    def state_dict(self) -> dict:
        return {"q": self.q.detach().cpu().clone()}

    def load_state_dict(self, state: dict) -> None:
        if "q" in state:
            self.q = state["q"].clone().to(self.adjustment.device)
