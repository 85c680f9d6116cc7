"""A small convolutional β-VAE for face images (:class:`ConvVAE`) and its objective (:func:`vae_loss`).

Model: the encoder halves the image with stride-2 4x4 convolutions (LeakyReLU 0.2) until it is 4x4,
flattens it and maps it linearly to the mean ``mu`` and log-variance ``logvar`` of a diagonal Gaussian
``q(z|x) = N(mu, diag(exp(logvar)))`` over ``latent_dim`` dimensions; the decoder mirrors it (a linear
layer to 4x4 feature maps, stride-2 4x4 transposed convolutions with ReLU, a ``tanh`` output in [-1, 1],
the range of fairrun's image tensors). Channel widths are ``width``, ``2 width``, ``4 width``, ``8 width``
(then constant) from the input side. No normalisation layers, so the model behaves the same in train and
eval mode. Images whose side is not ``4 * 2^k`` are resized (bilinear) to the nearest such side on the way
in and back on the way out.

Objective, the β-VAE objective (Higgins et al., "β-VAE: Learning Basic Visual Concepts with a Constrained
Variational Framework", ICLR 2017) on the evidence lower bound of Kingma & Welling ("Auto-Encoding
Variational Bayes", ICLR 2014), for a batch of B images x_b with C·H·W values::

    recon_term = (1/B) Σ_b Σ_pixels (x_b − x̂_b)²              x̂_b = decoder(z_b), z_b = mu_b + σ_b·ε
    kl_term    = (1/B) Σ_b ½ Σ_j (mu_bj² + σ_bj² − 1 − log σ_bj²)    = KL(N(mu_b, σ_b²) ‖ N(0, I)), exactly
    total      = recon_term + β · kl_term

The squared error summed over pixels is the Gaussian negative log-likelihood −log N(x; x̂, ½ I) up to an
additive constant (a fixed decoder variance of ½ in the [-1, 1] pixel scale); β = 1 is the plain VAE.

Used by ``fairrun vae train`` (:mod:`fairrun.generative.vae`) and trained jointly with the classifier by
``method=dbvae``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from fairrun.data.base import LabeledSplit
from fairrun.data.batches import to_float


def internal_size(image_size: int) -> int:
    """The side the VAE works at: ``image_size`` if it is ``4 * 2^k`` (k >= 1), else the nearest such side."""
    k = max(1, round(math.log2(max(image_size, 8) / 4)))
    return 4 * 2 ** k


class ConvVAE(nn.Module):
    """Convolutional VAE: stride-2 convs down to 4x4 -> (mu, logvar); a mirrored decoder with tanh output.

    ``channels``/``image_size``: the images (N, channels, image_size, image_size), floats in [-1, 1];
    ``latent_dim``: the dimension of z; ``width``: channels of the first convolution (doubling per layer,
    at most 8x). Details: the module docstring.
    """

    def __init__(self, channels: int, image_size: int, latent_dim: int = 32, width: int = 32):
        super().__init__()
        self.channels, self.image_size, self.latent_dim, self.width = channels, image_size, latent_dim, width
        self.size = internal_size(image_size)
        layers = int(round(math.log2(self.size / 4)))
        widths = [width * 2 ** min(k, 3) for k in range(layers)]
        down, c_in = [], channels
        for c_out in widths:
            down += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.encoder = nn.Sequential(*down, nn.Flatten())
        self.to_stats = nn.Linear(widths[-1] * 16, 2 * latent_dim)
        self.from_latent = nn.Linear(latent_dim, widths[-1] * 16)
        up = []
        for k in range(layers - 1, 0, -1):
            up += [nn.ConvTranspose2d(widths[k], widths[k - 1], 4, stride=2, padding=1), nn.ReLU()]
        up += [nn.ConvTranspose2d(widths[0], channels, 4, stride=2, padding=1), nn.Tanh()]
        self.decoder = nn.Sequential(*up)
        self._last_width = widths[-1]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, C, H, W) in [-1, 1] -> (mu, logvar), each (N, latent_dim)."""
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        mu, logvar = self.to_stats(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (N, latent_dim) -> images (N, C, image_size, image_size) in [-1, 1]."""
        h = F.relu(self.from_latent(z)).view(len(z), self._last_width, 4, 4)
        out = self.decoder(h)
        if self.size != self.image_size:
            out = F.interpolate(out, size=(self.image_size, self.image_size), mode="bilinear",
                                align_corners=False).clamp(-1, 1)
        return out

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor,
                       generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """z = mu + exp(logvar / 2) · ε, ε ~ N(0, I) (from ``generator`` on the CPU when given)."""
        if generator is None:
            eps = torch.randn_like(mu, dtype=torch.float32)
        else:
            eps = torch.randn(mu.shape, generator=generator).to(mu.device)
        return mu.float() + torch.exp(0.5 * logvar.float()) * eps

    def forward(self, x: torch.Tensor, generator: Optional[torch.Generator] = None):
        """(reconstruction of a sampled z, mu, logvar)."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar, generator)), mu, logvar

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic reconstruction decoder(mu)."""
        return self.decode(self.encode(x)[0])


def vae_terms(x: torch.Tensor, recon: torch.Tensor, mu: torch.Tensor,
              logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (summed squared error, KL(N(mu, σ²) ‖ N(0, I))), each shape (N,), in float32."""
    sq = (x.float() - recon.float()).pow(2).flatten(1).sum(dim=1)
    mu, logvar = mu.float(), logvar.float()
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
    return sq, kl


def vae_loss(x: torch.Tensor, recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, recon_term, kl_term) of the β-VAE objective, averaged over the batch.

    ``recon_term = mean_b Σ_pixels (x − recon)²``,
    ``kl_term = mean_b ½ Σ_j (mu² + exp(logvar) − 1 − logvar)``, ``total = recon_term + beta · kl_term``
    (see the module docstring).
    """
    sq, kl = vae_terms(x, recon, mu, logvar)
    recon_term, kl_term = sq.mean(), kl.mean()
    return recon_term + beta * kl_term, recon_term, kl_term


def encode_means(vae: ConvVAE, split: LabeledSplit, device: torch.device,
                 batch_size: int = 512) -> torch.Tensor:
    """The posterior means mu of every row of ``split``: float32 (N, latent_dim) on the CPU.

    Runs in eval mode without gradients, ``batch_size`` rows at a time; the module's mode is restored.
    """
    was_training = vae.training
    vae.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            rows = split.images[start:start + batch_size]
            out.append(vae.encode(to_float(rows, device))[0].float().cpu())
    vae.train(was_training)
    if not out:
        return torch.zeros(0, vae.latent_dim)
    return torch.cat(out)
