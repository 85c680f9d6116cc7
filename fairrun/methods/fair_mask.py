"""Fair feature masking (the FairFace notebook's method): zero the latent units that encode the group.

The classifier gets a bottleneck of ``method.latent_dim`` units before its head::

    backbone -> Linear(backbone_dim, latent_dim) -> ReLU -> x mask -> head Linear(latent_dim, classes)

and is trained with the plain (ERM) cross-entropy, the mask all ones. After training, with the best
checkpoint loaded, every bottleneck unit is scored on the *training* split for how much it depends
on the protected attribute, and the most dependent units are masked (set to 0 for every input):

* ``method.score=corr`` - |Pearson r| between the unit's activation and the group id re-coded by
  rank: groups are ranked by their *validation* accuracy under the unmasked model (rank 0 = the
  least accurate group; ties and groups absent from validation, ranked last, are broken by group
  id), as the notebook did. With two groups the re-coding does not change |r|. A unit that is
  constant on the training split (e.g. a dead ReLU) scores 0.
* ``method.score=logreg`` - a multinomial logistic regression (scikit-learn, L2, C=1) of the group
  on the standardised units; a unit's score is the spread (max - min) of its coefficients across
  the groups. With two groups scikit-learn fits a single coefficient row, and the score is its
  absolute value |coef| (equal to the spread of the symmetric two-row parameterisation).

The units masked are those scoring above ``method.threshold``, or the ``method.top_k`` highest
(exactly one of the two is set). With fewer than two groups in the training split nothing can be
scored: every score is 0 and nothing is masked (a warning is logged).

The mask is a buffer of the model (``bottleneck.mask``), so it is saved in ``best.pt`` and
``fairrun eval`` reproduces the masked results. results.pkl gets, besides the masked ``val`` and
``test`` rows, ``val_unmasked`` / ``test_unmasked`` rows evaluated with the mask set to ones, and the
columns ``masked_units`` (comma-separated unit indices) and ``n_masked``. The scores and masked
units are also kept in the method state of the checkpoint and written to ``fair_mask.json`` in the
run directory by :meth:`FairMask.write_files`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from fairrun.core.validation import require, require_choice
from fairrun.data.batches import to_float
from fairrun.core.errors import ConfigError, FairrunError
from fairrun.methods.base import Method
from fairrun.methods.registry import register
from fairrun.models.classifier import Classifier

log = logging.getLogger("fairrun")

SCORES = ("corr", "logreg")
REPORT_FILE = "fair_mask.json"
_BATCH = 512  # rows per forward pass when reading bottleneck activations


@dataclass
class FairMaskConfig:
    """``method=fair_mask`` keys (see the module docstring)."""

    name: str = "fair_mask"
    latent_dim: int = 32  # bottleneck units (Linear -> ReLU -> mask) before the head
    score: str = "corr"  # corr | logreg: how a unit's dependence on the protected attribute is scored
    top_k: Optional[int] = 4  # mask the top_k highest-scoring units ...
    # ... or every unit scoring above threshold (set exactly one; the other null)
    threshold: Optional[float] = None

    def validate(self) -> None:
        require(self.latent_dim >= 1, "method.latent_dim", self.latent_dim, "an integer >= 1")
        require_choice("method.score", self.score, SCORES)
        if (self.top_k is None) == (self.threshold is None):
            raise ConfigError(
                f"method=fair_mask needs exactly one of 'method.top_k' and 'method.threshold', got "
                f"top_k={self.top_k!r} and threshold={self.threshold!r}. To mask by threshold, pass e.g. "
                f"method.threshold=0.3 method.top_k=null; to mask a fixed number, method.top_k=4 "
                f"method.threshold=null.")
        if self.top_k is not None:
            require(0 <= self.top_k <= self.latent_dim, "method.top_k", self.top_k,
                    f"null or an integer from 0 to method.latent_dim ({self.latent_dim})")
        if self.threshold is not None:
            require(math.isfinite(self.threshold) and self.threshold >= 0, "method.threshold", self.threshold,
                    "null or a number >= 0 (corr scores lie in [0, 1])")


class MaskedBottleneck(nn.Module):
    """Linear -> ReLU -> multiply by the ``mask`` buffer (ones while training; zeros mask units).

    The Linear layer gets He (Kaiming-normal, fan-in) weights and zero bias, the usual initialisation
    before a ReLU: with PyTorch's default (a 6x smaller weight variance) the bottleneck shrank the
    signal, many units never activated, and on the synthetic data training stayed near chance for
    several epochs.
    """

    def __init__(self, in_dim: int, latent_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, latent_dim)
        nn.init.kaiming_normal_(self.linear.weight, nonlinearity="relu")
        nn.init.zeros_(self.linear.bias)
        self.register_buffer("mask", torch.ones(latent_dim))

    def unmasked(self, z: torch.Tensor) -> torch.Tensor:
        """Bottleneck activations before the mask, (N, latent_dim)."""
        return torch.relu(self.linear(z))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.unmasked(z)
        return h * self.mask.to(h.dtype)


class BottleneckClassifier(Classifier):
    """``head(mask * relu(bottleneck(backbone(x))))``: a Classifier whose latent is the masked bottleneck."""

    def __init__(self, backbone: nn.Module, backbone_dim: int, latent_dim: int, num_classes: int):
        super().__init__(backbone, latent_dim, num_classes)
        self.backbone_dim = backbone_dim
        self.bottleneck = MaskedBottleneck(backbone_dim, latent_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The masked bottleneck activations (N, latent_dim): the head's input."""
        return self.bottleneck(self.backbone(x))


def find_classifier(model: nn.Module) -> BottleneckClassifier:
    """The :class:`BottleneckClassifier` in ``model`` (the model itself, or inside a wrapper)."""
    found = [m for m in model.modules() if isinstance(m, BottleneckClassifier)]
    if len(found) != 1:
        raise FairrunError(f"method=fair_mask expected one bottleneck classifier in the model, found "
                           f"{len(found)}; was the model built through FairMask.adapt_model?")
    return found[0]


@torch.no_grad()
def bottleneck_activations(model: nn.Module, images, batch_size: int = _BATCH) -> torch.Tensor:
    """Unmasked bottleneck activations (N, latent_dim) of ``images`` (uint8), float32 on the CPU.

    Eval mode, no gradients, batched, on the model's device; the training mode is restored.
    """
    clf = find_classifier(model)
    device = next(clf.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for start in range(0, images.shape[0], batch_size):
            x = to_float(images[start:start + batch_size], device)
            chunks.append(clf.bottleneck.unmasked(clf.backbone(x)).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.zeros(0, clf.bottleneck.mask.numel())


@torch.no_grad()
def group_accuracy(model: nn.Module, split, batch_size: int = _BATCH) -> np.ndarray:
    """Per-group accuracy (num_groups,) of the model on ``split``; NaN for groups without rows."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    preds = []
    try:
        for start in range(0, len(split), batch_size):
            x = to_float(split.images[start:start + batch_size], device)
            preds.append(model(x).argmax(dim=1).cpu())
    finally:
        model.train(was_training)
    pred = torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)
    correct = (pred == split.y.cpu()).double()
    g = split.g.cpu()
    n = torch.bincount(g, minlength=split.num_groups).double()
    hits = torch.bincount(g, weights=correct, minlength=split.num_groups)
    acc = (hits / n).numpy()
    acc[n.numpy() == 0] = np.nan
    return acc


def accuracy_rank(accuracy: np.ndarray) -> np.ndarray:
    """Rank of each group by accuracy: 0 = least accurate; NaN (no rows) last; ties by group id."""
    keys = [(math.isnan(a), 0.0 if math.isnan(a) else a, k) for k, a in enumerate(accuracy)]
    order = sorted(range(len(accuracy)), key=lambda k: keys[k])
    rank = np.empty(len(accuracy), dtype=np.int64)
    rank[order] = np.arange(len(accuracy))
    return rank


def corr_scores(latent: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """|Pearson r| of each column of ``latent`` (N, d) with ``codes`` (N,); 0 where a side is constant."""
    a = np.asarray(latent, dtype=np.float64)
    c = np.asarray(codes, dtype=np.float64)
    a = a - a.mean(axis=0)
    c = c - c.mean()
    denom = np.sqrt((a ** 2).sum(axis=0) * (c ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * c[:, None]).sum(axis=0) / denom
    r = np.where(denom > 1e-12, np.abs(r), 0.0)
    return np.clip(r, 0.0, 1.0)


def logreg_scores(latent: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per unit: spread (max - min) of its multinomial logistic-regression coefficients across groups.

    The units are standardised first (constant units stay 0 and score 0). For two groups,
    scikit-learn fits one coefficient row and the score is |coef|.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(np.asarray(latent, dtype=np.float64))
    fit = LogisticRegression(C=1.0, max_iter=2000).fit(x, np.asarray(groups))
    coef = fit.coef_
    if coef.shape[0] == 1:
        return np.abs(coef[0])
    return coef.max(axis=0) - coef.min(axis=0)


def choose_units(scores: np.ndarray, top_k: Optional[int], threshold: Optional[float]) -> list[int]:
    """Indices (ascending) of the units to mask: score > threshold, or the top_k highest (ties: lower id)."""
    scores = np.asarray(scores, dtype=np.float64)
    if threshold is not None:
        chosen = np.flatnonzero(scores > threshold)
    else:
        chosen = np.argsort(-scores, kind="stable")[:top_k]
    return sorted(int(i) for i in chosen)


def _json_safe(value):
    """``value`` with NaN floats replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@register
class FairMask(Method):
    """Fair feature masking: ERM with a latent bottleneck, then zero the units most tied to the group."""

    name = "fair_mask"
    Config = FairMaskConfig

    def __init__(self, cfg, *, num_classes: int, num_groups: int):
        super().__init__(cfg, num_classes=num_classes, num_groups=num_groups)
        self.bottleneck: Optional[MaskedBottleneck] = None
        self.scores: list[float] = []
        self.masked_units: list[int] = []
        self.group_names: list[str] = []
        self.val_group_acc: list[float] = []
        self.group_rank: list[int] = []

    # -- architecture ------------------------------------------------------------------------
    def adapt_model(self, model: nn.Module) -> nn.Module:
        """Insert the masked bottleneck before a new head (the model's own head is replaced)."""
        if isinstance(model, BottleneckClassifier):
            self.bottleneck = model.bottleneck
            return model
        if not isinstance(model, Classifier):
            raise FairrunError(f"method=fair_mask needs a fairrun Classifier (backbone + head), got "
                               f"{type(model).__name__}.")
        adapted = BottleneckClassifier(model.backbone, model.latent_dim, self.cfg.latent_dim,
                                       model.head.out_features)
        self.bottleneck = adapted.bottleneck
        return adapted

    # -- masking -----------------------------------------------------------------------------
    def _set_mask(self, bottleneck: MaskedBottleneck, units: list[int]) -> None:
        bottleneck.mask.fill_(1.0)
        if units:
            bottleneck.mask[torch.tensor(units, dtype=torch.long, device=bottleneck.mask.device)] = 0.0

    def after_fit(self, model: nn.Module, val, train=None) -> None:
        """Score every unit on the training split and mask the chosen ones (idempotent: starts unmasked)."""
        if train is None:
            raise FairrunError("method=fair_mask scores the bottleneck units on the training split, "
                               "but after_fit was called without it.")
        bottleneck = self.bottleneck = find_classifier(model).bottleneck
        self._set_mask(bottleneck, [])  # score the unmasked model (also after a resumed finish)
        self.group_names = list(val.group_names)
        acc = group_accuracy(model, val)
        rank = accuracy_rank(acc)
        self.val_group_acc = [float(a) for a in acc]
        self.group_rank = [int(r) for r in rank]
        g = train.g.cpu().numpy()
        present = np.unique(g)
        if len(present) < 2:
            log.warning("method=fair_mask: the training split has %d group(s); nothing can be scored and "
                        "no unit is masked", len(present))
            scores = np.zeros(bottleneck.mask.numel())
            units: list[int] = []
        else:
            latent = bottleneck_activations(model, train.images).numpy()
            if self.cfg.score == "corr":
                scores = corr_scores(latent, rank[g])
            else:
                scores = logreg_scores(latent, g)
            units = choose_units(scores, self.cfg.top_k, self.cfg.threshold)
        self.scores = [float(s) for s in scores]
        self.masked_units = units
        self._set_mask(bottleneck, units)
        log.info("fair_mask (%s): masked %d of %d units %s; validation accuracy rank of groups %s",
                 self.cfg.score, len(units), len(scores), units,
                 dict(zip(self.group_names, self.group_rank)))

    @contextlib.contextmanager
    def unmasked(self):
        """Temporarily set the mask to ones (the model as trained); restores it on exit."""
        if self.bottleneck is None:
            raise FairrunError("method=fair_mask has no model yet (adapt_model was not called).")
        saved = self.bottleneck.mask.clone()
        self.bottleneck.mask.fill_(1.0)
        try:
            yield
        finally:
            self.bottleneck.mask.copy_(saved)

    def evaluation_variants(self) -> dict:
        return {"unmasked": self.unmasked}

    def extra_results(self) -> dict:
        return {"masked_units": ",".join(map(str, self.masked_units)), "n_masked": len(self.masked_units)}

    def report(self) -> dict:
        """What :meth:`write_files` writes: settings, masked units, every unit's score, group ranks."""
        return {
            "score": self.cfg.score, "latent_dim": self.cfg.latent_dim, "top_k": self.cfg.top_k,
            "threshold": self.cfg.threshold, "masked_units": list(self.masked_units),
            "scores": list(self.scores),
            "val_group_accuracy": dict(zip(self.group_names, self.val_group_acc)),
            "group_rank": dict(zip(self.group_names, self.group_rank)),
        }

    def write_files(self, run_dir: Path) -> None:
        """Write ``fair_mask.json`` (see :meth:`report`) into the run directory."""
        from fairrun import rundir

        text = json.dumps(_json_safe(self.report()), indent=2)
        rundir.write_text(text + "\n", Path(run_dir) / REPORT_FILE)

    # -- checkpoint state --------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"scores": list(self.scores), "masked_units": list(self.masked_units),
                "group_names": list(self.group_names), "val_group_acc": list(self.val_group_acc),
                "group_rank": list(self.group_rank)}

    def load_state_dict(self, state: dict) -> None:
        self.scores = [float(s) for s in state.get("scores", [])]
        self.masked_units = [int(u) for u in state.get("masked_units", [])]
        self.group_names = list(state.get("group_names", []))
        self.val_group_acc = [float(a) for a in state.get("val_group_acc", [])]
        self.group_rank = [int(r) for r in state.get("group_rank", [])]
