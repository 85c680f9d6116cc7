"""``trainer.optimizer`` and ``trainer.scheduler``: the optimiser and learning-rate schedule of the loop."""
from __future__ import annotations

import torch


def build_optimizer(params, cfg) -> torch.optim.Optimizer:
    """``trainer.optimizer``: adam | sgd (momentum ``trainer.momentum``), with weight decay."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer, cfg, epochs: int):
    """``trainer.scheduler``: none | step (x gamma every epoch) | cosine (over ``epochs``); or None."""
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return None
