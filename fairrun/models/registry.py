"""Model registry: YAML name -> model entry (config dataclass + builder), open to a user's own models.

Every architecture is built for a given input (channels, image size) and number of classes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, List

import torch
from torch import nn

from fairrun.core.errors import ConfigError, FairrunError
from fairrun.models.classifier import Classifier
from fairrun.core.registry import Registry
from fairrun.core.validation import require


@dataclass
class LogRegConfig:
    """Multinomial logistic regression on raw pixels."""

    name: str = "logreg"


@dataclass
class MLPConfig:
    """Dropout -> 500 -> BN -> ReLU -> 250 -> BN -> ReLU -> classes (the FairFace notebook's MLP)."""

    name: str = "mlp"
    hidden: List[int] = field(default_factory=lambda: [500, 250])  # widths of the hidden layers
    dropout: float = 0.2  # dropout on the flattened input (the FairFace notebook's)

    def validate(self) -> None:
        require(0 <= self.dropout < 1, "model.dropout", self.dropout, "a number in [0, 1)")
        require(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "model.hidden",
                self.hidden, "a non-empty list of positive layer widths")


@dataclass
class CNNConfig:
    """A small conv-BN-ReLU network; one 2x downsampling stage per block."""

    name: str = "cnn"
    width: int = 32  # channels of the first block; doubles per block
    blocks: int = 3  # conv-BN-ReLU-maxpool blocks (capped so that at least 4x4 pixels remain)

    def validate(self) -> None:
        require(self.width >= 1, "model.width", self.width, "an integer >= 1")
        require(1 <= self.blocks <= 6, "model.blocks", self.blocks, "an integer in 1..6")


@dataclass
class ResNetConfig:
    """torchvision ResNet; small inputs (< 96 px) get a 3x3 stride-1 stem without max-pooling."""

    name: str = "resnet18"
    pretrained: bool = False  # ImageNet weights from the local torch cache ($TORCH_HOME/hub/checkpoints)


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


class ModelBuilder:
    """A model entry: ``name`` (the YAML name), ``Config`` (its dataclass schema) and :meth:`build`.

    A user's model subclasses this in the user's own module and is selected by ``_target_`` in a YAML of
    the user's config dir (docs/extending.md); the built-in ones below are registered the same way.
    """

    name: ClassVar[str]
    Config: ClassVar[type]

    @staticmethod
    def build(cfg, channels: int, image_size: int, num_classes: int) -> Classifier:
        """The classifier for (channels, image_size) inputs: a backbone and a linear head
        (:class:`~fairrun.models.classifier.Classifier`)."""
        raise NotImplementedError


def _check(entry) -> str | None:
    if not callable(getattr(entry, "build", None)):
        return f"{entry!r} has no build(cfg, channels, image_size, num_classes) returning a fairrun Classifier"
    return None


MODELS = Registry(
    "model",
    "A model is a subclass of fairrun.ModelBuilder with name = \"mine\", Config = a dataclass holding a field "
    "name: str = \"mine\", and a static build(cfg, channels, image_size, num_classes) returning a "
    "fairrun.Classifier (docs/extending.md).",
    _check,
)


def _builtin(name: str, config: type, build: Callable[..., Classifier]) -> type:
    return MODELS.register(type(name, (ModelBuilder,), {"name": name, "Config": config,
                                                         "build": staticmethod(build), "__module__": __name__}))


for _name, _config, _build in (("logreg", LogRegConfig, _logreg), ("mlp", MLPConfig, _mlp),
                               ("cnn", CNNConfig, _cnn), ("resnet18", ResNetConfig, _resnet),
                               ("resnet34", ResNetConfig, _resnet), ("resnet50", ResNetConfig, _resnet)):
    _builtin(_name, _config, _build)


def build_model(cfg, channels: int, image_size: int, num_classes: int) -> Classifier:
    """Build the classifier named by ``cfg.name`` for (channels, image_size) inputs."""
    model = MODELS[cfg.name].build(cfg, channels, image_size, num_classes)
    if not isinstance(model, Classifier):
        raise ConfigError(f"model={cfg.name}: build() returned a {type(model).__name__}, not a fairrun Classifier "
                          f"(a backbone giving the latent vector and a linear head: "
                          f"fairrun.Classifier(backbone, latent_dim, num_classes)).")
    return model
