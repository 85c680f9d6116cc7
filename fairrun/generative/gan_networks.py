"""The built-in GAN's networks (:class:`Generator`, :class:`Discriminator`), sized by the image size S (a
power of two from 16 to 128; k = log2(S) - 2 resolution steps) and a base channel count ``width``:

* generator: linear z -> (C_0, 4, 4) + BatchNorm + ReLU, then k blocks of x2 upsampling (nearest
  + 3x3 conv, or a 4x4 stride-2 ConvTranspose2d with ``gan.upsample=transpose``) + BatchNorm +
  ReLU, then a 3x3 conv to the image channels + tanh (images in [-1, 1]). At resolution
  4 * 2^i it has min(width * 2^(k - i), 8 * width) channels, ``width`` at full size.
* discriminator: the mirror image, without BatchNorm: 3x3 conv from the image + LeakyReLU(0.2),
  k stride-2 4x4 convs + LeakyReLU(0.2), a linear score; optionally spectral norm on every layer.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _levels(image_size: int) -> int:
    return int(round(math.log2(image_size))) - 2


def _channels(width: int, level: int, levels: int) -> int:
    """Channels at resolution 4 * 2^level: width * 2^(levels - level), at most 8 * width."""
    return min(width * 2 ** (levels - level), 8 * width)


class Generator(nn.Module):
    """DCGAN-style generator: z (N, latent_dim) -> images (N, channels, S, S) in [-1, 1]."""

    def __init__(self, latent_dim: int, image_size: int, channels: int = 3, width: int = 16,
                 upsample: str = "nearest"):
        super().__init__()
        levels = _levels(image_size)
        self.start_channels = _channels(width, 0, levels)
        self.fc = nn.Linear(latent_dim, self.start_channels * 16, bias=False)
        self.bn = nn.BatchNorm2d(self.start_channels)
        blocks = []
        for level in range(1, levels + 1):
            c_in, c_out = _channels(width, level - 1, levels), _channels(width, level, levels)
            if upsample == "nearest":
                blocks += [nn.Upsample(scale_factor=2.0, mode="nearest"),
                           nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
            else:
                blocks += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False)]
            blocks += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Conv2d(_channels(width, levels, levels), channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(z.shape[0], self.start_channels, 4, 4)
        x = self.blocks(F.relu(self.bn(x)))
        return torch.tanh(self.to_image(x))


class Discriminator(nn.Module):
    """The generator's mirror image without BatchNorm: images (N, C, S, S) -> one score per image (N,)."""

    def __init__(self, image_size: int, channels: int = 3, width: int = 16, spectral_norm: bool = False):
        super().__init__()
        levels = _levels(image_size)

        def norm(layer: nn.Module) -> nn.Module:
            return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer

        layers = [norm(nn.Conv2d(channels, _channels(width, levels, levels), 3, padding=1)),
                  nn.LeakyReLU(0.2)]
        for level in range(levels, 0, -1):
            layers += [norm(nn.Conv2d(_channels(width, level, levels), _channels(width, level - 1, levels), 4,
                                      stride=2, padding=1)), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.score = norm(nn.Linear(_channels(width, 0, levels) * 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x).flatten(1)).squeeze(1)


def build_networks(cfg, image_size: int, channels: int) -> tuple[Generator, Discriminator]:
    """G and D for ``cfg`` (a :class:`~fairrun.generative.gan.GanConfig`), initialised from ``cfg.seed``
    (DCGAN init: N(0, 0.02) convs, N(1, 0.02) BN)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        generator = Generator(cfg.latent_dim, image_size, channels, cfg.width, cfg.upsample)
        discriminator = Discriminator(image_size, channels, cfg.width, cfg.spectral_norm)
        for module in generator.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(module.weight, 0.0, 0.02)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)
    return generator, discriminator
