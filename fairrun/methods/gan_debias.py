"""GAN latent-space de-biasing (Ramaswamy, Kim & Russakovsky, CVPR 2021) as one method with cached stages."""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch

from fairrun import rundir
from fairrun.core.validation import require
from fairrun.data.base import LabeledSplit
from fairrun.data.batches import load_into_memory
from fairrun.core.errors import ConfigError, FairrunError
from fairrun.core.fingerprint import fingerprint
from fairrun.methods.base import Method
from fairrun.methods.registry import register

log = logging.getLogger("fairrun")

STAGE_DIR = "gan_debias"


@dataclass
class GanDebiasConfig:
    """``method=gan_debias``: baseline classifiers, generator, latent sampling, hyperplanes, augmentation."""

    name: str = "gan_debias"
    target_run: Optional[str] = None  # run dir of a finished target classifier; null = train one (ERM) as a sub-run
    protected_run: Optional[str] = None  # run dir of a protected-attribute classifier; null = train one
    generator: Optional[str] = None  # TorchScript generator file; null = train fairrun's built-in GAN
    latent_dim: Optional[int] = None  # an external generator's latent size (if its file has no fairrun metadata)
    trust_generator: bool = False  # a generator file is code: loading it runs it with the user's permissions
    gan_epochs: int = 20  # built-in GAN: epochs
    gan_width: int = 16  # built-in GAN: base channel width
    num_latents: int = 2000  # latent vectors sampled (paper: 175,000)
    svm_samples: int = 1000  # the first latents, used to fit the hyperplanes (paper: 10,000)
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


def stage_key(run, cfg: GanDebiasConfig) -> str:
    """Hash of everything the cached stages depend on: data, model, imbalance, seed, and the method keys."""
    relevant = {"dataset": dataclasses.asdict(run.dataset), "model": dataclasses.asdict(run.model),
                "imbalance": dataclasses.asdict(run.imbalance), "trainer": dataclasses.asdict(run.trainer),
                "seed": run.seed, "method": {k: v for k, v in dataclasses.asdict(cfg).items()
                                             if k not in ("synthetic_weight", "fake_only", "grid_pairs", "trust_generator")}}
    return fingerprint(relevant)


@register
class GanDebias(Method):
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

    def __init__(self, cfg, *, num_classes: int, num_groups: int):
        super().__init__(cfg, num_classes=num_classes, num_groups=num_groups)
        self.run = None
        self.stage_dir: Optional[Path] = None
        self.summary: dict = {}

    def bind(self, run, run_dir, device, runs=None) -> None:
        if self.cfg.generator is not None:  # checked before the baseline sub-runs train, not after them
            path = Path(self.cfg.generator).expanduser()
            require(path.is_file(), "method.generator", self.cfg.generator,
                    "the path of an existing TorchScript generator file (such as the generator.pt that "
                    "`fairrun gan train` writes; relative paths are from the launch directory), or null to "
                    "train fairrun's built-in GAN" + (f"; {path} is a directory" if path.is_dir() else
                                                       f"; {path.resolve()} does not exist"))
            if not self.cfg.trust_generator:
                from fairrun.generative.generators import file_sha256

                raise ConfigError(
                    f"method.generator={self.cfg.generator} is a TorchScript file, which is code: loading it runs "
                    f"what it contains with your permissions (a scripted module can read and write files), and "
                    f"nothing in the file proves who made it. Its SHA-256 is {file_sha256(path)}. If you trust "
                    f"where it came from (your own `fairrun gan train` run, an export you made), add "
                    f"method.trust_generator=true; otherwise leave method.generator=null to train fairrun's "
                    f"built-in GAN.")
        self.run, self.device, self.runs = run, device, runs
        self.stage_dir = Path(run_dir) / STAGE_DIR
        key = stage_key(run, self.cfg)
        marker = self.stage_dir / "stage_key.txt"
        if marker.is_file() and marker.read_text().strip() != key:
            log.info("gan_debias: the configuration changed; clearing the cached stages in %s", self.stage_dir)
            shutil.rmtree(self.stage_dir)
        self.stage_dir.mkdir(parents=True, exist_ok=True)
        rundir.write_text(key + "\n", marker)

    # -- stage 1: baseline classifiers -------------------------------------------------------
    def baseline(self, role: str):
        """(run dir, model, method, threshold, class names) of the target or protected classifier."""
        given = self.cfg.target_run if role == "target" else self.cfg.protected_run
        if given is not None:
            run_dir = Path(given)
            if not (run_dir / rundir.DONE).is_file():
                raise FairrunError(f"method.{role}_run={given} is not a finished fairrun run directory (no 'done' "
                                   f"marker); give the directory of a completed `fairrun train` run.")
        else:
            run_dir = self.stage_dir / f"{role}_clf"
            if not (run_dir / rundir.DONE).is_file():
                log.info("gan_debias stage 1: training the %s classifier (ERM) into %s", role, run_dir)
            self.runs.train(self.sub_run_config(role), run_dir)
        return (run_dir, *binary_classifier(self.runs.load(run_dir)))

    def sub_run_config(self, role: str):
        """The baseline's run config: this run's data, model and trainer with ERM and F1 thresholds. The
        protected classifier predicts the protected attribute on the full training split (no imbalance
        sampling), as the paper trains it on all of CelebA."""
        from fairrun.evaluation.decision import EvalConfig, PostprocessConfig
        from fairrun.methods.erm import ERMConfig

        run = self.run
        dataset = run.dataset
        imbalance = run.imbalance
        if role == "protected":
            dataset = dataclasses.replace(dataset, target=run.dataset.protected, protected=run.dataset.target)
            imbalance = dataclasses.replace(imbalance, ratio=None, size=None, balance_target=False, majority=None)
        targets = {section: target for section, target in run.targets.items() if section != "method"}
        return dataclasses.replace(run, dataset=dataset, imbalance=imbalance, method=ERMConfig(),
                                   eval=EvalConfig(threshold="f1"), postprocess=PostprocessConfig(),
                                   eval_datasets=[], resume=True, targets=targets)

    # -- stage 2: generator and latents --------------------------------------------------------
    def generator(self, train: LabeledSplit):
        from fairrun.generative.generators import load_generator

        size = int(train.images.shape[-1])
        if self.cfg.generator is not None:
            return load_generator(self.cfg.generator, latent_dim=self.cfg.latent_dim, image_size=size, keys="method",
                                  device=self.device)
        from fairrun.generative.gan import GanConfig, train_gan

        gan_cfg = GanConfig(epochs=self.cfg.gan_epochs, width=self.cfg.gan_width, seed=self.run.seed)
        path = self.stage_dir / "gan" / "generator.pt"
        if not path.is_file():
            log.info("gan_debias stage 2: training the built-in GAN on %d training images into %s", len(train),
                     path.parent)
        path = train_gan(train, gan_cfg, self.stage_dir / "gan", self.device)
        return load_generator(path, device=self.device)

    def images_of(self, generator, z: np.ndarray, name: str) -> torch.Tensor:
        """G(z) as uint8 (N, C, H, W), cached as ``<name>.npy``."""
        path = self.stage_dir / f"{name}.npy"
        if path.is_file():
            return torch.from_numpy(np.load(path))
        images = generator.generate_uint8(torch.as_tensor(z, dtype=torch.float32), batch_size=self.cfg.batch_size)
        save_npy(images.numpy(), path)
        return images

    # -- stages 3-6 ------------------------------------------------------------------------------
    def prepare(self, train):
        from fairrun.generative.generators import sample_latents
        from fairrun.generative.latent import complementary_latents, fit_hyperplane

        cfg = self.cfg
        train = materialized(train)
        if train.num_groups != 2:
            raise ConfigError(f"method=gan_debias flips a binary protected attribute; dataset.protected="
                              f"{self.run.dataset.protected} has {train.num_groups} groups ({train.group_names}).")
        target_dir, target_model, target_method, target_threshold, target_classes = self.baseline("target")
        protected_dir, prot_model, prot_method, prot_threshold, prot_classes = self.baseline("protected")
        group_index = match_names(prot_classes, train.group_names, "protected")
        match_names(target_classes, train.class_names, "target")

        generator = self.generator(train)
        z_path = self.stage_dir / "latents.npy"
        if z_path.is_file():
            z = np.load(z_path)
        else:
            z = sample_latents(cfg.num_latents, generator.latent_dim, cfg.seed).numpy().astype(np.float64)
            save_npy(z, z_path)
        images = self.images_of(generator, z, "images_z")

        labels_path = self.stage_dir / "labels.csv"
        if labels_path.is_file():
            labels = pd.read_csv(labels_path)
        else:
            t_score = score(target_model, target_method, images, self.device, cfg.batch_size)
            p_score = score(prot_model, prot_method, images, self.device, cfg.batch_size)
            labels = pd.DataFrame({"target_score": t_score, "protected_score": p_score,
                                   "target": (t_score > target_threshold).astype(int),
                                   "protected": group_index[(p_score > prot_threshold).astype(int)]})
            rundir.write_text(labels.to_csv(index=False), labels_path)
        log.info("gan_debias stage 3: hallucinated labels of %d generated images (thresholds %.3f / %.3f):\n%s",
                 len(labels), target_threshold, prot_threshold,
                 pd.crosstab(labels["protected"].map(dict(enumerate(train.group_names))),
                             labels["target"].map(dict(enumerate(train.class_names)))).to_string())

        planes_path = self.stage_dir / "hyperplanes.json"
        n_svm = cfg.svm_samples
        if planes_path.is_file():
            planes = json.loads(planes_path.read_text())
        else:
            w_a, b_a, acc_a = fit_hyperplane(z[:n_svm], labels["target"].to_numpy()[:n_svm], cfg.svm_c, cfg.seed)
            w_g, b_g, acc_g = fit_hyperplane(z[:n_svm], labels["protected"].to_numpy()[:n_svm], cfg.svm_c, cfg.seed)
            planes = {"w_a": w_a.tolist(), "b_a": b_a, "svm_accuracy_target": acc_a,
                      "w_g": w_g.tolist(), "b_g": b_g, "svm_accuracy_protected": acc_g,
                      "cos_w_a_w_g": float(np.dot(w_a, w_g))}
            rundir.write_text(json.dumps(planes, indent=1), planes_path)
        w_a, w_g = np.array(planes["w_a"]), np.array(planes["w_g"])
        z_aug = z[n_svm:]
        z_prime_path = self.stage_dir / "latents_prime.npy"
        if z_prime_path.is_file():
            z_prime = np.load(z_prime_path)
        else:
            z_prime = complementary_latents(z_aug, w_a, planes["b_a"], w_g, planes["b_g"])
            save_npy(z_prime, z_prime_path)
        images_prime = self.images_of(generator, z_prime, "images_z_prime")
        self.write_pairs(images[n_svm:], images_prime)

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

    def write_pairs(self, left: torch.Tensor, right: torch.Tensor) -> None:
        path = self.stage_dir / "pairs.png"
        if path.is_file():
            return
        from fairrun.generative.grids import pair_grid

        n = min(self.cfg.grid_pairs, len(left))
        pair_grid(left[:n], right[:n], path, titles=("G(z)", "G(z′): protected attribute flipped"))
        from torch.utils.tensorboard import SummaryWriter

        from fairrun.generative.grids import grid_array

        interleaved = torch.stack([left[:n], right[:n]], dim=1).flatten(0, 1)  # rows: G(z) | G(z')
        with SummaryWriter(str(self.stage_dir.parent / "tb")) as writer:
            writer.add_image("gan_debias/pairs G(z) | G(z')", grid_array(interleaved, nrow=2), dataformats="HWC")

    def extra_results(self) -> dict:
        return dict(self.summary)


def materialized(train: LabeledSplit) -> LabeledSplit:
    """The training split with its images as one in-memory uint8 tensor (to append generated ones)."""
    train = load_into_memory(train)
    if not isinstance(train.images, torch.Tensor):
        train = dataclasses.replace(train, images=train.images.materialize())
    return train


def with_generated(train: LabeledSplit, images: torch.Tensor, y: torch.Tensor, g: torch.Tensor,
                   synthetic_weight: float = 1.0, fake_only: bool = False) -> LabeledSplit:
    """Real rows followed by generated ones (or the generated ones alone); generated rows weigh
    ``synthetic_weight`` in the loss (no weights at all when it is 1)."""
    if fake_only:
        return LabeledSplit(name="train", images=images, y=y, g=g, group_names=list(train.group_names),
                            class_names=list(train.class_names))
    weights = None
    if synthetic_weight != 1.0:
        weights = torch.cat([torch.ones(len(train)), torch.full((len(y),), float(synthetic_weight))])
    return LabeledSplit(name="train", images=torch.cat([train.images.cpu(), images]), y=torch.cat([train.y.cpu(), y]),
                        g=torch.cat([train.g.cpu(), g]), group_names=list(train.group_names),
                        class_names=list(train.class_names), weights=weights)


def binary_classifier(trained) -> tuple:
    """(model, method, threshold, class names) of a finished run (:class:`fairrun.evaluation.trained.TrainedRun`), which
    must classify two classes."""
    classes = trained.class_names
    if len(classes) != 2:
        raise FairrunError(f"{trained.run_dir} classifies {len(classes)} classes ({classes}); gan_debias needs "
                           f"binary target and protected classifiers.")
    threshold = trained.threshold
    return trained.model, trained.method, 0.5 if threshold is None else float(threshold), classes


def score(model, method, images: torch.Tensor, device, batch_size: int) -> np.ndarray:
    """P(class 1) of every image (uint8 N, C, H, W) under a binary classifier."""
    from fairrun.evaluation.predictions import predict_proba

    split = LabeledSplit(name="generated", images=images, y=torch.zeros(len(images), dtype=torch.long),
                         g=torch.zeros(len(images), dtype=torch.long), group_names=["all"], class_names=["0", "1"])
    with torch.no_grad():
        return predict_proba(model, method, split, batch_size, device)[:, 1].numpy()


def match_names(classifier_classes: list, wanted: list, role: str) -> np.ndarray:
    """Index map from a classifier's class order to this run's names (they must be the same two values)."""
    if sorted(map(str, classifier_classes)) != sorted(map(str, wanted)):
        raise FairrunError(f"The {role} classifier predicts {classifier_classes}, but this run's {role} values are "
                           f"{wanted}; give a {role}_run trained on the same attribute.")
    return np.array([list(map(str, wanted)).index(str(c)) for c in classifier_classes])


def save_npy(array: np.ndarray, path: Path) -> None:
    """Write an array atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)
