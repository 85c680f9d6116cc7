"""FairALM: an augmented Lagrangian on a group fairness constraint, updated once per step.

Lokhande, Akash, Ravi & Singh, "FairALM: Augmented Lagrangian Method for Training Fair Models with
Little Regret", ECCV 2020 (Algorithm 2, "FairALM: DeepNet Classifier"). For the constraint
``c(θ) = μ_0(θ) - μ_1(θ) = 0`` between groups 0 and 1 with surrogates ``μ_s >= 0`` and the
multiplier ``λ`` (``λ_0 = 0``), every step on a batch ``z`` is::

    primal:  θ  ←  θ - τ ∇_θ [ CE(θ) + (λ + η) μ_0(θ) - (λ - η) μ_1(θ) ]
    dual:    λ  ←  λ + η (μ_0(θ) - μ_1(θ))

i.e. the primal objective is ``CE + λ·c + η·(μ_0 + μ_1)``, the augmented term ``η·|c|`` replaced by
its upper bound ``η·(μ_0 + μ_1)``. ``η`` is ``method.eta`` (constant; the authors' code also
grows it by 1.01 per epoch, which is not done here), ``τ`` the trainer's learning rate.

Constraints (``method.constraint``), with the surrogate ``method.surrogate``:

* ``deo`` - the difference in equal opportunity, DEO = |TPR_0 - TPR_1| (fairrun's ``eopp_diff``).
  ``μ_s`` is a soft false-negative rate of group ``s``: the mean of ``1 - p(y=1 | x)`` over its
  samples with ``y = 1`` (``surrogate=probability``; 1 - the soft TPR, so the gap is the soft TPR gap)
  or their mean cross-entropy (``surrogate=cross_entropy``, as in the authors' code). Binary targets.
* ``ddp`` - FairALM's "DDP", which in the FairALM code is the gap in *accuracy* between the groups
  (not fairrun's ``dp_diff``, the selection-rate gap; fairrun reports it as ``acc_gap``): ``μ_s`` is
  the mean of ``1 - p(true class | x)`` (soft error rate) or the mean cross-entropy over group ``s``.

With ``k > 2`` groups there is one constraint (and one multiplier) per group, group ``g`` against
the rest (all other groups pooled): ``c_g = μ_g - μ_{¬g}``; with two groups only ``c_0`` (group 0
against group 1), exactly the paper's form. A constraint whose two sides are not both present in the
batch (e.g. no positive of a rare group) adds nothing to that step and leaves its multiplier as is.

Timing of the dual step: the paper evaluates ``c`` after the primal step on the same batch. The
training loop calls :meth:`loss` once per step, so the dual step after the primal step of batch
``t`` is taken at the start of step ``t + 1``, with the updated weights, on batch ``t + 1`` (the first
step uses ``λ = 0``); it needs no extra forward pass. ``λ`` is method state (``state_dict``), so a
resumed run continues exactly; ``extra_results`` reports it as ``alm_lambda`` (``alm_lambda[g]`` for
``k > 2`` groups).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fairrun.core.validation import require, require_choice
from fairrun.core.errors import ConfigError
from fairrun.methods.base import Batch, Method, Outputs
from fairrun.methods.registry import register

CONSTRAINTS = ("deo", "ddp")
SURROGATES = ("probability", "cross_entropy")


@dataclass
class FairALMConfig:
    """``method=fairalm`` keys (see ``conf/method/fairalm.yaml``)."""

    name: str = "fairalm"
    # deo: TPR gap (fairrun's eopp_diff); μ_s = soft false-negative rate of group s (y=1 only)
    constraint: str = "deo"
    eta: float = 1.0  # η > 0: dual step size and weight of the augmented term η·(μ_0 + μ_1)
    surrogate: str = "probability"  # μ_s from probabilities: mean 1 − p(y=1) (deo) / 1 − p(true class) (ddp)

    def validate(self) -> None:
        require_choice("method.constraint", self.constraint, CONSTRAINTS)
        require(self.eta > 0, "method.eta", self.eta, "a number > 0")
        require_choice("method.surrogate", self.surrogate, SURROGATES)


@register
class FairALM(Method):
    """FairALM (Lokhande et al., ECCV 2020): augmented Lagrangian on the DEO (or accuracy-gap) constraint.

    Primal objective per step ``CE + (λ + η)·μ_0 - (λ - η)·μ_1``, then ``λ ← λ + η·(μ_0 - μ_1)``, with
    ``μ_s`` a soft false-negative rate (``deo``) or soft error rate (``ddp``) of group ``s``. Note: the
    FairALM code's "DDP" is the accuracy gap between groups, not fairrun's ``dp_diff`` (the
    selection-rate gap). Groups ``k > 2``: each group against the rest. Details: module docstring.
    """

    name = "fairalm"
    Config = FairALMConfig

    def __init__(self, cfg, *, num_classes: int, num_groups: int):
        super().__init__(cfg, num_classes=num_classes, num_groups=num_groups)
        if cfg.constraint == "deo" and num_classes != 2:
            raise ConfigError(f"Invalid value for 'method.constraint': 'deo'. Accepted: ddp with a "
                              f"{num_classes}-class target (deo, a TPR gap, needs a binary target).")
        if num_groups < 2:
            raise ConfigError(f"method=fairalm needs at least two groups; the training split has "
                              f"{num_groups}.")
        self.num_constraints = 1 if num_groups == 2 else num_groups
        self.lam = [0.0] * self.num_constraints
        self.step = 0

    def on_step(self, step: int, total_steps: int) -> None:
        self.step = step

    def surrogate_values(self, outputs: Outputs, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample surrogate values and the mask of the samples the constraint is about."""
        logits, y = outputs.logits.float(), batch.y
        if self.cfg.constraint == "deo":
            mask = y == 1
            target = torch.ones_like(y)
        else:
            mask = torch.ones_like(y, dtype=torch.bool)
            target = y
        if self.cfg.surrogate == "cross_entropy":
            values = F.cross_entropy(logits, target, reduction="none")
        else:
            values = 1 - torch.softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
        return values, mask

    def sides(self, outputs: Outputs, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(μ_in, μ_out, defined)``, one entry per constraint ``j``: the surrogate of group ``j`` and of
        the rest (differentiable; 0 where empty), and whether both sides have samples in the batch."""
        values, mask = self.surrogate_values(outputs, batch)
        w = mask.to(values.dtype)
        zeros = torch.zeros(self.num_groups, dtype=values.dtype, device=values.device)
        counts = zeros.index_add(0, batch.g, w)
        sums = zeros.index_add(0, batch.g, values * w)
        rest_counts, rest_sums = counts.sum() - counts, sums.sum() - sums
        inside, outside = sums / counts.clamp_min(1), rest_sums / rest_counts.clamp_min(1)
        defined = (counts > 0) & (rest_counts > 0)
        j = self.num_constraints
        return inside[:j], outside[:j], defined[:j]

    def constraints(self, outputs: Outputs, batch: Batch) -> list:
        """``c_j = μ_j - μ_¬j`` as floats (None where undefined in this batch)."""
        inside, outside, defined = self.sides(outputs, batch)
        return [c if ok else None for c, ok in zip((inside - outside).tolist(), defined.tolist())]

    def dual_step(self, constraint_values: list) -> None:
        """``λ_j ← λ_j + η c_j`` for every constraint defined on the batch (None: skipped)."""
        for j, c in enumerate(constraint_values):
            if c is not None:
                self.lam[j] += self.cfg.eta * c

    def loss(self, outputs: Outputs, batch: Batch) -> torch.Tensor:
        base = super().loss(outputs, batch)
        inside, outside, defined = self.sides(outputs, batch)
        if self.step > 0:  # the dual step that follows the previous primal step (see the module docstring)
            gaps = (inside - outside).detach().tolist()
            self.dual_step([c if ok else None for c, ok in zip(gaps, defined.tolist())])
        lam = torch.tensor(self.lam, dtype=inside.dtype, device=inside.device)
        eta = self.cfg.eta
        terms = (lam + eta) * inside - (lam - eta) * outside
        return base + (terms * defined.to(terms.dtype)).sum()

    def extra_results(self) -> dict:
        if self.num_constraints == 1:
            return {"alm_lambda": self.lam[0]}
        return {f"alm_lambda[{j}]": lam for j, lam in enumerate(self.lam)}

    def state_dict(self) -> dict:
        return {"lam": list(self.lam)}

    def load_state_dict(self, state: dict) -> None:
        if "lam" in state:
            self.lam = [float(v) for v in state["lam"]]
