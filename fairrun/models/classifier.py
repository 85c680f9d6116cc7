"""The common classifier shape: ``head(features(x))``."""
from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """A backbone producing a latent vector and a linear head producing class logits."""

    def __init__(self, backbone: nn.Module, latent_dim: int, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.latent_dim = latent_dim
        self.head = nn.Linear(latent_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The latent representation (input of the head), shape (N, latent_dim)."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (N, num_classes)."""
        return self.head(self.features(x))
