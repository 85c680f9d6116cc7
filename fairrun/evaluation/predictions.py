"""Evaluation: model scores on a split -> predictions -> fairness metrics -> one results row."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch

from fairrun.data.base import LabeledSplit
from fairrun.data.batches import to_float
from fairrun.evaluation.decision import apply_threshold, choose_threshold, fit_threshold_optimizer, postprocessed
from fairrun.core.errors import FairrunError
from fairrun.metrics import group_metrics
from fairrun.metrics.bootstrap import SCORE_METRICS, bootstrap_intervals, should_bootstrap_scores

log = logging.getLogger("fairrun")


def autocast(device: torch.device, amp: str):
    """Autocast context for ``gpu.amp`` (bf16 | fp16) on CUDA; a no-op on CPU or with amp=off."""
    if device.type != "cuda" or amp == "off":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


@torch.no_grad()
def predict_proba(model, method, split: LabeledSplit, batch_size: int, device: torch.device,
                  amp: str = "off", channels_last: bool = False) -> torch.Tensor:
    """Class probabilities (N, num_classes), float32 on the CPU, in the split's row order."""
    was_training = model.training
    model.eval()
    chunks = []
    for start in range(0, len(split), batch_size):
        x = to_float(split.images[start:start + batch_size], device, channels_last)
        with autocast(device, amp):
            logits = method.forward(model, x).logits
        chunks.append(torch.softmax(logits.float(), dim=1).cpu())
    model.train(was_training)
    return torch.cat(chunks) if chunks else torch.zeros(0, split.num_classes)


def predictions_frame(split: LabeledSplit, proba: torch.Tensor, split_name: str) -> pd.DataFrame:
    """The predictions table: ``split, index, y_true, y_score, y_pred, group`` (group by name).

    ``y_score`` is P(class 1) for binary targets and the top-class probability otherwise;
    ``y_pred`` is the arg-max class (for binary targets: y_score > 0.5). The target's class names
    (``split.class_names``, e.g. ``not_smiling``, ``smiling`` for the synthetic data) travel in
    ``frame.attrs["class_names"]``: :func:`measure` names the per-cell columns ``acc[<group>,<class>]``
    by them.
    """
    y_pred = proba.argmax(dim=1).numpy()
    score = proba[:, 1] if proba.shape[1] == 2 else proba.max(dim=1).values
    frame = pd.DataFrame({
        "split": split_name,
        "index": np.arange(len(split)),
        "y_true": split.y.numpy(),
        "y_score": score.numpy(),
        "y_pred": y_pred,
        "group": pd.Categorical.from_codes(split.g.numpy(), categories=split.group_names),
    })
    frame.attrs["class_names"] = [str(name) for name in split.class_names]
    return frame


def class_names_of(pred: pd.DataFrame, num_classes: int, class_names=None) -> list[str]:
    """The target's class names for the per-cell columns: ``class_names`` if given, else those
    :func:`predictions_frame` recorded in ``pred.attrs``, else the class ids ``"0"``, ``"1"``, ..."""
    names = class_names if class_names is not None else pred.attrs.get("class_names")
    if names is None or len(names) != max(int(num_classes), 2):
        return [str(c) for c in range(max(int(num_classes), 2))]
    return [str(name) for name in names]


def metrics_from_predictions(pred: pd.DataFrame, group_names: list[str], num_classes: int,
                             class_names=None) -> dict:
    """All fairness metrics of one split from its predictions table (cells named as
    :func:`class_names_of` says)."""
    binary = num_classes == 2
    return group_metrics(
        pred["y_true"].to_numpy(), pred["y_pred"].to_numpy(), pred["group"].cat.codes.to_numpy(),
        scores=pred["y_score"].to_numpy() if binary else None,
        group_names=group_names, n_groups=len(group_names), num_classes=num_classes,
        class_names=class_names_of(pred, num_classes, class_names),
    )


def evaluate_split(model, method, split: LabeledSplit, split_name: str, batch_size: int,
                   device: torch.device, amp: str = "off", channels_last: bool = False):
    """Evaluate one split: returns (metrics dict, predictions DataFrame)."""
    proba = predict_proba(model, method, split, batch_size, device, amp, channels_last)
    pred = predictions_frame(split, proba, split_name)
    return metrics_from_predictions(pred, split.group_names, split.num_classes), pred


@dataclass
class DecisionRule:
    """How scores become decisions for a run: the threshold chosen on validation and, with
    ``postprocess=threshold``, the fitted ThresholdOptimizer (None otherwise / for multi-class)."""

    threshold: Optional[float] = None
    optimizer: Any = None
    seed: int = 0
    bootstrap: int = 1000  # replicates of the percentile-bootstrap intervals (eval.bootstrap)
    confidence: float = 0.95
    bootstrap_scores: Any = "auto"


def with_intervals(metrics: dict, pred: pd.DataFrame, rule: DecisionRule, name: str, group_names: list[str],
                   num_classes: int, class_names=None) -> dict:
    """``metrics`` plus the bootstrap columns ``<metric>_lo/_median/_hi`` of the split's predictions.

    Seeded by the run's seed and the split name (see :mod:`fairrun.metrics.bootstrap`).
    """
    if rule.bootstrap <= 0 or len(pred) == 0:
        return metrics
    scores = pred["y_score"].to_numpy() if num_classes == 2 else None
    if scores is not None and not should_bootstrap_scores(len(pred), rule.bootstrap, rule.bootstrap_scores):
        log.info("%s: no bootstrap intervals for %s (%d rows x %d replicates is above the "
                 "eval.bootstrap_scores=auto budget; set eval.bootstrap_scores=true to compute them)",
                 name, "/".join(SCORE_METRICS), len(pred), rule.bootstrap)
    return {**metrics, **bootstrap_intervals(
        pred["y_true"].to_numpy(), pred["y_pred"].to_numpy(), pred["group"].cat.codes.to_numpy(), scores=scores,
        group_names=group_names, num_classes=num_classes, n_boot=rule.bootstrap, confidence=rule.confidence,
        seed=rule.seed, name=name, score_metrics=rule.bootstrap_scores,
        class_names=class_names_of(pred, num_classes, class_names))}


def fit_decision_rule(val_pred: pd.DataFrame, num_classes: int, eval_cfg, postprocess_cfg, seed: int,
                      threshold: Optional[float] = None) -> DecisionRule:
    """Choose ``eval.threshold`` on the validation predictions and fit post-processing there.

    A ``threshold`` given (e.g. the one saved in best.pt) is reused instead of choosing again.
    Multi-class targets keep the arg-max rule.
    """
    intervals = {} if eval_cfg is None else dict(
        bootstrap=getattr(eval_cfg, "bootstrap", 1000), confidence=getattr(eval_cfg, "confidence", 0.95),
        bootstrap_scores=getattr(eval_cfg, "bootstrap_scores", "auto"))
    if num_classes != 2:
        return DecisionRule(None, None, seed, **intervals)
    if threshold is None:
        threshold = choose_threshold(eval_cfg.threshold if eval_cfg is not None else 0.5, val_pred)
    optimizer = None
    if postprocess_cfg is not None and postprocess_cfg.name == "threshold":
        try:
            optimizer = fit_threshold_optimizer(postprocess_cfg, val_pred)
        except ValueError as err:
            raise FairrunError(f"postprocess=threshold could not be fitted on the validation set: {err}") from None
    return DecisionRule(threshold, optimizer, seed, **intervals)


def measure(pred: pd.DataFrame, rule: DecisionRule, name: str, group_names: list[str],
            num_classes: int, class_names=None) -> list[tuple[str, dict, pd.DataFrame]]:
    """Apply the decision rule to one split's raw predictions and compute its metrics.

    The per-cell columns ``acc[<group>,<class>]`` name the target classes by ``class_names`` or, when
    not given, by the names :func:`predictions_frame` recorded with the predictions (the dataset's
    ``class_names``), falling back to the class ids.

    Returns ``[(name, metrics, predictions)]`` and, with post-processing, a second entry
    ``(name + '_raw', …)`` for the thresholded predictions before post-processing.
    """
    if rule.threshold is not None:
        pred = apply_threshold(pred, rule.threshold)
    extra = {"threshold": rule.threshold if rule.threshold is not None else float("nan")}

    def metrics_of(frame: pd.DataFrame, split_name: str) -> dict:
        point = metrics_from_predictions(frame, group_names, num_classes, class_names)
        return with_intervals({**extra, **point}, frame, rule, split_name, group_names, num_classes,
                              class_names)

    if rule.optimizer is None:
        return [(name, metrics_of(pred, name), pred)]
    try:
        post = postprocessed(rule.optimizer, pred, rule.seed)
    except ValueError as err:
        raise FairrunError(f"postprocess=threshold cannot be applied to split {name}: {err} (every group "
                           f"must be present in the validation set).") from None
    raw_name = f"{name}_raw"
    return [(name, metrics_of(post, name), post), (raw_name, metrics_of(pred, raw_name), pred.assign(split=raw_name))]


def raw_predictions(model, method, split: LabeledSplit, name: str, batch_size: int, device: torch.device,
                    amp: str = "off", channels_last: bool = False) -> pd.DataFrame:
    """The predictions table of a split with the default arg-max decisions (before any rule)."""
    return predictions_frame(split, predict_proba(model, method, split, batch_size, device, amp, channels_last),
                             name)
