"""The built-in GAN: a small DCGAN trained on a split's images (`fairrun gan train`, and a cached stage of
the generative de-biasing methods).

Networks (:class:`Generator`, :class:`Discriminator`) are sized by the image size S (a power of two
from 16 to 128; k = log2(S) - 2 resolution steps) and a base channel count ``width``:

* generator: linear z -> (C_0, 4, 4) + BatchNorm + ReLU, then k blocks of x2 upsampling (nearest
  + 3x3 conv, or a 4x4 stride-2 ConvTranspose2d with ``gan.upsample=transpose``) + BatchNorm +
  ReLU, then a 3x3 conv to the image channels + tanh (images in [-1, 1]). At resolution
  4 * 2^i it has min(width * 2^(k - i), 8 * width) channels, ``width`` at full size.
* discriminator: the mirror image, without BatchNorm: 3x3 conv from the image + LeakyReLU(0.2),
  k stride-2 4x4 convs + LeakyReLU(0.2), a linear score; optionally spectral norm on every layer.

Loss (``gan.loss``):

* ``ns_r1`` (default): the non-saturating logistic loss (D: softplus(D(G(z))) + softplus(-D(x));
  G: softplus(-D(G(z)))) with the R1 gradient penalty gamma/2 * E||grad_x D(x)||^2 on real data
  (Mescheder, Geiger & Nowozin, ICML 2018, "Which Training Methods for GANs do actually
  Converge?"), applied lazily every ``gan.r1_every`` discriminator steps and scaled by that
  interval (as in StyleGAN2), which saves most of its double-backward cost. gamma = 10 worked
  clearly better than 1 or 0.1 on the synthetic faces (less mode collapse).
* ``hinge``: D: relu(1 - D(x)) + relu(1 + D(G(z))); G: -D(G(z)) (usually with
  ``gan.spectral_norm=true`` and ``gan.r1_gamma=0``; the R1 term is added whenever r1_gamma > 0).

Optimiser: Adam with lr 5e-4 and betas (0.0, 0.99) for both networks, as in Mescheder et al.'s
R1 experiments and StyleGAN2 (beta1 = 0 keeps the two players from chasing stale momentum; the
DCGAN betas (0.5, 0.999) collapsed to one face here). The sampled and exported generator is an
exponential moving average of G's weights (``gan.ema``), whose BatchNorm running statistics are
measured again for the averaged weights before every use (G's own statistics do not fit them).

Defaults (width 16, batch 32) are sized for the CPU: at 32 px an epoch over 4000 images takes
about 20 s on one core; on a GPU raise ``gan.width`` (32-64) for sharper images.

Training is deterministic and resumable: the weights are initialised from ``gan.seed``, and all
draws of an epoch (image order, flips, latents) come from a generator seeded with
(``gan.seed``, epoch), so resuming from ``checkpoints/last.pt`` (written atomically after every
epoch) gives exactly the weights of an uninterrupted run on the same device. The output directory::

    generator.pt             the trained generator (TorchScript + fairrun.json metadata; see generators.py)
    gan_config.yaml          the GAN config, training-data summary and fingerprint
    checkpoints/last.pt      G, D, both optimisers, epoch, RNG state, loss history
    samples/epoch_NNN.png    G(z) for a fixed set of 64 latents, every ``gan.sample_every`` epochs
    samples/final.png        the same latents through the exported generator
    samples/real.png         64 training images, for comparison
    tb/                      TensorBoard: losses per epoch and the sample grids
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from fairrun import rundir
from fairrun.core.errors import ConfigError
from fairrun.core.fingerprint import fingerprint as content_fingerprint
from fairrun.core.validation import require, require_choice
from fairrun.data.base import LabeledSplit
from fairrun.data.batches import random_flip, to_float
from fairrun.generative.generators import export_generator, read_metadata, sample_latents
from fairrun.generative.grids import grid_array, save_grid

log = logging.getLogger("fairrun")

LOSSES = ("ns_r1", "hinge")
UPSAMPLING = ("nearest", "transpose")
MIN_IMAGES = 16
SAMPLE_GRID = 64
RECALIBRATION = 2048  # latents that measure the averaged generator's BatchNorm statistics
GENERATOR = "generator.pt"
LAST = Path("checkpoints") / "last.pt"
CONFIG_RECORD = "gan_config.yaml"
# keys that do not change the trained weights (epochs: training to more epochs resumes the same run)
NOT_FINGERPRINTED = ("epochs", "sample_every", "generator")


@dataclass
class GanConfig:
    """The ``gan`` section of ``conf/gan.yaml`` (``fairrun gan train``) and of the GAN-based methods."""

    latent_dim: int = 64  # length of the latent vector z
    width: int = 16  # base channel count: channels at full resolution (x2 per halving, at most 8x)
    epochs: int = 20
    batch_size: int = 32
    lr: float = 5e-4  # Adam learning rate, both networks
    beta1: float = 0.0  # Adam betas (0.0, 0.99): Mescheder et al. 2018 / StyleGAN2
    beta2: float = 0.99
    upsample: str = "nearest"  # G upsampling: nearest (+ 3x3 conv) | transpose (4x4 stride-2 ConvTranspose2d)
    loss: str = "ns_r1"  # ns_r1 (non-saturating + R1 penalty) | hinge
    r1_gamma: float = 10.0  # weight of the R1 penalty gamma/2 E||grad D(x)||^2 (0 = off)
    r1_every: int = 4  # lazy R1: compute the penalty every this many D steps (scaled up to match)
    spectral_norm: bool = False  # spectral normalisation of every discriminator layer
    ema: float = 0.995  # sampled/exported generator = exponential moving average of G's weights (0 = off)
    hflip: bool = True  # random horizontal flips of the training images
    group: Optional[str] = None  # train only on images of this protected group (name)
    label: Optional[str] = None  # train only on images of this target class (name)
    seed: int = 0  # weight init, image order, flips, latents, and the fixed latents of the sample grids
    sample_every: int = 1  # write a sample grid every this many epochs (and after the last)
    generator: Optional[str] = None  # an external generator file for the methods (unused by training)
    image_size: Optional[int] = None  # null = the dataset's; for external generators: the size to use

    def validate(self) -> None:
        """Range checks; raises :class:`ConfigError` naming the ``gan.`` key."""
        def integer(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        require(integer(self.latent_dim) and self.latent_dim >= 1, "gan.latent_dim", self.latent_dim,
                "an integer >= 1 (the length of the latent vector z)")
        require(integer(self.width) and 1 <= self.width <= 1024, "gan.width", self.width,
                "an integer from 1 to 1024 (base channel count)")
        require(integer(self.epochs) and self.epochs >= 1, "gan.epochs", self.epochs, "an integer >= 1")
        require(integer(self.batch_size) and self.batch_size >= 2, "gan.batch_size", self.batch_size,
                "an integer >= 2 (BatchNorm needs two images per batch)")
        require(self.lr > 0, "gan.lr", self.lr, "a number > 0")
        require(0 <= self.beta1 < 1, "gan.beta1", self.beta1, "a number in [0, 1)")
        require(0 <= self.beta2 < 1, "gan.beta2", self.beta2, "a number in [0, 1)")
        require_choice("gan.loss", self.loss, LOSSES)
        require_choice("gan.upsample", self.upsample, UPSAMPLING)
        require(self.r1_gamma >= 0, "gan.r1_gamma", self.r1_gamma, "a number >= 0 (0 = no R1 penalty)")
        require(integer(self.r1_every) and self.r1_every >= 1, "gan.r1_every", self.r1_every,
                "an integer >= 1")
        require(0 <= self.ema < 1, "gan.ema", self.ema, "a number in [0, 1) (0 = no weight averaging)")
        require(integer(self.seed) and self.seed >= 0, "gan.seed", self.seed, "an integer >= 0")
        require(integer(self.sample_every) and self.sample_every >= 1, "gan.sample_every", self.sample_every,
                "an integer >= 1")
        if self.image_size is not None:
            require(integer(self.image_size) and 8 <= self.image_size <= 1024, "gan.image_size",
                    self.image_size, "null (the dataset's image size) or an integer from 8 to 1024")


def check_builtin_size(size: int, key: str = "dataset.image_size") -> None:
    """The built-in GAN needs square images whose side is a power of two from 16 to 128."""
    require(isinstance(size, int) and 16 <= size <= 128 and size & (size - 1) == 0, key, size,
            "16, 32, 64 or 128 for the built-in GAN (a power of two from 16 to 128; other sizes need an "
            "external generator, gan.generator=PATH)")


# -- networks -------------------------------------------------------------------------------------------

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


def build_networks(cfg: GanConfig, image_size: int, channels: int) -> tuple[Generator, Discriminator]:
    """G and D for ``cfg``, initialised from ``cfg.seed`` (DCGAN init: N(0, 0.02) convs, N(1, 0.02) BN)."""
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


# -- data --------------------------------------------------------------------------------------------

def select_images(split: LabeledSplit, cfg: GanConfig) -> LabeledSplit:
    """The rows of ``split`` the GAN trains on: all, or those of group ``cfg.group`` / class ``cfg.label``."""
    keep = torch.ones(len(split), dtype=torch.bool)
    for key, value, names, codes in (("gan.group", cfg.group, split.group_names, split.g),
                                     ("gan.label", cfg.label, split.class_names, split.y)):
        if value is None:
            continue
        if str(value) not in [str(n) for n in names]:
            what = "protected groups" if key == "gan.group" else "target classes"
            raise ConfigError(f"Invalid value for '{key}': {value!r}. The {what} of this dataset are: "
                              f"{', '.join(map(str, names))} (or null for all images).")
        keep &= codes.cpu() == [str(n) for n in names].index(str(value))
    if not bool(keep.all()):
        split = split.subset(torch.nonzero(keep).flatten().to(split.y.device))
    images = split.images
    if not isinstance(images, torch.Tensor):  # rows of an on-disk cache: read them once
        split = dataclasses.replace(split, images=images.materialize())
    if len(split) < MIN_IMAGES:
        chosen = ", ".join(f"{k}={v}" for k, v in (("gan.group", cfg.group), ("gan.label", cfg.label))
                           if v is not None) or "all images"
        raise ConfigError(f"The GAN would train on {len(split)} images ({chosen} of the '{split.name}' "
                          f"split); it needs at least {MIN_IMAGES}. Choose a larger group or class, or more "
                          f"data.")
    return split


def data_summary(split: LabeledSplit) -> dict:
    """Size, shape and a content digest of the training images (part of the fingerprint)."""
    n = len(split)
    rows = torch.linspace(0, n - 1, min(n, 2048)).round().long()
    digest = content_fingerprint(split.images[rows.to(split.images.device)].cpu().contiguous().numpy().tobytes(),
                                 split.y.cpu().numpy().tobytes(), split.g.cpu().numpy().tobytes())
    return {"n": n, "shape": [int(s) for s in split.images.shape[1:]], "digest": digest}


def fingerprint(cfg: GanConfig, data: dict) -> str:
    """A hash of what determines the trained weights: the config (not epochs) and the training data."""
    relevant = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_FINGERPRINTED}
    relevant["image_size"] = data["shape"][-1]
    return content_fingerprint({"gan": relevant, "data": data})


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """All random draws of one epoch (order, flips, latents): a function of (seed, epoch) only."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 7_919 + 17)


# -- training ----------------------------------------------------------------------------------------

def _d_loss(loss: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if loss == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return F.softplus(fake).mean() + F.softplus(-real).mean()


def _g_loss(loss: str, fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean() if loss == "hinge" else F.softplus(-fake).mean()


class _GanTrainer:
    def __init__(self, split: LabeledSplit, cfg: GanConfig, device: torch.device):
        self.cfg, self.device = cfg, torch.device(device)
        self.images = split.images  # uint8 (N, C, S, S), converted per batch on the device
        if self.device.type == "cuda" and self.images.device.type == "cpu":
            from fairrun.data.batches import fits_on_device

            if fits_on_device(split, self.device):
                self.images = self.images.to(self.device)
        self.channels, self.size = int(self.images.shape[1]), int(self.images.shape[-1])
        self.generator, self.discriminator = build_networks(cfg, self.size, self.channels)
        self.generator.to(self.device)
        # the generator that is sampled and exported: an exponential moving average of G's weights
        self.average = copy.deepcopy(self.generator).requires_grad_(False) if cfg.ema > 0 else None
        self.discriminator.to(self.device)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr, betas=betas)
        self.fixed_z = sample_latents(SAMPLE_GRID, cfg.latent_dim, cfg.seed + 1_000_000)
        self.calibration_z = sample_latents(RECALIBRATION, cfg.latent_dim, cfg.seed + 2_000_000)
        self.epoch = 0
        self.history: list[dict] = []

    def state_dict(self, fp: str) -> dict:
        return {"fingerprint": fp, "epoch": self.epoch, "G": self.generator.state_dict(),
                "G_ema": self.average.state_dict() if self.average is not None else {},
                "D": self.discriminator.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "rng_cpu": torch.get_rng_state(), "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["G"])
        if self.average is not None:
            self.average.load_state_dict(state["G_ema"])
        self.discriminator.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        torch.set_rng_state(state["rng_cpu"])
        self.epoch = int(state["epoch"])
        self.history = list(state.get("history", []))

    def batches(self, generator: torch.Generator):
        n, batch_size = len(self.images), self.cfg.batch_size
        order = torch.randperm(n, generator=generator)
        steps = max(1, n // batch_size)  # drop the last partial batch (BatchNorm statistics)
        for step in range(steps):
            index = order[step * batch_size:(step + 1) * batch_size].to(self.images.device)
            raw = self.images.index_select(0, index)
            if self.cfg.hflip:
                raw = random_flip(raw, generator)
            yield step, to_float(raw, self.device)

    def train_epoch(self) -> dict:
        cfg, G, D = self.cfg, self.generator, self.discriminator
        G.train()
        D.train()
        generator = _epoch_generator(cfg.seed, self.epoch + 1)
        sums = {"d_loss": 0.0, "g_loss": 0.0, "d_real": 0.0, "d_fake": 0.0}
        r1_sum, r1_count, steps = 0.0, 0, 0
        for step, real in self.batches(generator):
            z = torch.randn(len(real), cfg.latent_dim, generator=generator).to(self.device)
            fake = G(z)
            # discriminator step (R1 on real images every r1_every steps, scaled by the interval)
            lazy_r1 = cfg.r1_gamma > 0 and step % cfg.r1_every == 0
            D.requires_grad_(True)
            real.requires_grad_(lazy_r1)
            real_score = D(real)
            fake_score = D(fake.detach())
            d_loss = _d_loss(cfg.loss, real_score, fake_score)
            total = d_loss
            if lazy_r1:
                (grad,) = torch.autograd.grad(real_score.sum(), real, create_graph=True)
                penalty = grad.pow(2).flatten(1).sum(1).mean()
                total = total + (cfg.r1_gamma / 2 * cfg.r1_every) * penalty
                r1_sum, r1_count = r1_sum + float(penalty.detach()), r1_count + 1
            self.opt_d.zero_grad(set_to_none=True)
            total.backward()
            self.opt_d.step()
            # generator step on the same latents, against the updated discriminator
            D.requires_grad_(False)
            g_loss = _g_loss(cfg.loss, D(fake))
            self.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.opt_g.step()
            self.update_average()
            for key, value in (("d_loss", d_loss), ("g_loss", g_loss), ("d_real", real_score.mean()),
                               ("d_fake", fake_score.mean())):
                sums[key] += float(value.detach())
            steps += 1
        D.requires_grad_(True)
        self.epoch += 1
        stats = {k: v / max(steps, 1) for k, v in sums.items()}
        stats["r1"] = r1_sum / max(r1_count, 1)
        stats["steps"] = steps
        return stats

    def update_average(self) -> None:
        """G_ema <- ema * G_ema + (1 - ema) * G, weights only (BatchNorm statistics: :meth:`recalibrate`)."""
        if self.average is None:
            return
        with torch.no_grad():
            for averaged, current in zip(self.average.parameters(), self.generator.parameters()):
                averaged.lerp_(current, 1 - self.cfg.ema)

    def recalibrate(self) -> None:
        """Recompute the averaged generator's BatchNorm running statistics for its own weights.

        G's statistics belong to G's current weights, not to their average (copying them washes the
        samples out), so they are measured again, as a plain mean over ``RECALIBRATION`` batches of
        fixed latents: deterministic, and a function of the averaged weights only.
        """
        if self.average is None:
            return
        norms = [m for m in self.average.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        self.average.train()
        with torch.no_grad():
            for batch in self.calibration_z.split(self.cfg.batch_size):
                self.average(batch.to(self.device))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        self.average.eval()

    @property
    def output_generator(self) -> Generator:
        """The generator that is sampled and exported: the weight average, or G itself with gan.ema=0."""
        return self.average if self.average is not None else self.generator

    def samples(self) -> torch.Tensor:
        """G(fixed latents) in eval mode (BatchNorm running statistics), float [-1, 1] on the CPU."""
        self.recalibrate()
        generator = self.output_generator
        was_training = generator.training
        generator.eval()
        with torch.no_grad():
            images = generator(self.fixed_z.to(self.device)).float().cpu()
        generator.train(was_training)
        return images


def _differences(saved: dict, current: dict) -> str:
    keys = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    return ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys)


def _mismatch(out_dir: Path, what: str, saved: Optional[dict], current: dict) -> ConfigError:
    detail = ""
    if saved:
        def flat(record: dict) -> dict:
            return {**record.get("gan", {}), **{f"data.{k}": v for k, v in record.get("data", {}).items()}}

        diff = _differences(flat(saved), flat(current))
        diff = ", ".join(p for p in diff.split(", ") if not p.startswith(NOT_FINGERPRINTED))
        detail = f" (differences: {diff})" if diff else ""
    return ConfigError(f"{out_dir / what} was written by a GAN with a different configuration or different "
                       f"training images{detail}, so it cannot be reused or resumed with this one. Use a new "
                       f"out_dir, or delete {out_dir} to train it again.")


def train_gan(split: LabeledSplit, cfg: GanConfig, out_dir: Path, device: torch.device,
              writer: Any = None) -> Path:
    """Train the built-in GAN on ``split``'s images into ``out_dir``; returns the path of ``generator.pt``.

    A cached, resumable stage: a finished ``out_dir`` (its generator.pt records the same fingerprint
    and ``cfg.epochs``) is returned at once; otherwise training resumes from ``checkpoints/last.pt``
    when it holds the same fingerprint, so asking a finished run for more epochs continues it. The
    fingerprint covers every ``gan.*`` key except ``epochs``, ``sample_every`` and ``generator``,
    plus the size and a digest of the training images; a mismatch is a :class:`ConfigError`.
    ``writer``: a TensorBoard SummaryWriter (default: one on ``out_dir/tb``).
    """
    cfg.validate()
    out_dir = Path(out_dir)
    device = torch.device(device)
    split = select_images(split, cfg)
    shape = tuple(int(s) for s in split.images.shape[1:])
    if shape[1] != shape[2]:
        raise ConfigError(f"The built-in GAN needs square images; the training images are "
                          f"{shape[1]}x{shape[2]}.")
    check_builtin_size(shape[-1])
    if cfg.image_size is not None and cfg.image_size != shape[-1]:
        raise ConfigError(f"Invalid value for 'gan.image_size': {cfg.image_size!r}. The built-in GAN trains "
                          f"at the dataset's image size ({shape[-1]}); leave gan.image_size null or set "
                          f"dataset.image_size={cfg.image_size}.")
    data = data_summary(split)
    fp = fingerprint(cfg, data)
    record = {"gan": dataclasses.asdict(cfg), "data": data, "fingerprint": fp,
              "groups": list(map(str, split.group_names)), "classes": list(map(str, split.class_names))}
    saved_record = None
    if (out_dir / CONFIG_RECORD).is_file():
        saved_record = yaml.safe_load((out_dir / CONFIG_RECORD).read_text()) or {}
    gen_path = out_dir / GENERATOR
    if gen_path.is_file():
        meta = read_metadata(gen_path) or {}
        if meta.get("fingerprint") != fp:
            raise _mismatch(out_dir, GENERATOR, saved_record, record)
        if meta.get("epochs") == cfg.epochs:
            log.info("%s already holds a GAN trained for %d epochs with this configuration; reusing it",
                     out_dir, cfg.epochs)
            return gen_path

    trainer = _GanTrainer(split, cfg, device)
    ckpt_path = out_dir / LAST
    if ckpt_path.is_file():
        state = rundir.load_checkpoint(ckpt_path)
        if state.get("fingerprint") != fp:
            raise _mismatch(out_dir, str(LAST), saved_record, record)
        if int(state["epoch"]) > cfg.epochs:
            raise ConfigError(f"Invalid value for 'gan.epochs': {cfg.epochs}. {out_dir} already holds a "
                              f"GAN trained for {int(state['epoch'])} epochs; ask for at least that many, or "
                              f"use a new out_dir.")
        trainer.load_state_dict(state)
        log.info("resuming the GAN in %s after epoch %d of %d", out_dir, trainer.epoch, cfg.epochs)
    out_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_text(yaml.safe_dump(record, sort_keys=False), out_dir / CONFIG_RECORD)
    samples_dir = out_dir / "samples"
    if not (samples_dir / "real.png").is_file():
        rows = torch.randperm(len(split), generator=torch.Generator().manual_seed(cfg.seed))[:SAMPLE_GRID]
        save_grid(split.images[rows.to(split.images.device)], samples_dir / "real.png")
    own_writer = writer is None
    if own_writer:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir / "tb"), purge_step=trainer.epoch + 1 if trainer.epoch else None)
    log.info("training the GAN on %d images of %dx%dx%d (%s) for %d epochs on %s into %s", len(split), *shape,
             ", ".join(f"{k}={v}" for k, v in (("group", cfg.group), ("label", cfg.label)) if v is not None)
             or "all images", cfg.epochs, device, out_dir)
    try:
        while trainer.epoch < cfg.epochs:
            start = time.perf_counter()
            stats = trainer.train_epoch()
            epoch = trainer.epoch
            stats["seconds"] = time.perf_counter() - start
            trainer.history.append({"epoch": epoch, **stats})
            for key in ("d_loss", "g_loss", "d_real", "d_fake", "r1", "seconds"):
                writer.add_scalar(f"gan/{key}", stats[key], epoch)
            if epoch % cfg.sample_every == 0 or epoch == cfg.epochs:
                images = trainer.samples()
                save_grid(images, samples_dir / f"epoch_{epoch:03d}.png")
                writer.add_image("gan/samples", torch.from_numpy(grid_array(images)).permute(2, 0, 1), epoch)
            writer.flush()
            rundir.save_checkpoint(trainer.state_dict(fp), ckpt_path)
            log.info("GAN epoch %d/%d: D loss %.3f, G loss %.3f, D(x) %.2f, D(G(z)) %.2f, R1 %.3g (%.1f s)",
                     epoch, cfg.epochs, stats["d_loss"], stats["g_loss"], stats["d_real"], stats["d_fake"],
                     stats["r1"], stats["seconds"])
    finally:
        if own_writer:
            writer.close()
    trainer.recalibrate()
    generator = trainer.output_generator.eval()
    export_generator(generator, gen_path, cfg.latent_dim, shape[-1], shape[0], source="fairrun dcgan",
                     extra={"fingerprint": fp, "epochs": cfg.epochs, "width": cfg.width, "loss": cfg.loss})
    from fairrun.generative.generators import load_generator

    exported = load_generator(gen_path, device="cpu")
    save_grid(exported.generate(trainer.fixed_z), samples_dir / "final.png")
    return gen_path


def run_gan_train(cfg) -> Path:
    """`fairrun gan train dataset=... gan.*=... out_dir=...`: train the built-in GAN on the training split.

    Validates the ``dataset``, ``gan`` and ``gpu`` sections, loads the training split, trains (or
    resumes, or reuses) into ``out_dir`` and prints where the generator and the samples are.
    Returns the path of the generator file.
    """
    from omegaconf import OmegaConf

    from fairrun.data.registry import validate_dataset_section

    from fairrun.core.sections import GpuConfig

    from fairrun.core.validation import typed_section
    from fairrun.data.registry import load_dataset
    from fairrun.core.devices import resolve_device

    dataset = validate_dataset_section(cfg.dataset)
    gan_node = cfg.get("gan")
    if gan_node is not None:
        gan_node = OmegaConf.create(OmegaConf.to_container(gan_node, resolve=True))
    gan = typed_section("gan", GanConfig, gan_node)
    gan.validate()
    if gan.generator is not None:
        log.warning("gan.generator=%s is not used by `fairrun gan train`, which trains the built-in GAN",
                    gan.generator)
    gpu_node = cfg.get("gpu")
    if gpu_node is not None:
        gpu_node = OmegaConf.create(OmegaConf.to_container(gpu_node, resolve=True))
        if gpu_node.get("amp", "off") in (False, None):  # YAML 1.1 reads a bare `off` as false
            gpu_node.amp = "off"
        if isinstance(gpu_node.get("data_on_device"), bool):
            gpu_node.data_on_device = str(gpu_node.data_on_device).lower()
    gpu = typed_section("gpu", GpuConfig, gpu_node)
    require_choice("gpu.device", gpu.device, ("auto", "cpu", "cuda"))
    out_dir = cfg.get("out_dir")
    require(isinstance(out_dir, str) and out_dir != "", "out_dir", out_dir, "a directory path")
    out_dir = Path(out_dir)
    device = resolve_device(gpu)
    train = load_dataset(dataset, workers=gpu.num_workers)["train"]
    path = train_gan(train, gan, out_dir, device)
    print(f"generator: {path}  (load it with gan.generator={path})")
    print(f"samples:   {out_dir / 'samples'} (final.png; real.png = training images)")
    print(f"TensorBoard: tensorboard --logdir {out_dir / 'tb'}")
    return path
