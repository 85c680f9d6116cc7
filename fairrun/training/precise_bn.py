"""Precise BatchNorm: population statistics for the weights being evaluated, not a lagging average.

In training mode a BatchNorm layer normalises with each batch's own mean and variance and keeps an
exponential moving average of them (PyTorch's ``momentum=0.1``: the last ~10 steps weigh most) for eval
mode. The average mixes statistics of *earlier* weights; when the weights still move quickly (few steps
per epoch, a high learning rate, a sampler that changes the batch composition), the eval-mode network is
not the network that was trained: it can predict one class where the same weights with batch statistics
are accurate. Wu & Johnson ("Rethinking 'Batch' in BatchNorm", 2021, section 3) call this the EMA's
inaccuracy and fix it by *PreciseBN*: before evaluating, recompute every BatchNorm's running mean and
variance as plain averages over many training batches under the current, frozen weights.

fairrun does this before every validation (``trainer.precise_bn`` batches; 0 turns it off), so the
checkpoint chosen on validation, best.pt, stores the statistics of its own weights. The batches are
those training would draw in that epoch (the method's sampler, e.g. ``method=resample``'s balanced
draws, and the dataset's augmentation), re-drawn from their (seed, epoch, batch) generators, so the
training stream itself is untouched and a resumed run stays exact.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

BATCHNORMS = (nn.modules.batchnorm._BatchNorm,)


def batchnorm_layers(model: nn.Module) -> list[nn.Module]:
    """The BatchNorm layers of ``model`` (1d, 2d, 3d, SyncBatchNorm) that track running statistics."""
    return [m for m in model.modules() if isinstance(m, BATCHNORMS) and m.track_running_stats]


@torch.no_grad()
def recompute_batchnorm_statistics(model: nn.Module, forward: Callable[[torch.Tensor], object],
                                   batches: Iterable, max_batches: int) -> int:
    """Replace each BatchNorm layer's ``running_mean`` and ``running_var`` with the average of the batch
    means and (unbiased) batch variances over the first ``max_batches`` non-empty batches of ``batches``,
    computed with the model's current weights (PreciseBN, Wu & Johnson 2021), and return how many
    batches were used.

    ``forward(x)`` runs the model on a batch of images (e.g. the method's forward, which may route
    through extra heads); it runs under ``torch.no_grad`` with the model in training mode, so that only
    the BatchNorm buffers change. Each layer's momentum is set to None for the pass (PyTorch's cumulative
    average: the running value after k batches is the mean of the k batch values) and restored after; the
    model's training flag is restored too. Without BatchNorm layers, or with ``max_batches`` < 1, nothing
    changes and 0 is returned. A batch of one row is skipped (its variance is undefined); when no batch
    is left, or the pass fails, the statistics are left as they were.
    """
    layers = batchnorm_layers(model)
    if not layers or max_batches < 1:
        return 0
    momenta = [m.momentum for m in layers]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in layers]
    was_training = model.training
    used = 0
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        for batch in batches:
            x = batch.x if hasattr(batch, "x") else batch
            if len(x) < 2:
                continue
            forward(x)
            used += 1
            if used >= max_batches:
                break
    finally:
        for m, momentum, (mean, var, count) in zip(layers, momenta, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(count)  # the training step count, not the PreciseBN pass
            if used == 0:  # nothing measured (or an error): the statistics as they were
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
        model.train(was_training)
    return used
