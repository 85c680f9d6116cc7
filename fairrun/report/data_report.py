"""`fairrun data`: what a dataset (and an imbalance setting) gives a run, before training.

Prints group x label counts per split (the training split after imbalance sampling), and writes
``counts.csv``, ``group_frequencies.png`` (share of each protected group per split and per
compared dataset, as the FairFace notebook compared FairFace train/val with IMDB) and
``samples.png`` (training images labelled with target and group).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fairrun.data.base import LabeledSplit
from fairrun.data.files import table_and_splits
from fairrun.data.groups import group_names, protected_list
from fairrun.data.imbalance import apply_imbalance_to_splits, skewed_splits
from fairrun.data.registry import DATASETS, load_dataset
from fairrun.core.errors import FairrunError
from fairrun.evaluation.transfer import entry_dict, eval_dataset_config

log = logging.getLogger("fairrun")


def split_counts(splits: dict[str, LabeledSplit]) -> pd.DataFrame:
    """Long table of counts: one row per (split, group, label) with ``n`` and the share within the split."""
    rows = []
    for name, split in splits.items():
        counts = split.counts()
        total = max(int(counts.to_numpy().sum()), 1)
        for group in counts.index:
            for label in counts.columns:
                n = int(counts.loc[group, label])
                rows.append({"split": name, "group": group, "label": label, "n": n, "share": n / total})
    return pd.DataFrame(rows)


def counts_table(long: pd.DataFrame) -> pd.DataFrame:
    """Wide table for printing: rows (split, group), columns the labels and the total."""
    wide = long.pivot_table(index=["split", "group"], columns="label", values="n", aggfunc="sum",
                            sort=False).fillna(0).astype(int)
    wide["total"] = wide.sum(axis=1)
    return wide


def group_frequencies(series: dict[str, pd.Series]) -> pd.DataFrame:
    """Share of each group per series (columns), from group -> count Series; groups in first-seen order."""
    groups = list(dict.fromkeys(g for counts in series.values() for g in counts.index))
    frame = pd.DataFrame({name: counts.reindex(groups).fillna(0) for name, counts in series.items()})
    return frame / frame.sum(axis=0).replace(0, 1)


def compared_group_counts(entry, main_cfg) -> tuple[str, pd.Series]:
    """Group counts (all splits) of a compared dataset, read from its metadata without decoding images."""
    cfg = eval_dataset_config(entry_dict(entry), main_cfg)
    table, _ = table_and_splits(cfg, DATASETS[cfg.name].read_table)
    prot = protected_list(cfg.protected)
    codes = np.zeros(len(table), dtype=np.int64)
    for p in prot:
        codes = codes * len(table.attribute_values[p]) + table.attributes[p].to_numpy()
    names = group_names(table.attribute_values, prot)
    counts = np.bincount(codes, minlength=len(names))
    return cfg.name, pd.Series(counts, index=names)


def frequency_title(protected: str) -> str:
    """The group-frequency chart's title without a doubled word: ``Frequency of each group`` when the protected
    attribute is itself called ``group`` (the synthetic dataset), else ``Frequency of each race group``; an
    attribute ending in ``group`` (``age_group``) is named as is: ``Frequency of each age_group``."""
    name = str(protected)
    if name.lower().endswith("group"):
        return f"Frequency of each {name}"
    return f"Frequency of each {name} group"


def plot_group_frequencies(freq: pd.DataFrame, counts: pd.DataFrame, protected: str, path: Path) -> None:
    """Grouped bar chart: x = protected groups, one bar per split/dataset, y = share of its images (%)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_groups, n_series = freq.shape
    width = 0.8 / n_series
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * n_groups * max(1, n_series / 2) + 2), 4.2))
    x = np.arange(n_groups)
    for k, column in enumerate(freq.columns):
        total = int(counts[column].sum())
        bars = ax.bar(x + (k - (n_series - 1) / 2) * width, 100 * freq[column].to_numpy(), width,
                      label=f"{column} (n={total:,})")
        for bar, n in zip(bars, counts[column].to_numpy()):
            if n_groups * n_series <= 24:
                ax.annotate(f"{int(n):,}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7, xytext=(0, 1), textcoords="offset points")
    ax.set_xticks(x)
    ax.set_xticklabels(freq.index, rotation=20 if max(len(str(g)) for g in freq.index) > 8 else 0, ha="right"
                       if max(len(str(g)) for g in freq.index) > 8 else "center")
    ax.set_xlabel("protected group" if protected.lower() == "group" else f"protected group ({protected})")
    ax.set_ylabel("share of images (%)")
    ax.set_ylim(0, min(100, 100 * float(freq.to_numpy().max()) * 1.15 + 1))
    ax.set_title(frequency_title(protected))
    ax.legend(frameon=False, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def pick_samples(split: LabeledSplit, n: int, seed: int) -> torch.Tensor:
    """Up to ``n`` row indices that visit every (group, label) cell in turn, so rare groups show."""
    generator = torch.Generator().manual_seed(seed)
    cells = []
    for g in range(split.num_groups):
        for y in range(split.num_classes):
            members = torch.nonzero((split.g == g) & (split.y == y)).flatten()
            if len(members):
                cells.append(members[torch.randperm(len(members), generator=generator)].tolist())
    picked, depth = [], 0
    while len(picked) < n and any(depth < len(c) for c in cells):
        picked += [c[depth] for c in cells if depth < len(c)]
        depth += 1
    return torch.tensor(picked[:n], dtype=torch.int64)


def plot_samples(split: LabeledSplit, index: torch.Tensor, target: str, path: Path) -> None:
    """A grid of images, each titled with its target value and group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(8, max(len(index), 1))
    rows = max(1, -(-len(index) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.9 * rows), squeeze=False)
    images = split.images[index] if len(index) else None
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(index):
            continue
        ax.imshow(images[k].permute(1, 2, 0).numpy())
        ax.set_title(f"{target}: {split.class_names[int(split.y[index[k]])]}\n"
                     f"{split.group_names[int(split.g[index[k]])]}", fontsize=7)
    fig.suptitle(f"{split.name} samples (target {target}; second line: group)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def run_data_report(cfg, out_dir: Path) -> pd.DataFrame:
    """Counts, group-frequency chart and sample grid of ``cfg.dataset`` (after ``cfg.imbalance`` on train).

    Returns the long counts table (also written as ``counts.csv``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = cfg.dataset
    splits = load_dataset(dataset, workers=cfg.gpu.num_workers)
    splits = apply_imbalance_to_splits(splits, cfg.imbalance, cfg.seed)  # train, and val/test per imbalance.splits
    long = split_counts(splits)
    long.insert(0, "dataset", dataset.name)
    long.to_csv(out_dir / "counts.csv", index=False)
    protected = "+".join(protected_list(dataset.protected))
    ratio = "" if cfg.imbalance.ratio is None else f", imbalance.ratio={cfg.imbalance.ratio}"
    skewed = skewed_splits(cfg.imbalance) or ["none"]
    natural = [name for name in ("train", "val", "test") if name not in skewed]
    print(f"{dataset.name}: target {dataset.target}, protected {protected}{ratio} "
          f"(after imbalance sampling: {'/'.join(skewed)}; natural: {'/'.join(natural) or 'none'})")
    print(counts_table(long).to_string())
    series = {name: long[long.split == name].groupby("group", sort=False)["n"].sum() for name in splits}
    for entry in cfg.compare or []:
        name, counts = compared_group_counts(entry, dataset)
        series[name if name not in series else f"{name} (compared)"] = counts
    counts = pd.DataFrame(series).fillna(0)
    freq = group_frequencies(series)
    plot_group_frequencies(freq, counts.reindex(freq.index).fillna(0), protected, out_dir / "group_frequencies.png")
    train = splits["train"]
    if len(train) == 0:
        raise FairrunError("The training split is empty; there are no images to show in samples.png.")
    plot_samples(train, pick_samples(train, cfg.samples, cfg.seed), dataset.target, out_dir / "samples.png")
    print(f"wrote {out_dir / 'counts.csv'}, {out_dir / 'group_frequencies.png'} and {out_dir / 'samples.png'}")
    return long
