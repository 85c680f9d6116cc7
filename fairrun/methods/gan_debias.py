"""GAN latent-space de-biasing (Ramaswamy, Kim & Russakovsky, CVPR 2021) as one method with cached stages."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch

from fairrun.core.errors import ConfigError
from fairrun.core.stages import readable
from fairrun.core.validation import require
from fairrun.methods.generative_stages import (GenerativeStages, match_names, materialized, score,
                                               with_generated)
from fairrun.methods.registry import register

log = logging.getLogger("fairrun")


@dataclass
class GanDebiasConfig:
    """``method=gan_debias``: baseline classifiers, generator, latent sampling, hyperplanes, augmentation."""

    name: str = "gan_debias"
    # run dir of a finished `fairrun train` target classifier; null = train it (ERM) as a sub-run
    target_run: Optional[str] = None
    # run dir of a protected-attribute classifier (dataset.target=<protected>); null = train it
    protected_run: Optional[str] = None
    # TorchScript generator file (see docs/generative.md, Generators); null = train fairrun's built-in GAN
    generator: Optional[str] = None
    # an external generator's latent size, when its file has no fairrun metadata
    latent_dim: Optional[int] = None
    # a generator file is TorchScript *code* (it can read and write files): set true to run it
    trust_generator: bool = False
    gan_epochs: int = 20  # built-in GAN: epochs on the training split
    # built-in GAN: base channel width (16: ~24 s per 4,000-image epoch at 32 px on one CPU core)
    gan_width: int = 16
    num_latents: int = 2000  # latent vectors sampled (paper: 175,000)
    # the first latents fit the hyperplanes (paper: 10,000); the rest are augmented with z'
    svm_samples: int = 1000
    svm_c: float = 1.0  # LinearSVC regularisation C
    synthetic_weight: float = 1.0  # loss weight of each generated image (real images: 1)
    fake_only: bool = False  # train the final classifier on G(z) and G(z') only
    grid_pairs: int = 16  # pairs G(z) | G(z') shown in pairs.png and TensorBoard
    batch_size: int = 256  # generation and scoring batch size
    seed: int = 0  # latent sampling seed

    def validate(self) -> None:
        require(self.num_latents >= 2, "method.num_latents", self.num_latents, "an integer >= 2")
        require(1 <= self.svm_samples < self.num_latents, "method.svm_samples", self.svm_samples,
                f"an integer from 1 to num_latents - 1 = {self.num_latents - 1} (the rest are augmented)")
        require(self.synthetic_weight > 0, "method.synthetic_weight", self.synthetic_weight, "a number > 0")
        require(self.gan_epochs >= 1, "method.gan_epochs", self.gan_epochs, "an integer >= 1")
        require(self.gan_width >= 4, "method.gan_width", self.gan_width, "an integer >= 4")
        require(self.svm_c > 0, "method.svm_c", self.svm_c, "a number > 0")
        require(self.batch_size >= 1, "method.batch_size", self.batch_size, "an integer >= 1")
        require(self.grid_pairs >= 1, "method.grid_pairs", self.grid_pairs, "an integer >= 1")
        if self.latent_dim is not None:
            require(self.latent_dim >= 1, "method.latent_dim", self.latent_dim, "null or an integer >= 1")

    def validate_run(self, run) -> None:
        protected = run.dataset.protected
        if not isinstance(protected, str):
            raise ConfigError(f"method=gan_debias needs a single protected attribute with two values, got "
                              f"dataset.protected={list(protected)}: the latent flip mirrors one binary attribute.")


@register
class GanDebias(GenerativeStages):
    """Fair attribute classification through latent-space de-biasing (V. V. Ramaswamy, S. S. Y. Kim and
    O. Russakovsky, CVPR 2021).

    Stages, each cached in ``<run dir>/gan_debias/`` and skipped when its artefact is there (a re-run of the
    same command redoes nothing; a different configuration clears the stage directory):

    1. baseline classifiers: the target classifier and a protected-attribute classifier, given
       (``target_run``, ``protected_run``) or trained as ERM sub-runs (``target_clf/``, ``protected_clf/``)
       with decision thresholds chosen to maximise validation F1 (as the published code);
    2. ``num_latents`` latents z ~ N(0, I) and their images G(z) (``generator`` or the built-in GAN, trained
       on the training split into ``gan/``);
    3. hallucinated labels: both classifiers score G(z) and threshold at their F1-optimal thresholds;
    4. hyperplanes (w_a, b_a) for the target and (w_g, b_g) for the protected attribute: LinearSVC on the
       first ``svm_samples`` latents, normalised to unit normals;
    5. for the remaining latents, z′ = z − 2(w_gᵀz + b_g)/(1 − (w_gᵀw_a)²)·(w_g − (w_gᵀw_a)w_a)
       (keeps the target score, mirrors the protected one) and G(z′);
    6. the final classifier trains on real data + G(z) + G(z′), where G(z′) keeps G(z)'s hallucinated target
       label and takes the flipped protected label (``synthetic_weight`` weights generated images in the loss;
       ``fake_only`` drops the real ones). Evaluation is on the real val/test splits as for every method.
    """

    name = "gan_debias"
    Config = GanDebiasConfig

    def prepare(self, train):
        from fairrun.generative.generators import sample_latents
        from fairrun.generative.latent import complementary_latents

        cfg = self.cfg
        train = materialized(train)
        if train.num_groups != 2:
            raise ConfigError(f"method=gan_debias flips a binary protected attribute; dataset.protected="
                              f"{self.run.dataset.protected} has {train.num_groups} groups ({train.group_names}).")
        _, target_model, target_method, target_threshold, target_classes = self.baseline("target")
        _, prot_model, prot_method, prot_threshold, prot_classes = self.baseline("protected")
        group_index = match_names(prot_classes, train.group_names, "protected")
        match_names(target_classes, train.class_names, "target")

        generator = self.generator(train)
        z = self.array("latents.npy", lambda: sample_latents(cfg.num_latents, generator.latent_dim,
                                                             cfg.seed).numpy().astype(np.float64))
        images = self.images_of(generator, z, "images_z")

        def hallucinate() -> pd.DataFrame:
            t_score = score(target_model, target_method, images, self.device, cfg.batch_size)
            p_score = score(prot_model, prot_method, images, self.device, cfg.batch_size)
            return pd.DataFrame({"target_score": t_score, "protected_score": p_score,
                                 "target": (t_score > target_threshold).astype(int),
                                 "protected": group_index[(p_score > prot_threshold).astype(int)]})

        labels = self.stages.stage("labels.csv", load=readable(pd.read_csv)).run(
            hallucinate, save=lambda frame, path: frame.to_csv(path, index=False))
        log.info("gan_debias stage 3: hallucinated labels of %d generated images (thresholds %.3f / %.3f):\n%s",
                 len(labels), target_threshold, prot_threshold,
                 pd.crosstab(labels["protected"].map(dict(enumerate(train.group_names))),
                             labels["target"].map(dict(enumerate(train.class_names)))).to_string())

        n_svm = cfg.svm_samples
        json_file = readable(lambda path: json.loads(path.read_text()))
        planes = self.stages.stage("hyperplanes.json", load=json_file).run(
            lambda: hyperplanes(z[:n_svm], labels.iloc[:n_svm], cfg.svm_c, cfg.seed),
            save=lambda planes, path: Path(path).write_text(json.dumps(planes, indent=1)))
        w_a, w_g = np.array(planes["w_a"]), np.array(planes["w_g"])
        z_aug = z[n_svm:]
        z_prime = self.array("latents_prime.npy",
                             lambda: complementary_latents(z_aug, w_a, planes["b_a"], w_g, planes["b_g"]))
        images_prime = self.images_of(generator, z_prime, "images_z_prime")
        pairs = self.stages.stage("pairs.png")
        pairs.run(lambda: self.write_pairs(images[n_svm:], images_prime, pairs.path))

        y_fake = torch.tensor(labels["target"].to_numpy()[n_svm:], dtype=torch.long)
        g_fake = torch.tensor(labels["protected"].to_numpy()[n_svm:], dtype=torch.long)
        fake_images = torch.cat([images[n_svm:], images_prime])
        fake_y, fake_g = torch.cat([y_fake, y_fake]), torch.cat([g_fake, 1 - g_fake])
        self.summary = {"gd_svm_acc_target": planes["svm_accuracy_target"],
                        "gd_svm_acc_protected": planes["svm_accuracy_protected"],
                        "gd_cos_planes": planes["cos_w_a_w_g"], "gd_n_generated": int(len(fake_y))}
        augmented = with_generated(train, fake_images, fake_y, fake_g, cfg.synthetic_weight, cfg.fake_only)
        log.info("gan_debias stage 6: training on %d real + %d generated images (G(z) and G(z') pairs); "
                 "group x label counts:\n%s", 0 if cfg.fake_only else len(train), len(fake_y),
                 augmented.counts().to_string())
        return augmented

    def write_pairs(self, left: torch.Tensor, right: torch.Tensor, path: Path) -> Path:
        """``pairs.png`` (and TensorBoard): G(z) beside G(z′) for the first ``grid_pairs`` pairs."""
        from torch.utils.tensorboard import SummaryWriter

        from fairrun.generative.grids import grid_array, pair_grid

        n = min(self.cfg.grid_pairs, len(left))
        pair_grid(left[:n], right[:n], path, titles=("G(z)", "G(z′): protected attribute flipped"))
        interleaved = torch.stack([left[:n], right[:n]], dim=1).flatten(0, 1)  # rows: G(z) | G(z')
        with SummaryWriter(str(self.stage_dir.parent / "tb")) as writer:
            writer.add_image("gan_debias/pairs G(z) | G(z')", grid_array(interleaved, nrow=2), dataformats="HWC")
        return path


def hyperplanes(z: np.ndarray, labels: pd.DataFrame, svm_c: float, seed: int) -> dict:
    """Stage 4: unit-normal hyperplanes (LinearSVC) of the target and the protected labels in latent space."""
    from fairrun.generative.latent import fit_hyperplane

    w_a, b_a, acc_a = fit_hyperplane(z, labels["target"].to_numpy(), svm_c, seed)
    w_g, b_g, acc_g = fit_hyperplane(z, labels["protected"].to_numpy(), svm_c, seed)
    return {"w_a": w_a.tolist(), "b_a": b_a, "svm_accuracy_target": acc_a,
            "w_g": w_g.tolist(), "b_g": b_g, "svm_accuracy_protected": acc_g,
            "cos_w_a_w_g": float(np.dot(w_a, w_g))}
