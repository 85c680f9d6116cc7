"""Domain-independent training: one classifier head per protected group on a shared representation."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fairrun.methods.base import Batch, Method, Outputs
from fairrun.methods.registry import register

log = logging.getLogger("fairrun")


@dataclass
class DomainIndependentConfig:
    """``method=domain_independent`` has no keys besides its name (the groups are the protected groups)."""

    name: str = "domain_independent"


@dataclass
class GroupOutputs(Outputs):
    """:class:`Outputs` plus every group head's logits, ``group_logits`` (N, num_groups, num_classes)."""

    group_logits: torch.Tensor = None


class GroupHeads(nn.Linear):
    """``num_groups`` linear heads in one layer: ``latent -> (N, num_groups * num_classes)`` scores.

    Calling the module returns the *combined* class scores (N, num_classes) used at inference, so
    ``model(x)``, checkpoints and ``fairrun eval`` need nothing special:
    ``combined(x)[y] = mean_d log softmax_y(z_d(x))`` over the groups ``d`` that had training rows
    (buffer ``active``, saved with the model). :meth:`per_group` gives the heads' own logits.
    """

    def __init__(self, in_features: int, num_groups: int, num_classes: int):
        super().__init__(in_features, num_groups * num_classes)
        self.num_groups, self.num_classes = num_groups, num_classes
        self.register_buffer("active", torch.ones(num_groups))

    def per_group(self, latent: torch.Tensor) -> torch.Tensor:
        """Logits of every group's head, shape (N, num_groups, num_classes)."""
        return super().forward(latent).view(-1, self.num_groups, self.num_classes)

    def combine(self, group_logits: torch.Tensor) -> torch.Tensor:
        """The inference scores (N, num_classes): the mean over active heads of their log-probabilities."""
        logp = F.log_softmax(group_logits.float(), dim=2)
        weight = (self.active / self.active.sum()).to(logp.dtype)
        return torch.einsum("ngc,g->nc", logp, weight)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.combine(self.per_group(latent))


@register
class DomainIndependent(Method):
    """Domain-independent training (Z. Wang, K. Qinami, I. C. Karakozis, K. Genova, P. Nair, K. Hata and
    O. Russakovsky, "Towards Fairness in Visual Recognition: Effective Strategies for Bias Mitigation",
    CVPR 2020).

    The model's head is replaced by one linear head per protected group ``d`` on the shared features,
    giving logits ``z_d(x)`` (N x num_classes per head). Training minimises each sample's cross-entropy
    under *its own group's* head only:

        ``L = (1/N) sum_i -log softmax(z_{g_i}(x_i))[y_i]``  (other heads get no gradient from sample i).

    Inference does not need the group (it uses the paper's "sum of per-domain scores" rule,
    ``ŷ = argmax_y sum_d s(y, d, x)``; the authors' code sums the raw head outputs). Here the class
    scores are ``mean_d log softmax(z_d(x))``: for every head, ``log softmax(z_d)_y = z_d[y] - logZ_d`` with
    ``logZ_d`` the same for all classes, so the arg-max equals that of the summed logits exactly and
    even ``softmax`` of these scores equals ``softmax`` of ``(1/G) sum_d z_d``. Log-probabilities are
    used (not raw logits) so that heads whose logits have a larger scale do not dominate the vote
    numerically (the normalisers cancel anyway) and the *mean* (not the sum) keeps
    :func:`fairrun.evaluation.predictions.predict_proba`'s ``softmax`` a calibrated probability - the normalised
    geometric mean of the heads' probabilities - rather than one sharpened G-fold. Heads of groups
    with no training rows are left out of the combination.
    """

    name = "domain_independent"
    Config = DomainIndependentConfig

    def __init__(self, cfg, *, num_classes: int, num_groups: int):
        super().__init__(cfg, num_classes=num_classes, num_groups=num_groups)
        self.active = torch.ones(num_groups)

    def prepare(self, train):
        counts = torch.bincount(train.g.cpu(), minlength=self.num_groups)
        self.active = (counts > 0).float()
        idle = [name for name, n in zip(train.group_names, counts.tolist()) if n == 0]
        if idle:
            log.info("domain_independent: no training rows for group(s) %s; their heads are not used",
                     ", ".join(idle))
        return train

    def adapt_model(self, model: nn.Module) -> nn.Module:
        in_features = getattr(model, "latent_dim", None) or model.head.in_features
        heads = GroupHeads(in_features, self.num_groups, self.num_classes)
        heads.active.copy_(self.active)
        model.head = heads
        return model

    def forward(self, model: nn.Module, x: torch.Tensor) -> GroupOutputs:
        latent = model.features(x)
        group_logits = model.head.per_group(latent)
        return GroupOutputs(latent=latent, logits=model.head.combine(group_logits), group_logits=group_logits)

    def per_sample_loss(self, outputs: GroupOutputs, batch: Batch) -> torch.Tensor:
        """Cross-entropy of each sample under its own group's head."""
        own = outputs.group_logits[torch.arange(len(batch.g), device=batch.g.device), batch.g]
        return F.cross_entropy(own.float(), batch.y, reduction="none")
