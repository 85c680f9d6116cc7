"""Decode image files into a uint8 array: open, crop, resize, once, in parallel worker processes.

This module imports no torch, so the decoding processes start quickly. Workers write their rows
straight into the memory-mapped ``.npy`` file of the cache being built and return only the rows
that failed, with the reason.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

CHUNK = 256  # images per task: big enough to amortise task overhead, small enough for a smooth bar


@dataclass(frozen=True)
class Preprocessing:
    """How a file becomes a ``size`` x ``size`` RGB image.

    ``crop``: ``square`` takes the centred largest square, ``center`` the centred ``crop_size``
    square (CelebA's published pipeline: 178 on 178x218 images, then resize), ``none`` resizes
    the whole image (changing its aspect ratio if it is not square).
    """

    size: int
    crop: str = "square"
    crop_size: Optional[int] = None


def crop_box(width: int, height: int, prep: Preprocessing) -> tuple[float, float, float, float]:
    """The (left, top, right, bottom) region of a width x height image that is resized."""
    if prep.crop == "none":
        return (0.0, 0.0, float(width), float(height))
    side = min(width, height) if prep.crop == "square" else min(prep.crop_size, width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return (left, top, left + side, top + side)


def decode_image(path: str | Path, prep: Preprocessing) -> np.ndarray:
    """One image file as uint8 (3, size, size): RGB, cropped and resized (antialiased bilinear).

    JPEGs are decoded at a reduced DCT scale (PIL's ``draft``) when that still leaves at least
    twice ``size`` pixels in the cropped region, which is several times faster for small target
    sizes and keeps the result within a few grey levels of a full decode.
    """
    with Image.open(path) as image:
        width, height = image.size
        left, top, right, bottom = crop_box(width, height, prep)
        if image.format == "JPEG":
            # keep >= 2x the target size after DCT scaling; the antialiased resize does the rest
            scale = min((right - left), (bottom - top)) / (2 * prep.size)
            if scale >= 2:
                image.draft("RGB", (int(width / scale) + 1, int(height / scale) + 1))
                fx, fy = image.size[0] / width, image.size[1] / height
                left, right = max(0.0, left * fx), min(float(image.size[0]), right * fx)
                top, bottom = max(0.0, top * fy), min(float(image.size[1]), bottom * fy)
        image = image.convert("RGB")
        resized = image.resize((prep.size, prep.size), Image.Resampling.BILINEAR, box=(left, top, right, bottom))
    return np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1)


def decode_rows(npy_path: str, root: str, paths: Sequence[str], start: int,
                prep: Preprocessing) -> list[tuple[int, str]]:
    """Decode ``paths`` into rows ``start …`` of the ``.npy`` file; returns [(row, error)] of failures.

    A failed row is left zero-filled; the caller records it as unreadable.
    """
    array = np.load(npy_path, mmap_mode="r+")
    failures = []
    for offset, rel in enumerate(paths):
        try:
            path = os.path.join(root, rel)
            if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block or never end
                raise OSError(f"{rel} is not a regular file")
            array[start + offset] = decode_image(path, prep)
        except Exception as err:  # any unreadable/corrupt file is reported by name, never fatal here
            failures.append((start + offset, f"{type(err).__name__}: {err}"))
    array.flush()
    del array
    return failures


def decode_task(args: tuple) -> list[tuple[int, str]]:
    """Pool entry point: ``decode_rows(*args)``."""
    return decode_rows(*args)


def available_cores() -> int:
    """CPU cores this process may use (respects affinity masks, e.g. SLURM's cpus-per-task)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1
