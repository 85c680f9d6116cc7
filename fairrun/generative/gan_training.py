"""The built-in GAN's training: :class:`GanTrainer` runs the epochs of
:func:`~fairrun.generative.gan.train_gan`.

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

Training is deterministic and resumable: the weights are initialised from ``gan.seed``, and all
draws of an epoch (image order, flips, latents) come from a generator seeded with
(``gan.seed``, epoch), so resuming from the state written after every epoch (:meth:`GanTrainer.state_dict`)
gives exactly the weights of an uninterrupted run on the same device.
"""
from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fairrun import rundir
from fairrun.data.base import LabeledSplit
from fairrun.data.batches import random_flip, to_float
from fairrun.generative.gan_networks import Generator, build_networks
from fairrun.generative.generators import sample_latents
from fairrun.generative.grids import grid_array, save_grid

log = logging.getLogger("fairrun")

SAMPLE_GRID = 64
RECALIBRATION = 2048  # latents that measure the averaged generator's BatchNorm statistics


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """All random draws of one epoch (order, flips, latents): a function of (seed, epoch) only."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 7_919 + 17)


def _d_loss(loss: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if loss == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return F.softplus(fake).mean() + F.softplus(-real).mean()


def _g_loss(loss: str, fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean() if loss == "hinge" else F.softplus(-fake).mean()


class GanTrainer:
    """G, D, their optimisers and G's weight average for ``cfg`` (a
    :class:`~fairrun.generative.gan.GanConfig`), trained on ``split``'s images (uint8, converted per batch on
    ``device``)."""

    def __init__(self, split: LabeledSplit, cfg, device: torch.device):
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

    def fit(self, fingerprint: str, checkpoint: Path, samples: Path, writer: Any) -> None:
        """Train on to ``gan.epochs``; after every epoch: TensorBoard scalars, a sample grid every
        ``gan.sample_every`` epochs (and after the last) into ``samples``, the checkpoint (atomic), a log
        line."""
        cfg = self.cfg
        while self.epoch < cfg.epochs:
            start = time.perf_counter()
            stats = self.train_epoch()
            epoch = self.epoch
            stats["seconds"] = time.perf_counter() - start
            self.history.append({"epoch": epoch, **stats})
            for key in ("d_loss", "g_loss", "d_real", "d_fake", "r1", "seconds"):
                writer.add_scalar(f"gan/{key}", stats[key], epoch)
            if epoch % cfg.sample_every == 0 or epoch == cfg.epochs:
                images = self.samples()
                save_grid(images, samples / f"epoch_{epoch:03d}.png")
                writer.add_image("gan/samples", torch.from_numpy(grid_array(images)).permute(2, 0, 1), epoch)
            writer.flush()
            rundir.save_checkpoint(self.state_dict(fingerprint), checkpoint)
            log.info("GAN epoch %d/%d: D loss %.3f, G loss %.3f, D(x) %.2f, D(G(z)) %.2f, R1 %.3g (%.1f s)",
                     epoch, cfg.epochs, stats["d_loss"], stats["g_loss"], stats["d_real"], stats["d_fake"],
                     stats["r1"], stats["seconds"])
