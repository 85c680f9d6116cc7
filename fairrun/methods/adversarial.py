"""Adversarial debiasing: an adversary predicts the group; gradient reversal makes the model defeat it.

Zhang, Lemoine & Mitchell, "Mitigating Unwanted Biases with Adversarial Learning", AIES 2018 (an
adversary on the prediction, given the true label for equalised odds); Wang et al., "Balanced
Datasets Are Not Enough: Estimating and Mitigating Gender Bias in Deep Image Representations",
ICCV 2019 (adversarial removal of the protected attribute from the image representation); the
gradient reversal layer of Ganin & Lempitsky, "Unsupervised Domain Adaptation by
Backpropagation", ICML 2015.

An adversary MLP ``a_φ`` (``method.adv_layers`` hidden ReLU layers of ``method.adv_hidden`` units;
0 layers = a linear adversary) predicts the group ``g`` from ``u``:

* ``method.input=latent``: the representation ``z`` (head input), to remove the group from it;
* ``method.input=logits``: the logits (demographic parity: the prediction carries no group);
* ``method.input=logits_label``: the logits and the one-hot true label (equalised odds, Zhang et al.).

With the gradient reversal layer ``R_α`` (identity forward, gradient × ``-α`` backward) between
the classifier and the adversary, the one objective::

    loss(θ, φ) = CE(θ) + CE_adv(a_φ(R_α(u_θ)), g)

makes a single optimizer step train the adversary to predict the group (descent on φ) and the
classifier to fit the target while *maximising* the adversary's loss with weight α (the reversed
gradient on θ): the min-max ``min_θ max_φ CE(θ) - α·CE_adv(θ, φ)``. ``method.adv_balance=true``
averages the adversary's loss over the groups present in the batch (each group counts equally), so a
rare group is not ignored by an adversary that can reach a low loss by always answering the majority.

``α`` ramps linearly from 0 to ``method.alpha`` over the first ``method.warmup`` fraction of the
run's steps (the adversary already learns then; the classifier is not pushed yet). The adversary is
an extra module: it joins the (single) optimizer at ``trainer.lr`` and is saved in ``last.pt``.
Zhang et al.'s projection term (removing the part of the classifier's gradient that helps the
adversary) and extra adversary-only updates per step need separate gradients or optimizers, which
the one-optimizer training loop does not have; they are not implemented.

``extra_results`` adds ``adv_acc`` and ``adv_balanced_acc``: exponential moving averages (0.9 per
step) of the adversary's accuracy and group-balanced accuracy on the training batches, as they were
at the selected (best) checkpoint. Near chance (balanced 1/k) means the group is hidden from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fairrun.core.validation import require, require_choice
from fairrun.core.errors import ConfigError
from fairrun.methods.base import Batch, Method, Outputs
from fairrun.methods.registry import register

INPUTS = ("latent", "logits", "logits_label")
_EMA = 0.9


@dataclass
class AdversarialConfig:
    """``method=adversarial`` keys (see ``conf/method/adversarial.yaml``)."""

    name: str = "adversarial"
    # u, what the adversary sees: latent (the representation; removes the group from it)
    input: str = "latent"
    # gradient reversal strength α >= 0 (weight of the adversary's loss for the classifier)
    alpha: float = 1.0
    adv_hidden: int = 64  # adversary hidden width
    adv_layers: int = 2  # adversary hidden ReLU layers (0 = a linear adversary, as in Zhang et al.)
    # true: the adversary's loss averages the groups present in the batch (each group
    adv_balance: bool = False
    warmup: float = 0.0  # fraction of the run's training steps over which α ramps linearly from 0 (0 = none)

    def validate(self) -> None:
        require_choice("method.input", self.input, INPUTS)
        require(self.alpha >= 0, "method.alpha", self.alpha, "a number >= 0")
        require(self.adv_hidden >= 1, "method.adv_hidden", self.adv_hidden, "an integer >= 1")
        require(self.adv_layers >= 0, "method.adv_layers", self.adv_layers, "an integer >= 0 (0 = linear)")
        require(0 <= self.warmup < 1, "method.warmup", self.warmup,
                "a number in [0, 1): the fraction of training steps over which alpha ramps up from 0")


class GradientReversal(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by ``-alpha`` in the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.alpha * grad, None


def grad_reverse(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """``R_alpha(x)``: x unchanged, gradient reversed and scaled by ``alpha``."""
    return GradientReversal.apply(x, float(alpha))


def make_adversary(in_dim: int, hidden: int, layers: int, num_groups: int) -> nn.Sequential:
    """An MLP ``in_dim -> [hidden, ReLU] x layers -> num_groups`` group logits."""
    blocks, width = [], in_dim
    for _ in range(layers):
        blocks += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    blocks.append(nn.Linear(width, num_groups))
    return nn.Sequential(*blocks)


def warmup_alpha(alpha: float, step: int, total_steps: int, warmup: float) -> float:
    """α at ``step``: ramps from 0 over the first ``warmup`` fraction of ``total_steps``, then ``alpha``."""
    ramp = warmup * total_steps
    if ramp <= 0 or step >= ramp:
        return float(alpha)
    return float(alpha) * step / ramp


@register
class Adversarial(Method):
    """Adversarial debiasing with a gradient reversal layer (Zhang et al., AIES 2018; Wang et al., ICCV 2019).

    ``min_θ max_φ CE(θ) - α·CE_adv(a_φ(u_θ), g)``, trained in one optimizer step as
    ``CE(θ) + CE_adv(a_φ(R_α(u_θ)), g)`` with the gradient reversal layer ``R_α``; ``u`` is the latent
    representation, the logits, or the logits and one-hot label (``method.input``). Details: module docstring.
    """

    name = "adversarial"
    Config = AdversarialConfig

    def __init__(self, cfg, *, num_classes: int, num_groups: int):
        super().__init__(cfg, num_classes=num_classes, num_groups=num_groups)
        if num_groups < 2:
            raise ConfigError("method=adversarial needs at least two groups in the protected attribute; "
                              f"the training split has {num_groups}.")
        self.adversary: nn.Module | None = None
        self.alpha_t = warmup_alpha(cfg.alpha, 0, 1, cfg.warmup)
        self.adv_acc = math.nan
        self.adv_balanced_acc = math.nan

    def input_dim(self, latent_dim: int) -> int:
        """Width of the adversary's input for ``method.input``."""
        return {"latent": latent_dim, "logits": self.num_classes,
                "logits_label": 2 * self.num_classes}[self.cfg.input]

    def adapt_model(self, model: nn.Module) -> nn.Module:
        """Leaves the model as is and builds the adversary for its latent width."""
        latent_dim = getattr(model, "latent_dim", None)
        if latent_dim is None and self.cfg.input == "latent":
            raise ConfigError("method.input=latent needs a model with a latent representation (latent_dim); "
                              "use method.input=logits or logits_label.")
        self.adversary = make_adversary(self.input_dim(latent_dim or 0), self.cfg.adv_hidden,
                                        self.cfg.adv_layers, self.num_groups)
        return model

    def extra_modules(self) -> list[nn.Module]:
        return [] if self.adversary is None else [self.adversary]

    def on_step(self, step: int, total_steps: int) -> None:
        self.alpha_t = warmup_alpha(self.cfg.alpha, step, total_steps, self.cfg.warmup)

    def adversary_input(self, outputs: Outputs, batch: Batch) -> torch.Tensor:
        """``u``: what the adversary sees (before the gradient reversal)."""
        if self.cfg.input == "latent":
            return outputs.latent.float()
        logits = outputs.logits.float()
        if self.cfg.input == "logits":
            return logits
        return torch.cat([logits, F.one_hot(batch.y, self.num_classes).to(logits.dtype)], dim=1)

    def adversary_loss(self, adv_logits: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the group prediction: per-sample mean, or mean of group means (adv_balance)."""
        losses = F.cross_entropy(adv_logits, g, reduction="none")
        if not self.cfg.adv_balance:
            return losses.mean()
        zeros = torch.zeros(self.num_groups, dtype=losses.dtype, device=losses.device)
        counts = zeros.index_add(0, g, torch.ones_like(losses))
        sums = zeros.index_add(0, g, losses)
        present = counts > 0
        return (sums[present] / counts[present]).mean()

    def _track(self, adv_logits: torch.Tensor, g: torch.Tensor) -> None:
        """Update the moving averages of the adversary's accuracy and group-balanced accuracy."""
        with torch.no_grad():
            hit = (adv_logits.argmax(dim=1) == g).float()
            counts = torch.bincount(g, minlength=self.num_groups).float()
            hits = torch.bincount(g, weights=hit, minlength=self.num_groups)
            present = counts > 0
            acc, balanced = torch.stack([hit.mean(), (hits[present] / counts[present]).mean()]).tolist()
        if math.isnan(self.adv_acc):
            self.adv_acc, self.adv_balanced_acc = acc, balanced
        else:
            self.adv_acc = _EMA * self.adv_acc + (1 - _EMA) * acc
            self.adv_balanced_acc = _EMA * self.adv_balanced_acc + (1 - _EMA) * balanced

    def loss(self, outputs: Outputs, batch: Batch) -> torch.Tensor:
        if self.adversary is None:
            raise RuntimeError("Adversarial.adapt_model must be called before training (it builds the "
                               "adversary)")
        task = super().loss(outputs, batch)
        adv_logits = self.adversary(grad_reverse(self.adversary_input(outputs, batch), self.alpha_t))
        self._track(adv_logits, batch.g)
        return task + self.adversary_loss(adv_logits.float(), batch.g)

    def extra_results(self) -> dict:
        return {"adv_acc": self.adv_acc, "adv_balanced_acc": self.adv_balanced_acc}

    def state_dict(self) -> dict:
        return {"alpha_t": self.alpha_t, "adv_acc": self.adv_acc, "adv_balanced_acc": self.adv_balanced_acc}

    def load_state_dict(self, state: dict) -> None:
        self.alpha_t = float(state.get("alpha_t", self.alpha_t))
        self.adv_acc = float(state.get("adv_acc", self.adv_acc))
        self.adv_balanced_acc = float(state.get("adv_balanced_acc", self.adv_balanced_acc))
