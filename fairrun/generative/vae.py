"""A small convolutional β-VAE for face images, and the ``fairrun vae train`` stage that trains one.

Model (:class:`ConvVAE`): the encoder halves the image with stride-2 4x4 convolutions (LeakyReLU 0.2)
until it is 4x4, flattens it and maps it linearly to the mean ``mu`` and log-variance ``logvar`` of a
diagonal Gaussian ``q(z|x) = N(mu, diag(exp(logvar)))`` over ``latent_dim`` dimensions; the decoder
mirrors it (a linear layer to 4x4 feature maps, stride-2 4x4 transposed convolutions with ReLU, a
``tanh`` output in [-1, 1], the range of fairrun's image tensors). Channel widths are ``width``,
``2 width``, ``4 width``, ``8 width`` (then constant) from the input side. No normalisation layers, so
the model behaves the same in train and eval mode. Images whose side is not ``4 * 2^k`` are resized
(bilinear) to the nearest such side on the way in and back on the way out.

Objective (:func:`vae_loss`), the β-VAE objective (Higgins et al., "β-VAE: Learning Basic Visual
Concepts with a Constrained Variational Framework", ICLR 2017) on the evidence lower bound of Kingma &
Welling ("Auto-Encoding Variational Bayes", ICLR 2014), for a batch of B images x_b with C·H·W values::

    recon_term = (1/B) Σ_b Σ_pixels (x_b − x̂_b)²              x̂_b = decoder(z_b), z_b = mu_b + σ_b·ε
    kl_term    = (1/B) Σ_b ½ Σ_j (mu_bj² + σ_bj² − 1 − log σ_bj²)    = KL(N(mu_b, σ_b²) ‖ N(0, I)), exactly
    total      = recon_term + β · kl_term

The squared error summed over pixels is the Gaussian negative log-likelihood −log N(x; x̂, ½ I) up to an
additive constant (a fixed decoder variance of ½ in the [-1, 1] pixel scale); β = 1 is the plain VAE.

Training (:func:`train_vae`) writes into ``out_dir``::

    checkpoints/last.pt     every epoch (atomic): weights, optimizer, history; resumed when present
    recon/epoch_XXX.png     originals (top row) and their reconstructions decoder(mu) (bottom row)
    tb/                     TensorBoard: vae/loss, vae/recon, vae/kl per epoch, vae/loss_step every 10
                            steps, vae/reconstructions (the grid) per epoch
    vae.pt                  the final model: state dict, config, image shape, class/group names, data config

A finished ``vae.pt`` of the same configuration is a cached stage: training is skipped. The configuration
fingerprint covers the ``vae`` keys except ``epochs`` (so ``vae.epochs`` can be raised to train on from
``last.pt``), the image shape, the labels of the training rows and the data config (``data``).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from fairrun import rundir
from fairrun.core.validation import require
from fairrun.data.base import LabeledSplit
from fairrun.data.batches import load_into_memory, to_float, train_batches
from fairrun.core.errors import ConfigError, FairrunError
from fairrun.core.fingerprint import fingerprint as content_fingerprint

log = logging.getLogger("fairrun")

VAE_FILE = "vae.pt"
FORMAT = "fairrun-vae-1"


# -- model -----------------------------------------------------------------------------------------

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


# -- configuration ---------------------------------------------------------------------------------

@dataclass
class VaeConfig:
    """The ``vae`` section of ``fairrun vae train`` (see ``conf/vae.yaml``)."""

    latent_dim: int = 32  # dimension of z
    beta: float = 1.0  # weight of the KL term (1 = plain VAE, > 1 = β-VAE)
    width: int = 32  # channels of the first convolution (x2 per layer, at most x8)
    epochs: int = 10
    batch_size: int = 128
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


def _load_if_exists(path: Path) -> Optional[dict]:
    return rundir.load_checkpoint(path) if Path(path).is_file() else None


def train_vae(split: LabeledSplit, cfg: VaeConfig, out_dir, device: torch.device, data: Optional[dict] = None,
              resume: bool = True) -> Path:
    """Train a ConvVAE on ``split`` and write ``out_dir/vae.pt`` (returned); see the module docstring.

    ``data``: the data configuration to record in vae.pt (``fairrun vae train`` stores the dataset and
    imbalance sections there so ``fairrun vae minority`` can rebuild the training split). ``resume``:
    continue from ``checkpoints/last.pt`` (and skip a finished ``vae.pt``) of the same configuration;
    false starts ``out_dir`` over.
    """
    from torch.utils.tensorboard import SummaryWriter

    from fairrun.data.batches import epoch_order
    from fairrun.generative.grids import grid_array, save_grid

    cfg.validate()
    out_dir = Path(out_dir)
    final, last = out_dir / VAE_FILE, out_dir / rundir.LAST
    if len(split) == 0:
        raise FairrunError("The VAE's training split is empty.")
    fp = fingerprint(cfg, split, data)
    if not resume:
        for stale in (VAE_FILE, "checkpoints", "tb", "recon"):
            path = out_dir / stale
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    done = _load_if_exists(final)
    if done is not None:
        if done.get("fingerprint") != fp:
            raise ConfigError(f"{final} holds a VAE trained with a different configuration (vae.* keys, data "
                              f"or image size), so it cannot be reused or extended. Choose another out_dir, "
                              f"or pass resume=false to train this one over.")
        if done["config"]["epochs"] == cfg.epochs:
            log.info("%s already holds this VAE (%d epochs); training skipped", final, cfg.epochs)
            return final
    plain = load_into_memory(dataclasses.replace(split, sample_probs=None, weights=None))
    vae = build_vae(cfg, split.images.shape[1:]).to(device)
    optimizer = torch.optim.Adam(vae.parameters(), lr=cfg.lr)
    start, history, global_step = 0, [], 0
    ckpt = _load_if_exists(last)
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
