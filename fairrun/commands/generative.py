"""`fairrun gan train`, `fairrun vae train` and `fairrun vae minority`."""
from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

from fairrun.commands.common import user_errors


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="gan")
def gan_train_app(cfg: DictConfig) -> None:
    """`fairrun gan train dataset=NAME`: train the built-in GAN and export its generator."""
    from fairrun.generative.gan import run_gan_train

    out_dir = Path(to_absolute_path(cfg.out_dir))
    with user_errors(out_dir):
        run_gan_train(cfg)


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="vae")
def vae_train_app(cfg: DictConfig) -> None:
    """`fairrun vae train dataset=NAME`: train the convolutional VAE."""
    from fairrun.generative.vae import run_vae_train

    out_dir = Path(to_absolute_path(cfg.out_dir))
    with user_errors(out_dir):
        run_vae_train(cfg)


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="vae_minority")
def vae_minority_app(cfg: DictConfig) -> None:
    """`fairrun vae minority run_dir=PATH`: the rarest training images under the VAE's latent density."""
    from fairrun.generative.minority import run_vae_minority

    with user_errors():
        run_vae_minority(cfg)
