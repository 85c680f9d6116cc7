"""Checkpoints (``checkpoints/last.pt``, ``best.pt``): saved atomically with their checksum, loaded verified
and without arbitrary unpickling."""
from __future__ import annotations

import io
from pathlib import Path

import torch

from fairrun.rundir.atomic import atomic_write
from fairrun.rundir.checksums import read_verified
from fairrun.rundir.errors import IntegrityError, cure_for, parse_reason


def save_checkpoint(state: dict, path: Path) -> None:
    """Atomically save a checkpoint of tensors, numbers, strings, lists and dicts, with its checksum.

    It is serialised in memory first, so a full disk is an OSError (ENOSPC) naming the file rather
    than torch's errno-less ``inline_container.cc`` message.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue(), checksum=True)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint safely (``weights_only=True``: no arbitrary unpickling) after verifying its checksum.

    A missing, truncated, empty or garbled file is an :class:`IntegrityError` naming the file and the cure.
    """
    path = Path(path)
    data, _ = read_verified(path)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, garbled pickle, empty file: the file is the problem
        size = "empty" if not data else f"{len(data)} bytes"
        raise IntegrityError(f"{path} is not a readable fairrun checkpoint ({size}; {parse_reason(err)}): "
                             f"it is truncated, damaged, or was not written by fairrun. "
                             f"{cure_for(path)}") from err
