"""The run directory: atomic writes of results, predictions and checkpoints, and the done marker.

Layout (one per run; one per job in a multirun)::

    results.pkl        one row per evaluated split (pandas DataFrame)
    predictions.pkl    split, index, y_true, y_score, y_pred, group
    run_config.yaml    the validated run config (what `fairrun eval` reloads)
    train_counts.csv   group x label counts of the training set actually used
    checkpoints/       last.pt (every epoch, and on Ctrl-C), best.pt (best validation accuracy)
    tb/                TensorBoard events
    .hydra/            Hydra's composed config and overrides
    done               written last: the run finished
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

RESULTS = "results.pkl"
PREDICTIONS = "predictions.pkl"
RUN_CONFIG = "run_config.yaml"
TRAIN_COUNTS = "train_counts.csv"
DONE = "done"
LAST = Path("checkpoints") / "last.pt"
BEST = Path("checkpoints") / "best.pt"
_UMASK = os.umask(0)
os.umask(_UMASK)


def _atomic(path: Path, write: Callable[[str], Any]) -> None:
    """Write through a temporary file in the same directory, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give results the usual permissions
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_pickle(frame: pd.DataFrame, path: Path) -> None:
    """Atomically pickle a DataFrame: a crash never leaves a truncated file."""
    _atomic(path, frame.to_pickle)


def write_text(text: str, path: Path) -> None:
    """Atomically write a text file."""
    _atomic(path, lambda tmp: Path(tmp).write_text(text))


def save_checkpoint(state: dict, path: Path) -> None:
    """Atomically save a checkpoint made only of tensors, numbers, strings, lists and dicts."""
    _atomic(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint safely (``weights_only=True``: no arbitrary unpickling)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def is_done(run_dir: Path) -> bool:
    """True when the run finished (its results.pkl is complete)."""
    return (Path(run_dir) / DONE).is_file() and (Path(run_dir) / RESULTS).is_file()
