"""Batches from in-memory uint8 images: order from a seeded generator, conversion on the device."""
from __future__ import annotations

from typing import Iterator

import torch

from fairrun.data.base import LabeledSplit
from fairrun.methods.base import Batch


def to_float(images: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [-1, 1] on ``device`` (transfer as uint8, convert there)."""
    x = images.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def epoch_order(split: LabeledSplit, seed: int, epoch: int) -> torch.Tensor:
    """Row order of one epoch, a function of (seed, epoch) only, so a resumed run sees the same order.

    With ``split.sample_probs`` set, draws len(split) rows with replacement from that distribution.
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    if split.sample_probs is not None:
        return torch.multinomial(split.sample_probs, len(split), replacement=True, generator=generator)
    return torch.randperm(len(split), generator=generator)


def train_batches(split: LabeledSplit, order: torch.Tensor, batch_size: int, device: torch.device,
                  start_step: int = 0, channels_last: bool = False) -> Iterator[Batch]:
    """Yield the batches of one epoch in ``order``, skipping the first ``start_step`` batches."""
    for start in range(start_step * batch_size, len(order), batch_size):
        index = order[start:start + batch_size]
        weight = split.weights[index].to(device) if split.weights is not None else None
        yield Batch(
            x=to_float(split.images[index], device, channels_last),
            y=split.y[index].to(device),
            g=split.g[index].to(device),
            index=index.to(device),
            weight=weight,
        )


def num_batches(n: int, batch_size: int) -> int:
    """Number of batches in an epoch of n rows (the last one may be smaller)."""
    return (n + batch_size - 1) // batch_size
