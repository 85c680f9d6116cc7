"""The ``fairrun vae train`` stage: a convolutional β-VAE (:mod:`fairrun.generative.vae_model`: the model,
its objective and the latent means) trained on a split's images, without labels.

Training (:func:`train_vae`) writes into ``out_dir``::

    checkpoints/last.pt     every epoch (atomic): weights, optimizer, history; resumed when present
    recon/epoch_XXX.png     originals (top row) and their reconstructions decoder(mu) (bottom row)
    tb/                     TensorBoard: vae/loss, vae/recon, vae/kl per epoch, vae/loss_step every 10
                            steps, vae/reconstructions (the grid) per epoch
    vae.pt                  the final model: state dict, config, image shape, class/group names, data config

A finished ``vae.pt`` of the same configuration is a cached stage (:class:`~fairrun.core.stages.Stage`):
training is skipped. The configuration fingerprint covers the ``vae`` keys except ``epochs`` (so
``vae.epochs`` can be raised to train on from ``last.pt``), the image shape, the labels of the training rows
and the data config (``data``).
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from fairrun import rundir
from fairrun.core.errors import ConfigError, FairrunError
from fairrun.core.fingerprint import fingerprint as content_fingerprint
from fairrun.core.stages import Stage
from fairrun.core.validation import require
from fairrun.data.base import LabeledSplit
from fairrun.data.batches import load_into_memory, to_float, train_batches
# the model and its objective, imported from here too
from fairrun.generative.vae_model import (ConvVAE, encode_means, internal_size, vae_loss,  # noqa: F401
                                          vae_terms)

log = logging.getLogger("fairrun")

VAE_FILE = "vae.pt"
FORMAT = "fairrun-vae-1"


# -- configuration ---------------------------------------------------------------------------------

@dataclass
class VaeConfig:
    """``fairrun vae train``'s ``vae.*`` keys: a convolutional β-VAE."""

    latent_dim: int = 32  # dimension of the latent z
    # weight of KL(q(z|x) || N(0, I)) against the summed squared reconstruction error (1 = plain VAE, Kingma &
    # Welling 2014; > 1 = β-VAE, Higgins et al. 2017)
    beta: float = 1.0
    width: int = 32  # channels of the first stride-2 convolution (x2 per layer, at most x8), down to 4x4
    epochs: int = 10  # raise it and run again with the same out_dir to train on from checkpoints/last.pt
    batch_size: int = 128  # images per step
    lr: float = 1e-3  # Adam
    seed: int = 0  # weight init, batch order, sampling noise (and the imbalance sampling of the CLI)

    def validate(self) -> None:
        for key in ("latent_dim", "width", "epochs", "batch_size"):
            value = getattr(self, key)
            require(isinstance(value, int) and value >= 1, f"vae.{key}", value, "an integer >= 1")
        require(self.beta >= 0, "vae.beta", self.beta, "a number >= 0 (1 = plain VAE)")
        require(self.lr > 0, "vae.lr", self.lr, "a number > 0")
        require(isinstance(self.seed, int) and self.seed >= 0, "vae.seed", self.seed, "an integer >= 0")


def labels_digest(split: LabeledSplit) -> str:
    """A short hash of a split's labels and groups (identifies the training rows cheaply)."""
    return content_fingerprint(split.y.cpu().numpy().tobytes(), split.g.cpu().numpy().tobytes())


def fingerprint(cfg: VaeConfig, split: LabeledSplit, data: Optional[dict]) -> str:
    """A hash of what determines the trained VAE, except ``epochs`` (training can be extended)."""
    relevant = dataclasses.asdict(cfg)
    relevant.pop("epochs")
    relevant.update(image_shape=list(split.images.shape[1:]), n=len(split), labels=labels_digest(split),
                    class_names=list(split.class_names), group_names=list(split.group_names), data=data)
    return content_fingerprint(relevant)


# -- training --------------------------------------------------------------------------------------

def build_vae(cfg: VaeConfig, image_shape) -> ConvVAE:
    """A ConvVAE for images of ``image_shape`` (C, H, W), initialised from ``cfg.seed`` (the global RNG is
    left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return ConvVAE(int(image_shape[0]), int(image_shape[-1]), cfg.latent_dim, cfg.width)


def _noise_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 100_003 + epoch) * 1_000_003 + 17)


def preview_rows(split: LabeledSplit, n: int = 8, seed: int = 0) -> torch.Tensor:
    """Up to ``n`` rows visiting every (group, label) cell in turn (so rare groups show in the grids)."""
    from fairrun.report.data_report import pick_samples

    return pick_samples(split, n, seed)


def recon_grid(vae: ConvVAE, images_uint8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Originals followed by their reconstructions decoder(mu), floats in [-1, 1] on the CPU (2k, C, H, W)."""
    was_training = vae.training
    vae.eval()
    with torch.no_grad():
        x = to_float(images_uint8, device)
        out = torch.cat([x, vae.reconstruct(x).float()]).cpu()
    vae.train(was_training)
    return out


def train_vae(split: LabeledSplit, cfg: VaeConfig, out_dir, device: torch.device, data: Optional[dict] = None,
              resume: bool = True) -> Path:
    """Train a ConvVAE on ``split`` and write ``out_dir/vae.pt`` (returned); see the module docstring.

    ``data``: the data configuration to record in vae.pt (``fairrun vae train`` stores the dataset and
    imbalance sections there so ``fairrun vae minority`` can rebuild the training split). ``resume``:
    continue from ``checkpoints/last.pt`` (and skip a finished ``vae.pt``) of the same configuration;
    false starts ``out_dir`` over.
    """
    cfg.validate()
    out_dir = Path(out_dir)
    final = out_dir / VAE_FILE
    if len(split) == 0:
        raise FairrunError("The VAE's training split is empty.")
    fp = fingerprint(cfg, split, data)
    if not resume:
        for stale in (VAE_FILE, "checkpoints", "tb", "recon"):
            path = out_dir / stale
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    stage = Stage("the VAE", final, fp, record=rundir.load_checkpoint,
                  finished=lambda done: done["config"]["epochs"] == cfg.epochs,
                  mismatch=lambda done: ConfigError(
                      f"{final} holds a VAE trained with a different configuration (vae.* keys, data or "
                      f"image size), so it cannot be reused or extended. Choose another out_dir, or pass "
                      f"resume=false to train this one over."),
                  reusing=("%s already holds this VAE (%d epochs); training skipped", final, cfg.epochs))
    return stage.run(lambda: _train(split, cfg, out_dir, device, data, fp))


def _train(split: LabeledSplit, cfg: VaeConfig, out_dir: Path, device: torch.device, data: Optional[dict],
           fp: str) -> Path:
    """The VAE stage's work: resume from last.pt (same fingerprint) or start, train to ``cfg.epochs`` (a
    checkpoint and a reconstruction grid every epoch), write vae.pt."""
    from torch.utils.tensorboard import SummaryWriter

    from fairrun.data.batches import epoch_order
    from fairrun.generative.grids import grid_array, save_grid

    final, last = out_dir / VAE_FILE, out_dir / rundir.LAST
    plain = load_into_memory(dataclasses.replace(split, sample_probs=None, weights=None))
    vae = build_vae(cfg, split.images.shape[1:]).to(device)
    optimizer = torch.optim.Adam(vae.parameters(), lr=cfg.lr)
    start, history, global_step = 0, [], 0
    ckpt = rundir.load_checkpoint(last) if last.is_file() else None
    if ckpt is not None:
        if ckpt["fingerprint"] != fp:
            raise ConfigError(f"{last} was written for a VAE with a different configuration, so it cannot be "
                              f"resumed with this one. Choose another out_dir, or pass resume=false to start "
                              f"this one over.")
        if ckpt["epoch"] > cfg.epochs:
            raise ConfigError(f"Invalid value for 'vae.epochs': {cfg.epochs}. {out_dir} already holds a VAE "
                              f"trained for {ckpt['epoch']} epochs with this configuration. Accepted: at "
                              f"least {ckpt['epoch']}, or another out_dir, or resume=false.")
        vae.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start, history, global_step = ckpt["epoch"], list(ckpt["history"]), ckpt["global_step"]
        log.info("resuming the VAE in %s from epoch %d", out_dir, start + 1)
    preview = split.images[preview_rows(split, 8, cfg.seed)]
    writer = SummaryWriter(str(out_dir / "tb"), purge_step=global_step + 1 if ckpt is not None else None)
    try:
        for epoch in range(start, cfg.epochs):
            vae.train()
            order = epoch_order(plain, cfg.seed, epoch)
            noise = _noise_generator(cfg.seed, epoch)
            sums = torch.zeros(3, dtype=torch.float64)
            for batch in train_batches(plain, order, cfg.batch_size, device):
                recon, mu, logvar = vae(batch.x, noise)
                total, rec, kl = vae_loss(batch.x, recon, mu, logvar, cfg.beta)
                values = torch.stack([total, rec, kl]).detach().double().cpu()  # one device sync per step
                if not torch.isfinite(values[0]):
                    raise FairrunError(f"The VAE loss became {values[0].item()} at epoch {epoch + 1}; "
                                       f"lower vae.lr.")
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
                global_step += 1
                sums += values * len(batch.y)
                if global_step % 10 == 0:
                    writer.add_scalar("vae/loss_step", values[0].item(), global_step)
            means = (sums / len(split)).tolist()
            history.append({"epoch": epoch + 1, "loss": means[0], "recon": means[1], "kl": means[2]})
            for key, value in zip(("loss", "recon", "kl"), means):
                writer.add_scalar(f"vae/{key}", value, global_step)
            grid = recon_grid(vae, preview, device)
            png = save_grid(grid, out_dir / "recon" / f"epoch_{epoch + 1:03d}.png", nrow=len(preview))
            writer.add_image("vae/reconstructions", grid_array(grid, nrow=len(preview)), global_step,
                             dataformats="HWC")
            rundir.save_checkpoint({"fingerprint": fp, "epoch": epoch + 1, "global_step": global_step,
                                    "model": vae.state_dict(), "optimizer": optimizer.state_dict(),
                                    "history": history}, last)
            log.info("VAE epoch %d/%d  loss %.2f  recon %.2f  kl %.2f  (%s)", epoch + 1, cfg.epochs, *means,
                     png)
    finally:
        writer.close()
    rundir.save_checkpoint({
        "format": FORMAT, "fingerprint": fp, "state_dict": vae.state_dict(),
        "config": dataclasses.asdict(cfg),
        "image_shape": list(split.images.shape[1:]), "class_names": list(split.class_names),
        "group_names": list(split.group_names), "n_train": len(split), "labels": labels_digest(split),
        "data": data, "history": history,
    }, final)
    return final


def load_vae(path, device: torch.device | str = "cpu") -> tuple[ConvVAE, VaeConfig, dict]:
    """Load ``vae.pt`` (or the directory holding it) -> (ConvVAE in eval mode, its VaeConfig, meta).

    ``meta`` is everything else vae.pt records: image_shape, class_names, group_names, n_train, labels,
    data (the data config, or None), history, fingerprint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / VAE_FILE
    if not path.is_file():
        raise FairrunError(f"No trained VAE at {path}: expected the vae.pt that `fairrun vae train` writes "
                           f"into its out_dir.")
    state = rundir.load_checkpoint(path)
    if state.get("format") != FORMAT:
        raise FairrunError(f"{path} is not a VAE written by `fairrun vae train`.")
    cfg = VaeConfig(**state["config"])
    shape = state["image_shape"]
    vae = ConvVAE(int(shape[0]), int(shape[-1]), cfg.latent_dim, cfg.width)
    vae.load_state_dict(state["state_dict"])
    vae.to(device).eval()
    meta = {k: v for k, v in state.items() if k not in ("state_dict", "config")}
    return vae, cfg, meta


# -- `fairrun vae train` ---------------------------------------------------------------------------

TOP_KEYS = ("dataset", "gpu", "vae", "imbalance", "out_dir", "resume")


def validate_vae_train_config(cfg) -> dict[str, Any]:
    """Check `fairrun vae train`'s composed config; returns the typed sections (ConfigError naming a bad
    key)."""
    from omegaconf import OmegaConf

    from fairrun.data.registry import validate_dataset_section
    from fairrun.core.sections import GpuConfig, ImbalanceConfig, normalise_amp, validate_gpu, validate_imbalance
    from fairrun.core.validation import typed_section

    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    OmegaConf.set_struct(plain, False)
    unknown = sorted(set(plain.keys()) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"Unknown top-level key(s) {', '.join(unknown)} for fairrun vae train. Accepted: "
                          f"{', '.join(TOP_KEYS)}.")
    if plain.get("dataset") is None:
        raise ConfigError("fairrun vae train needs a dataset: dataset=NAME (e.g. dataset=synthetic).")
    dataset = validate_dataset_section(plain.dataset)
    if plain.get("gpu") is not None:
        normalise_amp(plain.gpu)
    gpu = typed_section("gpu", GpuConfig, plain.get("gpu"))
    validate_gpu(gpu)
    imbalance = typed_section("imbalance", ImbalanceConfig, plain.get("imbalance"))
    validate_imbalance(imbalance)
    vae = typed_section("vae", VaeConfig, plain.get("vae"))
    vae.validate()
    out_dir = plain.get("out_dir")
    require(isinstance(out_dir, str) and out_dir != "", "out_dir", out_dir, "a directory path")
    resume = plain.get("resume", True)
    require(isinstance(resume, bool), "resume", resume, "true or false")
    return {"dataset": dataset, "gpu": gpu, "imbalance": imbalance, "vae": vae, "out_dir": Path(out_dir),
            "resume": resume}


def data_config(dataset, imbalance) -> dict:
    """What vae.pt records about the data, enough to rebuild the training split."""
    return {"dataset": dataclasses.asdict(dataset), "imbalance": dataclasses.asdict(imbalance)}


def load_train_split(dataset, imbalance, seed: int, workers: int = 0):
    """``(split, source_rows, cache_rows)``: the training split (after imbalance sampling with ``seed``);
    per row, its row in the dataset's full training split (before imbalance sampling); and, for on-disk
    datasets, its row in the decoded-image cache (one row per metadata row; None otherwise)."""
    from fairrun.data.images import ImageRows

    from fairrun.data.imbalance import apply_imbalance
    from fairrun.data.registry import load_dataset

    train = load_dataset(dataset, workers=workers)["train"]
    n = len(train)
    # Run the imbalance sampling on a stand-in whose "images" are the row numbers: it keeps the same rows
    # (the draw depends only on labels, groups and seed), so we learn which rows it keeps.
    probe = dataclasses.replace(train, images=torch.arange(n).view(n, 1, 1, 1))
    kept = apply_imbalance(probe, imbalance, seed).images.view(-1)
    cache_rows = train.images.index[kept] if isinstance(train.images, ImageRows) else None
    if len(kept) == n and torch.equal(kept, torch.arange(n)):
        return train, kept, cache_rows
    return train.subset(kept), kept, cache_rows


def run_vae_train(cfg) -> Path:
    """`fairrun vae train dataset=… vae.*=… out_dir=…`: train the VAE on the training split; returns the
    path of vae.pt."""
    from fairrun.core.devices import resolve_device

    sections = validate_vae_train_config(cfg)
    device = resolve_device(sections["gpu"])
    vae_cfg = sections["vae"]
    train, _, _ = load_train_split(sections["dataset"], sections["imbalance"], vae_cfg.seed,
                                sections["gpu"].num_workers)
    if len(train) == 0:
        raise ConfigError("The training set is empty after imbalance sampling; check imbalance.* keys.")
    out_dir = sections["out_dir"]
    print(f"fairrun vae train: {len(train)} training images {tuple(train.images.shape[1:])} of "
          f"{sections['dataset'].name}, latent_dim {vae_cfg.latent_dim}, beta {vae_cfg.beta}, "
          f"{vae_cfg.epochs} epochs on {device} -> {out_dir}")
    path = train_vae(train, vae_cfg, out_dir, device,
                     data=data_config(sections["dataset"], sections["imbalance"]), resume=sections["resume"])
    state = rundir.load_checkpoint(path)
    if state["history"]:
        h = state["history"][-1]
        print(f"final epoch {h['epoch']}: loss {h['loss']:.2f} (recon {h['recon']:.2f}, kl {h['kl']:.2f})")
    print(f"wrote {path}\n  reconstructions: {out_dir / 'recon'}\n  TensorBoard: tensorboard --logdir "
          f"{out_dir / 'tb'}\n  next: fairrun vae minority run_dir={out_dir}")
    return path
