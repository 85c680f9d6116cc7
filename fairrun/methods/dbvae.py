"""DB-VAE: a VAE learns the latent structure of the training images; rare latents are drawn more often.

Amini, Soleimany, Schwarting, Bhatia & Rus, "Uncovering and Mitigating Algorithmic Bias through Learned
Latent Structure", AIES 2019. The classifier is trained together with a VAE; at the start of every
epoch the training set is encoded, the distribution of the latent means is estimated with one histogram
per latent dimension, and the epoch's training rows are drawn (with replacement, ``len(train)`` of
them) with probability ∝ the inverse of that estimate (:func:`fairrun.generative.density.debias_weights`,
``p_d`` = the share of the training rows in z_d(x)'s bin of dimension d):

* ``method.combine=product``, the paper's Algorithm 1: ``w(x) ∝ Π_d 1 / (p_d(z_d(x)) + α)``;
* ``method.combine=max`` (the default), the MIT 6.S191 lab's implementation: ``w(x) ∝ max_d u_d(x)``
  with ``u_d(x) = (1 / (p_d(z_d(x)) + α)) / Σ_rows (1 / (p_d + α))``.

No group labels are used: the method de-biases towards whatever the VAE finds rare.

Why ``max`` is the default: the product's weight ratio grows exponentially with the latent dimension,
so its usable α depends on ``latent_dim``. Measured on fairrun's rare-group test set-up (1,500
synthetic 16 px faces, group B = 2% of them, 8 epochs, latent_dim=32, seeds 0-2): product with α=0.1
puts all the mass on a few images (effective sample size 0.1-0.4% of N; the classifier falls to
chance), α=0.3 keeps 6-10% (B gets 21-34% of the draws), α=1 keeps 78% (B gets 5%); max with α=0.001
keeps ~42% and gives B ~10% of the draws. Watch ``dbvae/ess``.

How it sits in fairrun's hooks:

* ``prepare`` builds the VAE (:class:`~fairrun.generative.vae_model.ConvVAE` with ``method.latent_dim``,
  ``method.width``) for the training images, initialised from the run seed without disturbing the
  global RNG (so the classifier starts from the same weights as ERM with the same seed);
  ``extra_modules`` returns it, so it joins the one optimizer (``trainer.lr``) and ``last.pt``.
* ``loss = CE + method.vae_weight · (Σ_pixels (x − x̂)² + β·KL(q(z|x) ‖ N(0, I))) / (C·H·W)``, the
  β-VAE loss of :func:`~fairrun.generative.vae_model.vae_loss` (β = ``method.beta``) per image divided by the
  number of pixel values (so its scale is that of the cross-entropy at any image size; the VAE's optimum
  is unchanged) and averaged over the images it applies to: ``method.vae_on=all`` (every batch image;
  the default, since here every image is a face) or ``positive`` (only label 1 of a binary target, as
  the paper, whose negatives are not faces; the re-sampling then re-weights only the positives, within
  their share of the training set, and draws the negatives uniformly, as the MIT lab does).
* Re-sampling (``epoch_batches``): epoch 1 uses the plain seeded permutation (ERM's first epoch; the
  untrained VAE's latents describe nothing learned); every later epoch starts by encoding the training
  split with the current VAE (eval mode, no gradients, batches of 512) and draws its rows from
  ``debias_weights(mu, method.bins, method.alpha, method.combine)`` through the split's
  ``sample_probs`` (:func:`fairrun.data.batches.epoch_order`). ``method.alpha`` is the de-biasing knob:
  large α -> uniform sampling.
* Resume: the VAE is in ``last.pt`` (extra module); the current epoch's sampling probabilities are in
  the method state, so a run interrupted inside an epoch continues with that epoch's draws (recomputing
  them from the VAE trained further would change them); at an epoch start they are recomputed from the
  VAE, exactly as the uninterrupted run does.

Differences from the paper: there the classifier and the VAE share the encoder (it outputs the class
score and the latent distribution); here the VAE is a separate network, so DB-VAE works with any
fairrun model, and the two couple only through the sampling. Logged every epoch (TensorBoard):
``dbvae/weight_ratio`` (max/min sampling weight), ``dbvae/ess`` (Kish effective sample size / N),
``dbvae/mass/<group>`` (the probability mass each protected group gets). ``extra_results`` adds the
same for the last epoch trained: ``dbvae_weight_ratio``, ``dbvae_ess``, ``dbvae_mass[<group>]``.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn

from fairrun.core.validation import require, require_choice
from fairrun.data.batches import epoch_order, train_batches
from fairrun.core.errors import ConfigError
from fairrun.generative.density import COMBINES, debias_weights, effective_sample_size
from fairrun.generative.vae_model import ConvVAE, encode_means, vae_terms
from fairrun.methods.base import Batch, Method, Outputs
from fairrun.methods.registry import register

log = logging.getLogger("fairrun")

VAE_ON = ("all", "positive")
ENCODE_BATCH = 512


@dataclass
class DbvaeConfig:
    """``method=dbvae`` keys (see ``conf/method/dbvae.yaml``)."""

    name: str = "dbvae"
    latent_dim: int = 32  # dimension of the VAE's latent z (one histogram per dimension)
    width: int = 32  # channels of the VAE's first stride-2 convolution (x2 per layer, at most x8)
    beta: float = 1.0  # weight of the KL term (1 = plain VAE, > 1 = β-VAE)
    # weight of the VAE loss (per pixel value) next to the cross-entropy. The VAE is a
    vae_weight: float = 1.0
    # de-biasing knob >= 0: 0 = sample purely by inverse latent density; large -> uniform
    alpha: float = 0.001
    bins: int = 10  # histogram bins per latent dimension (over each dimension's min..max)
    # max: w ∝ max over dimensions d of the normalised 1/(p_d + alpha) (the MIT 6.S191 lab's
    combine: str = "max"
    vae_on: str = "all"  # all: the VAE learns from (and re-weights) every image | positive: only label 1 of a

    def validate(self) -> None:
        for key in ("latent_dim", "width", "bins"):
            value = getattr(self, key)
            require(isinstance(value, int) and value >= 1, f"method.{key}", value, "an integer >= 1")
        require(self.beta >= 0, "method.beta", self.beta, "a number >= 0 (1 = plain VAE)")
        require(self.vae_weight >= 0, "method.vae_weight", self.vae_weight, "a number >= 0")
        require(self.alpha >= 0, "method.alpha", self.alpha,
                "a number >= 0 (0 = pure inverse density; larger = closer to uniform sampling)")
        require_choice("method.combine", self.combine, COMBINES)
        require_choice("method.vae_on", self.vae_on, VAE_ON)


@register
class Dbvae(Method):
    """DB-VAE (Amini et al., AIES 2019): joint VAE training and latent-density re-sampling every epoch.

    Details: the module docstring.
    """

    name = "dbvae"
    Config = DbvaeConfig

    def __init__(self, cfg, *, num_classes: int, num_groups: int):
        super().__init__(cfg, num_classes=num_classes, num_groups=num_groups)
        if cfg.vae_on == "positive" and num_classes != 2:
            raise ConfigError(f"Invalid value for 'method.vae_on': 'positive'. It needs a binary target "
                              f"(label 1 is the positive class); this target has {num_classes} classes. "
                              f"Accepted: all.")
        self.vae: Optional[ConvVAE] = None
        self.group_names: list[str] = []
        self.probs_epoch = -1  # the epoch whose sampling probabilities are in self.probs
        self.probs: Optional[torch.Tensor] = None  # float64 (N,), None = uniform permutation
        self.stats_epoch = -1  # the epoch the logged statistics describe
        self.stats: dict = {}

    # -- set-up -------------------------------------------------------------------------------------
    def prepare(self, train):
        """Build the VAE for the training images (seeded from the run seed; the global RNG is untouched)."""
        channels, size = int(train.images.shape[1]), int(train.images.shape[-1])
        self.group_names = list(train.group_names)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((torch.initial_seed() * 7919 + 104_729) % 2**63)
            self.vae = ConvVAE(channels, size, self.cfg.latent_dim, self.cfg.width)
        return train

    def extra_modules(self) -> list[nn.Module]:
        return [] if self.vae is None else [self.vae]

    # -- sampling ----------------------------------------------------------------------------------
    def sampling_weights(self, train, device: torch.device) -> np.ndarray:
        """Sampling probabilities (N,) from the current VAE: ``debias_weights`` of the latent means (of
        the positives only when ``vae_on=positive``, the negatives then drawn uniformly)."""
        mu = encode_means(self.vae, train, device, ENCODE_BATCH)
        n = len(train)
        if self.cfg.vae_on == "all":
            return debias_weights(mu, self.cfg.bins, self.cfg.alpha, self.cfg.combine)
        positive = (train.y.cpu() == 1).numpy()
        weights = np.full(n, 1.0 / n)
        if positive.any():
            weights[positive] = debias_weights(mu[torch.from_numpy(positive)], self.cfg.bins, self.cfg.alpha,
                                               self.cfg.combine) * positive.sum() / n
        return weights

    def _record(self, weights: np.ndarray, train, epoch: int) -> None:
        """Statistics of an epoch's sampling distribution (for TensorBoard and the results)."""
        g = train.g.cpu().numpy()
        mass = np.bincount(g, weights=weights, minlength=len(train.group_names))
        positive = weights[weights > 0]
        ratio = float(positive.max() / positive.min()) if len(positive) else float("nan")
        self.stats = {"weight_ratio": ratio,
                      "ess": effective_sample_size(weights) / max(len(weights), 1),
                      "mass": {name: float(m) for name, m in zip(train.group_names, mass)}}
        self.stats_epoch = epoch

    def epoch_batches(self, plan, epoch: int, start_step: int):
        """Epoch 0: the seeded permutation. Later epochs: rows drawn ∝ the DB-VAE weights of the VAE as it
        is at the start of the epoch (kept in the method state for a resume inside the epoch)."""
        train = plan.train
        if epoch == 0:
            self.probs, self.probs_epoch = None, 0
            uniform = np.full(len(train), 1.0 / max(len(train), 1))
            self._record(uniform, train, 0)
            split = train
        else:
            if not (start_step > 0 and self.probs_epoch == epoch and self.probs is not None):
                self.probs = torch.from_numpy(self.sampling_weights(train, plan.device))
                self.probs_epoch = epoch
            self._record(self.probs.numpy(), train, epoch)
            split = dataclasses.replace(train, sample_probs=self.probs)
            if start_step == 0:
                log.info("dbvae epoch %d: sampling weight max/min %.3g, effective sample size %.1f%%, "
                         "mass %s",
                         epoch + 1, self.stats["weight_ratio"], 100 * self.stats["ess"],
                         ", ".join(f"{k} {v:.3f}" for k, v in self.stats["mass"].items()))
        order = epoch_order(split, plan.seed, epoch)
        return train_batches(split, order, plan.batch_size, plan.device, start_step, plan.channels_last,
                             plan.augmentation, plan.seed, epoch)

    def epoch_scalars(self) -> dict:
        if not self.stats:
            return {}
        scalars = {"dbvae/weight_ratio": self.stats["weight_ratio"], "dbvae/ess": self.stats["ess"]}
        scalars.update({f"dbvae/mass/{name}": value for name, value in self.stats["mass"].items()})
        return scalars

    # -- objective ---------------------------------------------------------------------------------
    def vae_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean over the batch images it applies to of (Σ (x − x̂)² + β KL) / (C·H·W); 0 when none."""
        if self.cfg.vae_on == "positive":
            x = x[y == 1]
        if len(x) == 0:
            return sum(p.sum() * 0.0 for p in self.vae.parameters())
        recon, mu, logvar = self.vae(x)
        sq, kl = vae_terms(x, recon, mu, logvar)
        return (sq + self.cfg.beta * kl).mean() / x[0].numel()

    def loss(self, outputs: Outputs, batch: Batch) -> torch.Tensor:
        if self.vae is None:
            raise RuntimeError("Dbvae.prepare must be called before training (it builds the VAE)")
        task = super().loss(outputs, batch)
        if self.cfg.vae_weight == 0:
            return task
        return task + self.cfg.vae_weight * self.vae_loss(batch.x, batch.y)

    # -- results and state -------------------------------------------------------------------------
    def extra_results(self) -> dict:
        if not self.stats:
            return {}
        out = {"dbvae_weight_ratio": self.stats["weight_ratio"], "dbvae_ess": self.stats["ess"]}
        out.update({f"dbvae_mass[{name}]": value for name, value in self.stats["mass"].items()})
        return out

    def state_dict(self) -> dict:
        return {"probs_epoch": self.probs_epoch, "probs": self.probs, "stats_epoch": self.stats_epoch,
                "stats": self.stats}

    def load_state_dict(self, state: dict) -> None:
        """Restore the sampling state; the statistics are replaced only by those of a later (or the same)
        epoch, so loading best.pt after training keeps the last epoch's in the results."""
        if not state:
            return
        self.probs_epoch, self.probs = int(state.get("probs_epoch", -1)), state.get("probs")
        if int(state.get("stats_epoch", -1)) >= self.stats_epoch:
            self.stats_epoch, self.stats = int(state.get("stats_epoch", -1)), dict(state.get("stats") or {})
