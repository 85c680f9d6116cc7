"""Model registry: YAML name -> (config dataclass, builder).

Every architecture is built for a given input (channels, image size) and number of classes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List

import torch
from torch import nn

from fairrun.config import require
from fairrun.errors import FairrunError
from fairrun.models.classifier import Classifier


@dataclass
class LogRegConfig:
    """Multinomial logistic regression on raw pixels."""

    name: str = "logreg"


@dataclass
class MLPConfig:
    """Dropout -> 500 -> BN -> ReLU -> 250 -> BN -> ReLU -> classes (the FairFace notebook's MLP)."""

    name: str = "mlp"
    hidden: List[int] = field(default_factory=lambda: [500, 250])
    dropout: float = 0.2

    def validate(self) -> None:
        require(0 <= self.dropout < 1, "model.dropout", self.dropout, "a number in [0, 1)")
        require(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "model.hidden",
                self.hidden, "a non-empty list of positive layer widths")


@dataclass
class CNNConfig:
    """A small conv-BN-ReLU network; one 2x downsampling stage per block."""

    name: str = "cnn"
    width: int = 32
    blocks: int = 3

    def validate(self) -> None:
        require(self.width >= 1, "model.width", self.width, "an integer >= 1")
        require(1 <= self.blocks <= 6, "model.blocks", self.blocks, "an integer in 1..6")


@dataclass
class ResNetConfig:
    """torchvision ResNet; small inputs (< 96 px) get a 3x3 stride-1 stem without max-pooling."""

    name: str = "resnet18"
    pretrained: bool = False


def _logreg(cfg: LogRegConfig, channels: int, size: int, num_classes: int) -> Classifier:
    return Classifier(nn.Flatten(), channels * size * size, num_classes)


def _mlp(cfg: MLPConfig, channels: int, size: int, num_classes: int) -> Classifier:
    layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(cfg.dropout)]
    width = channels * size * size
    for hidden in cfg.hidden:
        layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        width = hidden
    return Classifier(nn.Sequential(*layers), width, num_classes)


def _cnn(cfg: CNNConfig, channels: int, size: int, num_classes: int) -> Classifier:
    blocks = min(cfg.blocks, max(1, size.bit_length() - 3))  # keep at least 4x4 spatial resolution
    layers: list[nn.Module] = []
    width_in, width = channels, cfg.width
    for _ in range(blocks):
        layers += [
            nn.Conv2d(width_in, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        width_in, width = width, width * 2
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), width_in, num_classes)


# name -> (torchvision builder, weights enum); torchvision is imported when a ResNet is built (its import
# pulls in torch._dynamo: seconds at every start-up otherwise)
_RESNETS = {"resnet18": ("resnet18", "ResNet18_Weights"), "resnet34": ("resnet34", "ResNet34_Weights"),
            "resnet50": ("resnet50", "ResNet50_Weights")}


def _pretrained_state(name: str) -> dict:
    """ImageNet weights from the local torch hub cache; never downloads."""
    import torchvision

    weights = getattr(torchvision.models, _RESNETS[name][1]).IMAGENET1K_V1
    filename = Path(weights.url).name
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not path.is_file():
        raise FairrunError(
            f"model.pretrained=true needs the torchvision ImageNet weights for {name} at {path}, and that "
            f"file is missing. fairrun never downloads: on a machine with internet run "
            f"`python -c \"import torchvision; torchvision.models.{name}(weights='IMAGENET1K_V1')\"` and copy "
            f"{filename} into {path.parent} (or set TORCH_HOME), or use model.pretrained=false."
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def _resnet(cfg: ResNetConfig, channels: int, size: int, num_classes: int) -> Classifier:
    import torchvision

    net = getattr(torchvision.models, _RESNETS[cfg.name][0])(weights=None)
    if cfg.pretrained:
        net.load_state_dict(_pretrained_state(cfg.name))
    if size < 96 or channels != 3:
        net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
        if size < 96:
            net.maxpool = nn.Identity()
    latent_dim = net.fc.in_features
    net.fc = nn.Identity()
    return Classifier(net, latent_dim, num_classes)


_BUILDERS: dict[str, Callable[..., Classifier]] = {
    "logreg": _logreg,
    "mlp": _mlp,
    "cnn": _cnn,
    "resnet18": _resnet,
    "resnet34": _resnet,
    "resnet50": _resnet,
}

MODEL_SCHEMAS: dict[str, type] = {
    "logreg": LogRegConfig,
    "mlp": MLPConfig,
    "cnn": CNNConfig,
    "resnet18": ResNetConfig,
    "resnet34": ResNetConfig,
    "resnet50": ResNetConfig,
}


def build_model(cfg, channels: int, image_size: int, num_classes: int) -> Classifier:
    """Build the classifier named by ``cfg.name`` for (channels, image_size) inputs."""
    return _BUILDERS[cfg.name](cfg, channels, image_size, num_classes)
