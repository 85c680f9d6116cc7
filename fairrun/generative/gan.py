"""The built-in GAN: a small DCGAN trained on a split's images (`fairrun gan train`, and a cached stage of
the generative de-biasing methods).

This module holds its configuration (:class:`GanConfig`), the choice of training images and the cached,
resumable stage :func:`train_gan`; the networks are in :mod:`fairrun.generative.gan_networks` (a generator
and discriminator sized by the image size, a power of two from 16 to 128, and ``gan.width``), the losses,
optimiser, weight average and epochs in :mod:`fairrun.generative.gan_training` (non-saturating loss with a
lazy R1 penalty, or hinge; Adam with betas (0, 0.99); an exponential moving average of G's weights).

Defaults (width 16, batch 32) are sized for the CPU: at 32 px an epoch over 4000 images takes
about 20 s on one core; on a GPU raise ``gan.width`` (32-64) for sharper images.

Training is deterministic and resumable: resuming from ``checkpoints/last.pt`` (written atomically after
every epoch) gives exactly the weights of an uninterrupted run on the same device. The output directory::

    generator.pt             the trained generator (TorchScript + fairrun.json metadata; see generators.py)
    gan_config.yaml          the GAN config, training-data summary and fingerprint
    checkpoints/last.pt      G, D, both optimisers, epoch, RNG state, loss history
    samples/epoch_NNN.png    G(z) for a fixed set of 64 latents, every ``gan.sample_every`` epochs
    samples/final.png        the same latents through the exported generator
    samples/real.png         64 training images, for comparison
    tb/                      TensorBoard: losses per epoch and the sample grids
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import yaml

from fairrun import rundir
from fairrun.core.errors import ConfigError
from fairrun.core.fingerprint import fingerprint as content_fingerprint
from fairrun.core.stages import Stage
from fairrun.core.validation import require, require_choice
from fairrun.data.base import LabeledSplit
# the networks, imported from here too
from fairrun.generative.gan_networks import Discriminator, Generator, build_networks  # noqa: F401
from fairrun.generative.gan_training import SAMPLE_GRID, GanTrainer
from fairrun.generative.generators import export_generator, load_generator, read_metadata
from fairrun.generative.grids import save_grid

log = logging.getLogger("fairrun")

LOSSES = ("ns_r1", "hinge")
UPSAMPLING = ("nearest", "transpose")
MIN_IMAGES = 16
GENERATOR = "generator.pt"
LAST = Path("checkpoints") / "last.pt"
CONFIG_RECORD = "gan_config.yaml"
# keys that do not change the trained weights (epochs: training to more epochs resumes the same run)
NOT_FINGERPRINTED = ("epochs", "sample_every", "generator")


@dataclass
class GanConfig:
    """``fairrun gan train``'s ``gan.*`` keys: the built-in GAN (a small DCGAN with an R1 penalty)."""

    latent_dim: int = 64  # length of the latent vector z ~ N(0, I)
    # base channel count: channels at full resolution, x2 per halving (at most 8x). Cost grows ~ width^2: at
    # 32 px, 16 takes ~20 s per 4000-image epoch on one CPU core; use 32-64 on a GPU
    width: int = 16
    # passes over the training images; asking a finished out_dir for more epochs continues it
    epochs: int = 20
    batch_size: int = 32  # images per step of each network
    lr: float = 5e-4  # Adam learning rate of both networks
    # Adam betas (0.0, 0.99) as in Mescheder et al. 2018 and StyleGAN2 (0.5 collapsed here)
    beta1: float = 0.0
    beta2: float = 0.99  # Adam's second beta
    # generator upsampling: nearest (x2 + 3x3 conv, no checkerboard) | transpose (4x4 stride-2 ConvTranspose2d
    # as in DCGAN: ~20% cheaper, checkerboard artefacts early on)
    upsample: str = "nearest"
    # ns_r1: non-saturating logistic loss + R1 penalty on real images (Mescheder et al., ICML 2018) | hinge
    # (usually with spectral_norm=true r1_gamma=0)
    loss: str = "ns_r1"
    # R1 weight: gamma/2 * E||grad_x D(x)||^2 on real images (0 = off; also applies to hinge)
    r1_gamma: float = 10.0
    r1_every: int = 4  # lazy R1: compute the penalty every this many discriminator steps, scaled up to match
    spectral_norm: bool = False  # spectral normalisation of every discriminator layer
    # sample and export an exponential moving average of G's weights (its BatchNorm statistics measured again
    # for the averaged weights); 0 = the last G
    ema: float = 0.995
    hflip: bool = True  # random horizontal flips of the training images
    # train only on images of this protected group (its name, e.g. B); null = all groups
    group: Optional[str] = None
    # train only on images of this target class (its name, e.g. smiling); null = all classes
    label: Optional[str] = None
    seed: int = 0  # weight init, image order, flips, latents, and the fixed latents of the sample grids
    sample_every: int = 1  # write samples/epoch_NNN.png (and a TensorBoard image) every this many epochs
    # an external TorchScript generator for the GAN-based methods (not used by gan train)
    generator: Optional[str] = None
    # null = dataset.image_size (the built-in GAN needs 16, 32, 64 or 128); for an external generator without
    # metadata: the size its images are resized to
    image_size: Optional[int] = None

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

    A cached, resumable stage (:class:`~fairrun.core.stages.Stage`): a finished ``out_dir`` (its generator.pt
    records the same fingerprint and ``cfg.epochs``) is returned at once; otherwise training resumes from
    ``checkpoints/last.pt`` when it holds the same fingerprint, so asking a finished run for more epochs
    continues it. The fingerprint covers every ``gan.*`` key except ``epochs``, ``sample_every`` and
    ``generator``, plus the size and a digest of the training images; a mismatch is a :class:`ConfigError`.
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

    def mismatch(what: str) -> ConfigError:  # the record on disk names the keys that differ
        saved = None
        if (out_dir / CONFIG_RECORD).is_file():
            saved = yaml.safe_load((out_dir / CONFIG_RECORD).read_text()) or {}
        return _mismatch(out_dir, what, saved, record)

    stage = Stage(f"the GAN in {out_dir}", out_dir / GENERATOR, fp,
                  record=lambda path: read_metadata(path) or {},
                  finished=lambda meta: meta.get("epochs") == cfg.epochs,
                  mismatch=lambda meta: mismatch(GENERATOR),
                  reusing=("%s already holds a GAN trained for %d epochs with this configuration; reusing it",
                           out_dir, cfg.epochs))
    return stage.run(lambda: _train(split, cfg, out_dir, device, writer, record, mismatch))


def _train(split: LabeledSplit, cfg: GanConfig, out_dir: Path, device: torch.device, writer: Any,
           record: dict, mismatch: Callable[[str], ConfigError]) -> Path:
    """The GAN stage's work: resume (same fingerprint) or start, train to ``cfg.epochs``, export
    generator.pt."""
    fp, shape = record["fingerprint"], tuple(record["data"]["shape"])
    trainer = GanTrainer(split, cfg, device)
    ckpt_path = out_dir / LAST
    if ckpt_path.is_file():
        state = rundir.load_checkpoint(ckpt_path)
        if state.get("fingerprint") != fp:
            raise mismatch(str(LAST))
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
        trainer.fit(fp, ckpt_path, samples_dir, writer)
    finally:
        if own_writer:
            writer.close()
    trainer.recalibrate()
    gen_path = out_dir / GENERATOR
    export_generator(trainer.output_generator.eval(), gen_path, cfg.latent_dim, shape[-1], shape[0],
                     source="fairrun dcgan",
                     extra={"fingerprint": fp, "epochs": cfg.epochs, "width": cfg.width, "loss": cfg.loss})
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
