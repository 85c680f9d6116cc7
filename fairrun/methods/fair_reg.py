"""Fair regularisation: the mean cross-entropy plus a decaying, differentiable group-gap penalty.

Objective for one batch (the FairFace notebook's fair regularisation, with the differentiable gaps
of FFB: Han et al., "FFB: A Fair Fairness Benchmark for In-Processing Group Fairness Methods",
ICLR 2024)::

    loss(θ) = CE(θ) + λ(t) · P(θ)

with ``λ(t) = lam · (decay_start + (decay_end - decay_start) · t / (T - 1))`` at training step ``t``
of ``T`` (a linear decay over the whole run; ``method.decay=false`` keeps ``λ = lam``). The penalty
``P`` depends on ``method.kind``; all of them use only the groups present in the batch:

* ``loss``: ``P = Σ_g w_g (L_g - L)²``, ``L_g`` the mean cross-entropy of group ``g`` in the batch and
  ``L`` the batch's mean cross-entropy; ``w_g`` from ``method.group_weights`` (default all 1).
* ``accuracy``: ``P = Σ_g w_g (A_g - A)²`` with the *soft* accuracy ``A_g`` = mean probability given to
  the true class in group ``g`` (``A`` over the batch). The notebook computed its accuracy penalty from
  arg-max counts, which has no gradient (the term only shifted the loss value); fairrun uses this
  differentiable surrogate instead, so the penalty actually trains the model.
* ``dp``: DiffDP, the gap in mean predicted positive-class probability ``m_g = mean p(y=1 | x)``
  between groups.
* ``eopp``: DiffEOpp, the same gap among the samples with ``y = 1`` (a soft TPR gap).

For ``dp``/``eopp`` with two groups ``P = (m_0 - m_1)²`` (``method.gap=squared``) or ``|m_0 - m_1|``
(``absolute``, FFB's form). With more groups ``P = Σ_g d(m_g - m)``, ``m`` the mean over all (for
``eopp``: all positive) samples of the batch and ``d`` the square or the absolute value. ``dp`` and
``eopp`` need a binary target (class 1 = positive).

λ(t) is a pure function of the step, set in :meth:`on_step`; the current value is in the method
state (``lam_t``), so a resumed run continues with exactly the same schedule.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from fairrun.core.validation import require, require_choice
from fairrun.core.errors import ConfigError
from fairrun.methods.base import Batch, Method, Outputs
from fairrun.methods.registry import register

KINDS = ("loss", "accuracy", "dp", "eopp")
GAPS = ("squared", "absolute")


@dataclass
class FairRegConfig:
    """``method=fair_reg`` keys (see ``conf/method/fair_reg.yaml``)."""

    name: str = "fair_reg"
    kind: str = "loss"  # penalty P, over the groups present in the batch:
    lam: float = 10.0  # penalty weight λ, >= 0 (the notebook used 10)
    # kind=loss/accuracy: w_g, one number >= 0 per group in group order, e.g. [1, 10]
    group_weights: Optional[list[float]] = None
    gap: str = "squared"  # dp/eopp: squared (m_0 − m_1)² | absolute |m_0 − m_1| (FFB's form);
    decay: bool = True  # λ decays linearly over the run's training steps; false = λ stays lam
    decay_start: float = 1.0  # λ at the first step = lam · decay_start
    decay_end: float = 0.01  # λ at the last step = lam · decay_end

    def validate(self) -> None:
        require_choice("method.kind", self.kind, KINDS)
        require(self.lam >= 0, "method.lam", self.lam, "a number >= 0")
        require_choice("method.gap", self.gap, GAPS)
        require(self.decay_start >= 0, "method.decay_start", self.decay_start, "a number >= 0")
        require(self.decay_end >= 0, "method.decay_end", self.decay_end, "a number >= 0")
        if self.group_weights is not None:
            require(self.kind in ("loss", "accuracy"), "method.group_weights", self.group_weights,
                    "null with method.kind=dp or eopp (group weights apply to kind=loss and accuracy)")
            require(len(self.group_weights) >= 1 and all(w >= 0 for w in self.group_weights)
                    and sum(self.group_weights) > 0, "method.group_weights", self.group_weights,
                    "null (all 1) or a list of numbers >= 0, one per group, not all 0")


def group_means(values: torch.Tensor, groups: torch.Tensor, num_groups: int,
                mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group means of ``values`` (differentiable) over the rows selected by ``mask``.

    Returns ``(means, present)``: ``means[g]`` is 0 where group ``g`` has no selected row, and
    ``present[g]`` says whether it has one.
    """
    w = torch.ones_like(values) if mask is None else mask.to(values.dtype)
    zeros = torch.zeros(num_groups, dtype=values.dtype, device=values.device)
    counts = zeros.index_add(0, groups, w)
    sums = zeros.index_add(0, groups, values * w)
    present = counts > 0
    return sums / counts.clamp_min(1), present


def deviation_penalty(means: torch.Tensor, present: torch.Tensor, overall: torch.Tensor,
                      weights: Optional[torch.Tensor] = None, gap: str = "squared") -> torch.Tensor:
    """``Σ_{g present} w_g d(means_g - overall)``, ``d`` = square or absolute value."""
    dev = means - overall
    dev = dev.square() if gap == "squared" else dev.abs()
    if weights is not None:
        dev = dev * weights
    return (dev * present.to(dev.dtype)).sum()


def positive_gap_penalty(p: torch.Tensor, groups: torch.Tensor, num_groups: int, gap: str,
                         mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """DiffDP / DiffEOpp of the positive-class probabilities ``p`` (rows in ``mask`` only).

    Two groups: ``d(m_0 - m_1)`` (0 unless both are present); more groups: ``Σ_g d(m_g - m)``.
    """
    means, present = group_means(p, groups, num_groups, mask)
    if num_groups == 2:
        if not bool(present.all()):
            return p.sum() * 0.0
        diff = means[0] - means[1]
        return diff.square() if gap == "squared" else diff.abs()
    selected = p if mask is None else p[mask]
    if selected.numel() == 0:
        return p.sum() * 0.0
    return deviation_penalty(means, present, selected.mean(), gap=gap)


def decayed_lambda(lam: float, step: int, total_steps: int, start: float, end: float, decay: bool) -> float:
    """λ(t): ``lam·start`` at step 0 falling linearly to ``lam·end`` at the last step (or ``lam``)."""
    if not decay:
        return float(lam)
    frac = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
    return float(lam) * (start + (end - start) * frac)


@register
class FairReg(Method):
    """Fair regularisation: ``CE + λ(t)·P``, ``P`` a differentiable group-gap penalty.

    ``method.kind``: ``loss`` (``P = Σ_g w_g (L_g - L)²``), ``accuracy`` (``Σ_g w_g (A_g - A)²`` with
    the soft accuracy A_g = mean p(true class); unlike the FairFace notebook's arg-max count, which
    has no gradient), ``dp`` (DiffDP) and ``eopp`` (DiffEOpp): gaps in mean positive-class
    probability, overall or among y=1 (Han et al., FFB, ICLR 2024). λ(t) decays linearly from
    ``lam·decay_start`` to ``lam·decay_end`` over the run's steps. Full formulas: module docstring.
    """

    name = "fair_reg"
    Config = FairRegConfig

    def __init__(self, cfg, *, num_classes: int, num_groups: int):
        super().__init__(cfg, num_classes=num_classes, num_groups=num_groups)
        if cfg.kind in ("dp", "eopp") and num_classes != 2:
            raise ConfigError(f"Invalid value for 'method.kind': {cfg.kind!r}. Accepted: loss or accuracy "
                              f"with a {num_classes}-class target (dp and eopp need a binary target).")
        if cfg.group_weights is not None and len(cfg.group_weights) != num_groups:
            raise ConfigError(f"Invalid value for 'method.group_weights': {list(cfg.group_weights)!r}. "
                              f"Accepted: null or a list of {num_groups} numbers >= 0 (one per group, "
                              f"in group order).")
        self.lam_t = decayed_lambda(cfg.lam, 0, 1, cfg.decay_start, cfg.decay_end, cfg.decay)

    def on_step(self, step: int, total_steps: int) -> None:
        self.lam_t = decayed_lambda(self.cfg.lam, step, total_steps, self.cfg.decay_start, self.cfg.decay_end,
                                    self.cfg.decay)

    def penalty(self, outputs: Outputs, batch: Batch) -> torch.Tensor:
        """The unweighted penalty ``P`` of ``method.kind`` on one batch."""
        logits, y, g, kind = outputs.logits.float(), batch.y, batch.g, self.cfg.kind
        if kind in ("loss", "accuracy"):
            if kind == "loss":
                values = F.cross_entropy(logits, y, reduction="none")
            else:
                values = torch.softmax(logits, dim=1).gather(1, y[:, None]).squeeze(1)
            means, present = group_means(values, g, self.num_groups)
            weights = None if self.cfg.group_weights is None else \
                torch.tensor(self.cfg.group_weights, dtype=values.dtype, device=values.device)
            return deviation_penalty(means, present, values.mean(), weights, "squared")
        p = torch.softmax(logits, dim=1)[:, 1]
        mask = (y == 1) if kind == "eopp" else None
        return positive_gap_penalty(p, g, self.num_groups, self.cfg.gap, mask=mask)

    def loss(self, outputs: Outputs, batch: Batch) -> torch.Tensor:
        base = super().loss(outputs, batch)
        if self.lam_t == 0:
            return base
        return base + self.lam_t * self.penalty(outputs, batch)

    def state_dict(self) -> dict:
        return {"lam_t": self.lam_t}

    def load_state_dict(self, state: dict) -> None:
        self.lam_t = float(state.get("lam_t", self.lam_t))
