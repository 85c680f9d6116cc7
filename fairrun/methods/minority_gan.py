"""Minority GAN augmentation: generate more images like the under-represented ones and train on them too."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd
import torch

from fairrun.core.validation import require, require_choice
from fairrun.data.base import LabeledSplit
from fairrun.core.errors import ConfigError
from fairrun.methods.generative_stages import (GenerativeStages, match_names, materialized, score,
                                               with_generated)
from fairrun.methods.registry import register

log = logging.getLogger("fairrun")

SOURCES = ("vae", "group")


@dataclass
class MinorityGanConfig:
    """``method=minority_gan``: where the minority comes from, the generator, how many images to add."""

    name: str = "minority_gan"
    # run dir of a finished target classifier (labels the generated images); null = train it (ERM)
    target_run: Optional[str] = None
    # source=vae: run dir of a protected-attribute classifier; null = train it
    protected_run: Optional[str] = None
    source: str = "vae"  # vae: the rarest `fraction` of training images under a VAE's latent density | group
    group: Optional[str] = None  # source=group: the protected group to augment, e.g. B
    fraction: float = 0.05  # source=vae: share of the training set taken as the minority set
    vae_latent_dim: int = 32  # source=vae: the VAE trained as a stage
    vae_epochs: int = 10  # epochs of the VAE that finds the minority set (source=vae)
    bins: int = 10  # source=vae: histogram bins per latent dimension
    smoothing: float = 0.001  # source=vae: added to every histogram bin before normalising
    combine: str = "product"  # source=vae: product over latent dimensions (DB-VAE) | max (MIT 6.S191 course)
    # TorchScript generator file; null = train the built-in GAN on the minority set
    generator: Optional[str] = None
    # an external generator's latent size (if its file has no fairrun metadata)
    latent_dim: Optional[int] = None
    # a generator file is TorchScript *code* (it can read and write files): set true to run it
    trust_generator: bool = False
    gan_epochs: int = 30  # built-in GAN: epochs on the minority set
    # built-in GAN: base channel width (16: ~24 s per 4,000-image epoch at 32 px on one CPU core)
    gan_width: int = 16
    num_generated: int = 1000  # generated images added to the training set
    synthetic_weight: float = 1.0  # loss weight of each generated image (real images: 1)
    batch_size: int = 256  # generation and scoring batch size
    seed: int = 0  # latent sampling seed

    def validate(self) -> None:
        require_choice("method.source", self.source, SOURCES)
        require_choice("method.combine", self.combine, ("product", "max"))
        require(0 < self.fraction < 1, "method.fraction", self.fraction, "a number in (0, 1)")
        require(self.num_generated >= 1, "method.num_generated", self.num_generated, "an integer >= 1")
        require(self.synthetic_weight > 0, "method.synthetic_weight", self.synthetic_weight, "a number > 0")
        require(self.gan_epochs >= 1 and self.vae_epochs >= 1, "method.gan_epochs/vae_epochs",
                (self.gan_epochs, self.vae_epochs), "integers >= 1")
        if self.source == "group" and self.group is None:
            raise ConfigError("method.source=group needs the group to augment: method.group=<name> (one of the "
                              "dataset's protected values, e.g. method.group=B).")

    def validate_run(self, run) -> None:
        """No cross-section rules (any dataset, model and protected attribute)."""


@register
class MinorityGan(GenerativeStages):
    """Augment the minority with a GAN trained on it, in the spirit of the dataset de-biasing project that
    fairrun replaces: find the under-represented images (the rarest ``fraction`` under a VAE's latent density,
    as in DB-VAE's density estimate, Amini et al., AIES 2019; or a protected group by name), train the built-in
    GAN on them (or use ``generator``), generate ``num_generated`` images, give them hallucinated target labels
    from the baseline target classifier (threshold: validation-F1 optimal, as gan_debias' stage 3) and
    protected labels from the protected classifier (or the chosen group), and train on real + generated data.

    Stages are cached in ``<run dir>/gan_debias/`` like gan_debias' (a re-run skips them): the VAE (``vae/``),
    the GAN (``gan/``), the generated images (``minority_generated.npy``) and ``generated.png``.
    """

    name = "minority_gan"
    Config = MinorityGanConfig

    def minority(self, train: LabeledSplit) -> LabeledSplit:
        cfg = self.cfg
        if cfg.source == "group":
            if cfg.group not in train.group_names:
                raise ConfigError(f"method.group={cfg.group!r} is not a protected group of this dataset; "
                                  f"the groups are {', '.join(train.group_names)}.")
            index = torch.nonzero(train.g.cpu() == train.group_names.index(cfg.group)).flatten()
        else:
            from fairrun.generative.density import find_minority
            from fairrun.generative.vae import VaeConfig, encode_means, load_vae, train_vae

            vae_cfg = VaeConfig(latent_dim=cfg.vae_latent_dim, epochs=cfg.vae_epochs, seed=self.run.seed)
            path = train_vae(train, vae_cfg, self.stage_dir / "vae", self.device)
            vae, _, _ = load_vae(path)
            mu = encode_means(vae.to(self.device), train, self.device, cfg.batch_size)
            index = torch.as_tensor(np.asarray(find_minority(mu.cpu().numpy(), cfg.fraction, cfg.bins,
                                                             cfg.smoothing, cfg.combine)), dtype=torch.long)
        minority = train.subset(index.to(train.y.device))
        counts = pd.Series(minority.g.cpu().numpy()).map(dict(enumerate(train.group_names))).value_counts()
        log.info("minority_gan: minority set of %d images (source=%s); groups: %s", len(minority), cfg.source,
                 counts.to_dict())
        self.summary["mg_minority_size"] = len(minority)
        for name in train.group_names:
            self.summary[f"mg_minority_share[{name}]"] = float(counts.get(name, 0)) / max(len(minority), 1)
        return minority

    def prepare(self, train):
        from fairrun.generative.generators import sample_latents
        from fairrun.generative.grids import save_grid

        cfg = self.cfg
        train = materialized(train)
        minority = self.minority(train)
        if cfg.generator is None and len(minority) < 16:
            raise ConfigError(f"The minority set has {len(minority)} images, too few to train a GAN on; raise "
                              f"method.fraction, pick a larger group, or give method.generator.")
        generator = self.generator(minority)
        z = sample_latents(cfg.num_generated, generator.latent_dim, cfg.seed)
        images = self.images_of(generator, z.numpy(), "minority_generated")
        _, target_model, target_method, target_threshold, target_classes = self.baseline("target")
        match_names(target_classes, train.class_names, "target")
        y_fake = torch.as_tensor(score(target_model, target_method, images, self.device, cfg.batch_size)
                                 > target_threshold, dtype=torch.long)
        if cfg.source == "group":
            g_fake = torch.full((len(images),), train.group_names.index(cfg.group), dtype=torch.long)
        else:
            _, prot_model, prot_method, prot_threshold, prot_classes = self.baseline("protected")
            group_index = match_names(prot_classes, train.group_names, "protected")
            p = score(prot_model, prot_method, images, self.device, cfg.batch_size)
            g_fake = torch.as_tensor(group_index[(p > prot_threshold).astype(int)], dtype=torch.long)
        grid = self.stages.stage("generated.png")
        grid.run(lambda: save_grid(images[:64], grid.path, title="minority_gan: generated images"))
        augmented = with_generated(train, images, y_fake, g_fake, cfg.synthetic_weight)
        self.summary["mg_n_generated"] = len(images)
        log.info("minority_gan: training on %d real + %d generated images; group x label counts:\n%s", len(train),
                 len(images), augmented.counts().to_string())
        return augmented
