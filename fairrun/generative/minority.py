"""``fairrun vae minority``: the training images a VAE finds rarest, and which groups and labels they are.

The VAE of ``fairrun vae train`` encodes every training image;
:func:`fairrun.generative.density.find_minority` picks the ``fraction`` with the lowest latent density
(per-dimension histograms, as DB-VAE estimates it). :func:`enrichment_table` then says "what is
missing" from the data: for each protected group,
each target label and each group x label cell, its share among those rare images against its share of
the whole training split. An enrichment far above 1 means the VAE, which never saw a group label,
finds that group's images atypical: the group is under-represented (or looks unlike the rest).

Files written into the VAE's directory (``run_dir``)::

    minority.csv              rank, row (into the training split), log_density, group, label,
                              source_row (row of the dataset's training split before imbalance
                              sampling) and path (on-disk datasets)
    minority_enrichment.csv   the enrichment table
    minority_grid.png         the rarest images (at most ``grid`` of them), rarest first
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch

from fairrun import rundir
from fairrun.core.validation import require, require_choice
from fairrun.data.base import LabeledSplit
from fairrun.core.errors import ConfigError, FairrunError
from fairrun.generative.density import COMBINES, find_minority, latent_density

log = logging.getLogger("fairrun")

MINORITY_CSV = "minority.csv"
ENRICHMENT_CSV = "minority_enrichment.csv"
MINORITY_GRID = "minority_grid.png"


def enrichment_table(split: LabeledSplit, index) -> pd.DataFrame:
    """Composition of the rows ``index`` of ``split`` against the whole split.

    One row per protected group (``kind="group"``, label "all"), per target label (``kind="label"``,
    group "all") and per group x label cell (``kind="group_label"``), with columns ``n_minority``,
    ``minority_share`` (n_minority / len(index)), ``n_train``, ``train_share`` (n_train / len(split)) and
    ``enrichment`` = minority_share / train_share (NaN when the category is absent from the split).
    """
    index = torch.as_tensor(np.asarray(index, dtype=np.int64))
    g, y = split.g.cpu(), split.y.cpu()
    n_all, n_min = max(len(split), 1), max(len(index), 1)
    G, K = split.num_groups, split.num_classes
    cell_all = torch.bincount(g * K + y, minlength=G * K).reshape(G, K).numpy()
    cell_min = torch.bincount(g[index] * K + y[index], minlength=G * K).reshape(G, K).numpy()
    rows = []

    def add(kind, group, label, n_m, n_t):
        minority_share, train_share = n_m / n_min, n_t / n_all
        rows.append({"kind": kind, "group": group, "label": label, "n_minority": int(n_m),
                     "minority_share": minority_share if len(index) else float("nan"), "n_train": int(n_t),
                     "train_share": train_share,
                     "enrichment": minority_share / train_share if n_t and len(index) else float("nan")})

    for k, name in enumerate(split.group_names):
        add("group", name, "all", cell_min[k].sum(), cell_all[k].sum())
    for c, name in enumerate(split.class_names):
        add("label", "all", name, cell_min[:, c].sum(), cell_all[:, c].sum())
    for k, group in enumerate(split.group_names):
        for c, label in enumerate(split.class_names):
            add("group_label", group, label, cell_min[k, c], cell_all[k, c])
    return pd.DataFrame(rows)


def format_enrichment(table: pd.DataFrame) -> str:
    """The enrichment table as text for the terminal."""
    shown = table.copy()
    for column in ("minority_share", "train_share"):
        shown[column] = shown[column].map(lambda v: f"{100 * v:.1f}%")
    shown["enrichment"] = shown["enrichment"].map(lambda v: "-" if np.isnan(v) else f"{v:.2f}x")
    return shown.to_string(index=False)


# -- `fairrun vae minority` --------------------------------------------------------------------------

@dataclass
class MinorityConfig:
    """``fairrun vae minority``'s keys: which training images a trained VAE finds rarest."""

    run_dir: str  # the out_dir of `fairrun vae train` (holds vae.pt and the data config it was trained on)
    fraction: float = 0.05  # share of the training images called the minority (the rarest ones)
    bins: int = 10  # histogram bins per latent dimension (over each dimension's min..max)
    # added to every bin's probability before renormalising (keeps log densities finite)
    smoothing: float = 0.001
    # product: density = Π_d p_d (DB-VAE, Amini et al. AIES 2019) | max: the rarest dimension decides, as in
    # the MIT 6.S191 DB-VAE lab (see fairrun/generative/density.py)
    combine: str = "product"
    batch_size: int = 512  # images encoded at once
    grid: int = 64  # images in minority_grid.png (the rarest first)

    def validate(self) -> None:
        require(isinstance(self.fraction, (int, float)) and 0 < self.fraction <= 1, "fraction", self.fraction,
                "a number in (0, 1]: the share of the training images to call the minority")
        require(isinstance(self.bins, int) and self.bins >= 1, "bins", self.bins,
                "an integer >= 1 (histogram bins per latent dimension)")
        require(self.smoothing >= 0, "smoothing", self.smoothing, "a number >= 0")
        require_choice("combine", self.combine, COMBINES)
        require(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", self.batch_size,
                "an integer >= 1")
        require(isinstance(self.grid, int) and 1 <= self.grid <= 256, "grid", self.grid,
                "an integer from 1 to 256")


def validate_minority_config(cfg) -> tuple[MinorityConfig, object]:
    """Check `fairrun vae minority`'s composed config; returns (MinorityConfig, GpuConfig)."""
    from omegaconf import OmegaConf

    from fairrun.core.sections import GpuConfig, normalise_amp, validate_gpu

    from fairrun.core.validation import typed_section

    if OmegaConf.is_missing(cfg, "run_dir") or cfg.get("run_dir") in (None, ""):
        raise ConfigError("fairrun vae minority needs the VAE to use: run_dir=PATH (the out_dir of "
                          "`fairrun vae train`, holding vae.pt).")
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    OmegaConf.set_struct(plain, False)
    gpu_node = plain.pop("gpu", None)
    if gpu_node is not None:
        normalise_amp(gpu_node)
    gpu = typed_section("gpu", GpuConfig, gpu_node)
    validate_gpu(gpu)
    try:
        minority = typed_section("minority", MinorityConfig, plain)
    except ConfigError as err:  # the keys are top-level on the command line: name them so
        raise ConfigError(str(err).replace("'minority.", "'").replace("in 'minority'", "here")) from None
    minority.validate()
    return minority, gpu


def rebuild_train_split(meta: dict, vae_path: Path, workers: int = 0):
    """The training split a VAE was trained on, from the data config stored in vae.pt.

    Returns (split, source_row per row, cache row per row or None, dataset config); raises FairrunError
    when vae.pt has no data config or the rebuilt split's labels differ from those the VAE was trained on.
    """
    from omegaconf import OmegaConf

    from fairrun.data.registry import validate_dataset_section

    from fairrun.core.sections import ImbalanceConfig

    from fairrun.core.validation import typed_section
    from fairrun.generative.vae import labels_digest, load_train_split

    data = meta.get("data")
    if not data:
        raise FairrunError(f"{vae_path} records no data configuration (it was not written by `fairrun vae "
                           f"train`), so the training split cannot be rebuilt.")
    dataset = validate_dataset_section(OmegaConf.create(data["dataset"]))
    imbalance = typed_section("imbalance", ImbalanceConfig, data.get("imbalance"))
    split, source, cache_rows = load_train_split(dataset, imbalance, int(meta.get("seed", 0)), workers)
    if len(split) != meta.get("n_train") or labels_digest(split) != meta.get("labels"):
        raise FairrunError(f"The training split of {dataset.name} rebuilt from {vae_path} differs from the "
                           f"one the VAE was trained on ({len(split)} vs {meta.get('n_train')} images, or "
                           f"other labels): the dataset files changed. Train the VAE again.")
    return split, source, cache_rows, dataset


def source_paths(dataset, cache_rows: Optional[torch.Tensor]) -> Optional[list[str]]:
    """Per row, the image file (relative to dataset.root) of an on-disk dataset; None otherwise.

    ``cache_rows``: each row's row in the decoded-image cache, which has one row per row of the
    dataset's metadata table.
    """
    if cache_rows is None:
        return None
    try:
        from fairrun.data.files import table_and_splits
        from fairrun.data.registry import DATASETS

        table, _ = table_and_splits(dataset, DATASETS[dataset.name].read_table)
        return [table.paths[int(r)] for r in cache_rows]
    except Exception as err:  # paths are a convenience: never fail the report for them
        log.info("image paths not available (%s)", err)
        return None


def minority_frame(split: LabeledSplit, index: np.ndarray, density: np.ndarray, source: torch.Tensor,
                   paths: Optional[list[str]]) -> pd.DataFrame:
    """One row per minority image, rarest first."""
    idx = torch.as_tensor(index)
    frame = pd.DataFrame({
        "rank": np.arange(1, len(index) + 1),
        "row": index,
        "log_density": density[index],
        "group": [split.group_names[int(k)] for k in split.g[idx]],
        "label": [split.class_names[int(c)] for c in split.y[idx]],
        "source_row": source[idx].numpy(),
    })
    if paths is not None:
        frame["path"] = [paths[int(i)] for i in index]
    return frame


def run_vae_minority(cfg) -> Path:
    """`fairrun vae minority run_dir=PATH [fraction=… bins=… smoothing=… combine=…]`.

    Encodes the training split with the VAE in ``run_dir``, writes minority.csv, minority_grid.png and
    minority_enrichment.csv there, prints the enrichment table; returns the path of minority.csv.
    """
    from fairrun.generative.grids import save_grid
    from fairrun.generative.vae import encode_means, load_vae
    from fairrun.core.devices import resolve_device

    mcfg, gpu = validate_minority_config(cfg)
    run_dir = Path(mcfg.run_dir)
    device = resolve_device(gpu)
    vae, vae_cfg, meta = load_vae(run_dir, device)
    meta = {**meta, "seed": vae_cfg.seed}
    split, source, cache_rows, dataset = rebuild_train_split(meta, run_dir / "vae.pt", gpu.num_workers)
    mu = encode_means(vae, split, device, mcfg.batch_size)
    density = latent_density(mu, mcfg.bins, mcfg.smoothing, mcfg.combine)
    index = find_minority(mu, mcfg.fraction, mcfg.bins, mcfg.smoothing, mcfg.combine)
    frame = minority_frame(split, index, density, source, source_paths(dataset, cache_rows))
    table = enrichment_table(split, index)
    out = run_dir / MINORITY_CSV
    rundir.write_text(frame.to_csv(index=False), out)
    rundir.write_text(table.to_csv(index=False), run_dir / ENRICHMENT_CSV)
    shown = torch.as_tensor(index[:mcfg.grid])
    save_grid(split.images[shown], run_dir / MINORITY_GRID, nrow=8,
              title=f"{len(shown)} rarest of {len(split)} ({mcfg.combine})")
    print(f"fairrun vae minority: the {len(index)} rarest of {len(split)} training images of {dataset.name} "
          f"(fraction {mcfg.fraction}, {mcfg.bins} bins, combine={mcfg.combine}) in the latent space of "
          f"{run_dir / 'vae.pt'}")
    print(format_enrichment(table))
    print(f"wrote {out}, {run_dir / ENRICHMENT_CSV} and {run_dir / MINORITY_GRID}")
    return out


