"""What the generative de-biasing methods (gan_debias, minority_gan) share: stages cached in
``<run dir>/gan_debias/``, the baseline classifiers trained as sub-runs, a generator (given, or the built-in
GAN trained as a stage), generated images, and the training split with generated rows added.

:class:`GenerativeStages` is the base of both methods; it registers no method itself. Every stage is a
:class:`~fairrun.core.stages.Stage` of one :class:`~fairrun.core.stages.StageDir`, keyed by
:func:`stage_key`: a re-run of the same command redoes nothing, a different configuration clears the stages.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from fairrun import rundir
from fairrun.core.errors import ConfigError, FairrunError
from fairrun.core.fingerprint import fingerprint
from fairrun.core.stages import StageDir, readable
from fairrun.core.validation import require
from fairrun.data.base import LabeledSplit
from fairrun.data.batches import load_into_memory
from fairrun.methods.base import Method

log = logging.getLogger("fairrun")

STAGE_DIR = "gan_debias"
# method keys that do not change a stage's artefact (only how the final classifier uses them)
NOT_STAGED = ("synthetic_weight", "fake_only", "grid_pairs", "trust_generator")


def stage_key(run, cfg) -> str:
    """Hash of everything the cached stages depend on: data, model, imbalance, seed, and the method keys."""
    relevant = {"dataset": dataclasses.asdict(run.dataset), "model": dataclasses.asdict(run.model),
                "imbalance": dataclasses.asdict(run.imbalance), "trainer": dataclasses.asdict(run.trainer),
                "seed": run.seed, "method": {k: v for k, v in dataclasses.asdict(cfg).items()
                                             if k not in NOT_STAGED}}
    return fingerprint(relevant)


class GenerativeStages(Method):
    """Base of the methods that train on real + generated images, with their stages cached in
    ``<run dir>/gan_debias/`` (``self.stages``). Its config has the keys ``target_run``, ``protected_run``,
    ``generator``, ``latent_dim``, ``trust_generator``, ``gan_epochs``, ``gan_width`` and ``batch_size``."""

    def __init__(self, cfg, *, num_classes: int, num_groups: int):
        super().__init__(cfg, num_classes=num_classes, num_groups=num_groups)
        self.run = None
        self.stages: Optional[StageDir] = None
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
        self.stages = StageDir(Path(run_dir) / STAGE_DIR, stage_key(run, self.cfg), what=STAGE_DIR).open()
        self.stage_dir = self.stages.path

    # -- baseline classifiers ----------------------------------------------------------------------
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
        sampling), as the paper trains it on all of CelebA. Sub-runs start from scratch (no init_from)."""
        from fairrun.evaluation.decision import EvalConfig, PostprocessConfig
        from fairrun.methods.erm import ERMConfig

        run = self.run
        dataset = run.dataset
        imbalance = run.imbalance
        if role == "protected":
            dataset = dataclasses.replace(dataset, target=run.dataset.protected, protected=run.dataset.target)
            imbalance = dataclasses.replace(imbalance, ratio=None, size=None, balance_target=False, majority=None,
                                            splits=["train"])
        targets = {section: target for section, target in run.targets.items() if section != "method"}
        return dataclasses.replace(run, dataset=dataset, imbalance=imbalance, method=ERMConfig(),
                                   eval=EvalConfig(threshold="f1"), postprocess=PostprocessConfig(),
                                   eval_datasets=[], resume=True, targets=targets, init_from=None, arm=None)

    # -- generator and generated images ------------------------------------------------------------
    def generator(self, train: LabeledSplit):
        """``method.generator``, or the built-in GAN trained on ``train`` into ``gan/`` (a cached stage)."""
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

    def array(self, name: str, compute) -> np.ndarray:
        """The array stage ``name`` (an ``.npy`` file): loaded if it is there, else ``compute()``, saved."""
        return self.stages.stage(name, load=readable(np.load)).run(compute, save=save_npy)

    def images_of(self, generator, z: np.ndarray, name: str) -> torch.Tensor:
        """G(z) as uint8 (N, C, H, W), cached as ``<name>.npy``."""
        return torch.from_numpy(self.array(f"{name}.npy", lambda: generator.generate_uint8(
            torch.as_tensor(z, dtype=torch.float32), batch_size=self.cfg.batch_size).numpy()))

    def extra_results(self) -> dict:
        return dict(self.summary)


def save_npy(array: np.ndarray, path: str) -> None:
    """Write ``array`` to ``path`` in NumPy's format, under exactly that name (no ``.npy`` appended)."""
    with open(path, "wb") as handle:
        np.save(handle, np.asarray(array))


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
