"""Evaluation: model scores on a split -> predictions -> fairness metrics -> one results row."""
from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import torch

from fairrun.data.base import LabeledSplit
from fairrun.data.batches import to_float
from fairrun.metrics import group_metrics


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
    ``y_pred`` is the arg-max class (for binary targets: y_score > 0.5).
    """
    y_pred = proba.argmax(dim=1).numpy()
    score = proba[:, 1] if proba.shape[1] == 2 else proba.max(dim=1).values
    return pd.DataFrame({
        "split": split_name,
        "index": np.arange(len(split)),
        "y_true": split.y.numpy(),
        "y_score": score.numpy(),
        "y_pred": y_pred,
        "group": pd.Categorical.from_codes(split.g.numpy(), categories=split.group_names),
    })


def metrics_from_predictions(pred: pd.DataFrame, group_names: list[str], num_classes: int) -> dict:
    """All fairness metrics of one split from its predictions table."""
    binary = num_classes == 2
    return group_metrics(
        pred["y_true"].to_numpy(), pred["y_pred"].to_numpy(), pred["group"].cat.codes.to_numpy(),
        scores=pred["y_score"].to_numpy() if binary else None,
        group_names=group_names, n_groups=len(group_names), num_classes=num_classes,
    )


def evaluate_split(model, method, split: LabeledSplit, split_name: str, batch_size: int,
                   device: torch.device, amp: str = "off", channels_last: bool = False):
    """Evaluate one split: returns (metrics dict, predictions DataFrame)."""
    proba = predict_proba(model, method, split, batch_size, device, amp, channels_last)
    pred = predictions_frame(split, proba, split_name)
    return metrics_from_predictions(pred, split.group_names, split.num_classes), pred
