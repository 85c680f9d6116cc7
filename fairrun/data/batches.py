"""Batches from uint8 images: order and augmentation from seeded generators, conversion on the device.

Images stay uint8 until they reach the training device (4x less to move); there they become
float32 in [-1, 1] and, for training, are augmented (random horizontal flip, random crop after
reflect padding). Every random draw is a function of (seed, epoch, batch), so a resumed run sees
exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import torch
import torch.nn.functional as F

from fairrun.data.base import Batch, LabeledSplit


@dataclass(frozen=True)
class Augmentation:
    """Training augmentation applied on the device: ``hflip`` and ``random_crop`` padding (pixels)."""

    hflip: bool = False
    random_crop: int = 0

    @property
    def active(self) -> bool:
        return self.hflip or self.random_crop > 0

    @classmethod
    def from_dataset(cls, cfg) -> "Augmentation":
        """The augmentation a dataset config asks for (``dataset.hflip``, ``dataset.random_crop``)."""
        return cls(bool(getattr(cfg, "hflip", False)), int(getattr(cfg, "random_crop", 0)))


def to_float(images: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [-1, 1] on ``device`` (transfer as uint8, convert there)."""
    x = images.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images (N, C, H, W) left-right, in place; any dtype, any device."""
    flip = torch.nonzero(torch.rand(x.shape[0], generator=generator) < 0.5).flatten().to(x.device)
    if len(flip):  # index_select/index_copy_: several times faster than advanced indexing on the CPU
        x.index_copy_(0, flip, x.index_select(0, flip).flip(3))
    return x


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Pad each side by ``pad`` pixels (reflection) and cut an H x W window at a random offset per image."""
    n, channels, height, width = x.shape
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator).to(x.device)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows = offsets[:, 0, None] + torch.arange(height, device=x.device)
    cols = offsets[:, 1, None] + torch.arange(width, device=x.device)
    padded = padded.gather(2, rows[:, None, :, None].expand(n, channels, height, width + 2 * pad))
    return padded.gather(3, cols[:, None, None, :].expand(n, channels, height, width))


def augment(x: torch.Tensor, aug: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """Randomly flip and crop a float batch (N, C, H, W) on its device; draws come from ``generator``.

    The crop pads each side by ``aug.random_crop`` pixels (reflection) and cuts an H x W window at a
    random offset per image, as in the usual CIFAR/CelebA recipes. Flips are drawn first, then
    offsets, so :func:`train_batches` (which flips the uint8 batch before converting it) gives the
    same result.
    """
    if aug.hflip:
        x = random_flip(x.clone(), generator)
    if aug.random_crop > 0:
        x = random_crop(x, aug.random_crop, generator)
    return x


def epoch_order(split: LabeledSplit, seed: int, epoch: int) -> torch.Tensor:
    """Row order of one epoch, a function of (seed, epoch) only, so a resumed run sees the same order.

    With ``split.sample_probs`` set, draws len(split) rows with replacement from that distribution.
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    if split.sample_probs is not None:
        return torch.multinomial(split.sample_probs, len(split), replacement=True, generator=generator)
    return torch.randperm(len(split), generator=generator)


def batch_generator(seed: int, epoch: int, batch: int) -> torch.Generator:
    """The generator of one batch's augmentation draws (independent of where training resumed)."""
    return torch.Generator().manual_seed((seed * 100_003 + epoch) * 1_000_003 + batch + 7)


def train_batches(split: LabeledSplit, order: torch.Tensor, batch_size: int, device: torch.device,
                  start_step: int = 0, channels_last: bool = False,
                  aug: Optional[Augmentation] = None, seed: int = 0, epoch: int = 0) -> Iterator[Batch]:
    """Yield the batches of one epoch in ``order``, skipping the first ``start_step`` batches.

    Works whether the split lives on the CPU (rows copied per batch) or already on ``device``.
    On the CPU the yielded ``x`` reuses one buffer: use a batch before asking for the next one.
    """
    chunks = (order[start:start + batch_size] for start in range(start_step * batch_size, len(order), batch_size))
    yield from batches_of(split, chunks, device, channels_last, aug, seed, epoch, first_batch=start_step)


def batches_of(split: LabeledSplit, indices: Iterable[torch.Tensor], device: torch.device,
               channels_last: bool = False, aug: Optional[Augmentation] = None, seed: int = 0, epoch: int = 0,
               first_batch: int = 0) -> Iterator[Batch]:
    """Yield one training batch per index tensor in ``indices`` (any sizes, empty ones included).

    Batch ``k`` (counting from ``first_batch``) is augmented with the draws of
    ``batch_generator(seed, epoch, k)``. On the CPU the yielded ``x`` reuses one buffer.
    """
    home = split.y.device
    # On the CPU one float buffer serves every batch: large fresh allocations are mmap-ed and
    # page-faulted each time, which costs more than the conversion itself (CUDA's allocator caches).
    buffer = None
    for number, index in enumerate(indices, start=first_batch):
        index = torch.as_tensor(index, dtype=torch.long).to(home)
        weight = split.weights[index].to(device) if split.weights is not None else None
        images = split.images
        rows = images.index_select(0, index) if isinstance(images, torch.Tensor) else images[index]
        raw = rows.to(device, non_blocking=True)
        generator = batch_generator(seed, epoch, number) if aug is not None and aug.active else None
        if generator is not None and aug.hflip:
            raw = random_flip(raw, generator)  # on uint8: a quarter of the bytes to move
        if device.type == "cpu":
            if buffer is None or buffer.shape[1:] != raw.shape[1:] or buffer.shape[0] < len(raw):
                buffer = torch.empty(raw.shape, dtype=torch.float32)
            x = buffer[:len(raw)].copy_(raw).div_(127.5).sub_(1.0)
        else:
            x = to_float(raw, device)
        if generator is not None and aug.random_crop > 0 and len(x):
            x = random_crop(x, aug.random_crop, generator)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield Batch(
            x=x,
            y=split.y[index].to(device),
            g=split.g[index].to(device),
            index=index.to(device),
            weight=weight,
        )


def num_batches(n: int, batch_size: int) -> int:
    """Number of batches in an epoch of n rows (the last one may be smaller)."""
    return (n + batch_size - 1) // batch_size


def move_to_device(split: LabeledSplit, device: torch.device) -> LabeledSplit:
    """The split with images, labels, groups and weights on ``device`` (sampling stays on the CPU)."""
    from dataclasses import replace

    images = split.images.to(device)
    return replace(split, images=images, y=split.y.to(device), g=split.g.to(device),
                   weights=None if split.weights is None else split.weights.to(device))


def available_memory() -> int:
    """Bytes of host memory available to new allocations (Linux MemAvailable; else physical pages)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def load_into_memory(split: LabeledSplit, share: float = 0.5) -> LabeledSplit:
    """Read a split's cached rows into RAM once when they take at most ``share`` of the available memory.

    Batches are then cut from an ordinary tensor; larger splits keep reading rows from the
    memory-mapped cache (the OS page cache still spares the disk after the first epoch).
    """
    images = split.images
    if isinstance(images, torch.Tensor):
        return split
    nbytes = images.shape.numel() * images.dtype.itemsize
    if nbytes > share * available_memory():
        return split
    from dataclasses import replace

    return replace(split, images=images.materialize())


def fits_on_device(split: LabeledSplit, device: torch.device, share: float = 0.5) -> bool:
    """Whether the split's images take at most ``share`` of the device's free memory (CUDA only)."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return split.images.shape.numel() * split.images.dtype.itemsize <= share * free
