"""The device a run trains on, and seeding: small helpers every layer that trains something uses
(the classifier loop, the GAN, the VAE)."""
from __future__ import annotations

import random

import numpy as np
import torch

from fairrun.core.errors import FairrunError


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so a run is reproducible."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(gpu_cfg) -> torch.device:
    """``gpu.device``: auto -> CUDA if available else CPU; cuda without a GPU is a clear error."""
    if gpu_cfg.device == "cuda" and not torch.cuda.is_available():
        raise FairrunError("gpu=cuda was requested but no CUDA device is available "
                           f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}). "
                           "Use gpu=auto or gpu=cpu.")
    if gpu_cfg.device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")
