"""The metadata of an on-disk image dataset, before any image is decoded.

Every on-disk reader (CelebA, FairFace, UTKFace, IMDB-WIKI, CSV) turns the files of the dataset
into one :class:`ImageTable`: a relative image path per row, integer-coded attributes, readable
value names and the official split where the dataset has one. Everything after that (carving
seeded splits, decoding into the cache, building :class:`~fairrun.data.base.SplitData`) is shared
and lives in :mod:`fairrun.data.files`.

Conventions every reader follows so that models move between datasets:

* gender is the attribute ``gender`` with values ``["Female", "Male"]`` (code 0 = Female);
  CelebA's ``Male`` attribute uses the same two names.
* a binary age attribute built from ``dataset.age_threshold`` T is ``age_group`` with values
  ``["under_T", "T_plus"]``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from fairrun.core.errors import FairrunError

log = logging.getLogger("fairrun")

SPLIT_NAMES = ("train", "val", "test")
GENDER_VALUES = ["Female", "Male"]


@dataclass
class ImageTable:
    """One row per image: where it is and what its attributes are.

    ``attributes`` has a RangeIndex aligned with ``paths`` and one int64 column per attribute whose
    codes index ``attribute_values[column]``. ``split`` holds 'train' | 'val' | 'test' per row when
    the dataset has an official split (rows of a split it lacks, e.g. FairFace's val, are carved
    from train later), or is None when it has none (all three are carved, seeded and stratified).
    ``skipped`` counts rows a reader left out on purpose, by reason (logged and reported).
    """

    root: Path
    paths: list[str]
    attributes: pd.DataFrame
    attribute_values: dict[str, list[str]]
    split: Optional[np.ndarray] = None
    skipped: dict[str, int] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self):
        if len(self.paths) != len(self.attributes):
            raise ValueError(f"{len(self.paths)} paths but {len(self.attributes)} attribute rows")
        if self.split is not None and len(self.split) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.split)} split labels")

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, keep: np.ndarray) -> "ImageTable":
        """The rows selected by a boolean mask or an integer index."""
        keep = np.asarray(keep)
        index = np.flatnonzero(keep) if keep.dtype == bool else keep
        return ImageTable(
            root=self.root,
            paths=[self.paths[i] for i in index],
            attributes=self.attributes.iloc[index].reset_index(drop=True),
            attribute_values=self.attribute_values,
            split=None if self.split is None else self.split[index],
            skipped=dict(self.skipped),
            source=self.source,
        )


def encode(values: pd.Series, names: Sequence[str], attribute: str, where: str) -> np.ndarray:
    """Integer codes of ``values`` in ``names`` (int64); raise FairrunError naming unknown values."""
    lookup = {name: code for code, name in enumerate(names)}
    codes = values.map(lookup)
    bad = values[codes.isna()]
    if len(bad):
        shown = ", ".join(repr(v) for v in pd.unique(bad)[:5])
        raise FairrunError(f"{where}: unexpected value(s) {shown} in column {attribute!r} "
                           f"({len(bad)} rows). Accepted values: {', '.join(map(str, names))}.")
    return codes.to_numpy(dtype=np.int64)


def age_group_values(threshold: int) -> list[str]:
    """Value names of the binary ``age_group`` attribute for ``dataset.age_threshold``."""
    return [f"under_{threshold}", f"{threshold}_plus"]


def missing_files_error(dataset: str, root: Path, expected: Sequence[str], layouts: str,
                        obtain: str, found: str = "") -> FairrunError:
    """One-paragraph error for a dataset whose files are not where fairrun looks.

    ``expected`` lists the paths (relative to ``root``) that were looked for, ``layouts`` describes
    the accepted layouts and ``obtain`` where users get the dataset. fairrun never downloads data.
    """
    listing = "; ".join(str(Path(root) / e) for e in expected)
    return FairrunError(
        f"Cannot read the {dataset} dataset at dataset.root={root}: expected {listing}. "
        f"{found + ' ' if found else ''}Accepted layouts: {layouts} Get the dataset from {obtain} "
        f"(fairrun never downloads data) and point dataset.root at it."
    )


CROP_POLICIES = ("square", "center", "none")


@dataclass
class ImageDatasetConfig:
    """Keys shared by every on-disk dataset (``dataset.*``); each reader's config subclasses it.

    Preprocessing (``image_size``, ``crop``, ``crop_size``) is applied once, when the decoded-image
    cache is built; ``hflip`` and ``random_crop`` are training augmentations applied per batch on
    the training device.
    """

    name: str = ""
    root: Optional[str] = None  # folder holding your copy (required); relative paths: from the launch directory
    target: str = ""
    protected: Any = ""
    image_size: int = 64
    crop: str = "square"  # square: centred largest square | center: centred crop_size square | none
    crop_size: Optional[int] = None  # crop=center only (CelebA's published code: 178)
    skip_bad: bool = False  # skip unreadable images (counted) instead of stopping with an error
    val_fraction: float = 0.1  # share carved (seeded, stratified) for val when there is no val split
    test_fraction: float = 0.2  # share carved for test when there is no test split
    split_seed: int = 0  # seed of carved splits (independent of the training seed)
    value_map: Any = None  # {attribute: {value: new name}}; merges values (null = none)
    hflip: bool = True  # training augmentation: random horizontal flip
    random_crop: int = 0  # training augmentation: pad by this many pixels, crop back at random


def count_skipped(skipped: dict[str, int], reason: str, count: int) -> None:
    """Add ``count`` rows to ``skipped[reason]`` (nothing when zero)."""
    if count:
        skipped[reason] = skipped.get(reason, 0) + count


def launch_path(path: str) -> Path:
    """``path`` as an absolute path: relative paths are relative to the launch directory.

    Under Hydra this is ``hydra.utils.to_absolute_path`` (which ignores a changed working
    directory); otherwise it is relative to the current directory.
    """
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.utils import to_absolute_path

        resolved = Path(to_absolute_path(str(path))) if HydraConfig.initialized() else Path(path)
    except ImportError:  # pragma: no cover
        resolved = Path(path)
    return resolved.expanduser().resolve()


def listing(folder: Path) -> set[str]:
    """Names in ``folder`` (one os.scandir call), or an empty set when it is not a readable folder."""
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries}
    except OSError:
        return set()


def missing_images(root: Path, paths: list[str]) -> np.ndarray:
    """Boolean mask of the ``paths`` (relative to ``root`` or absolute) that are not on disk.

    Lists each distinct folder once instead of stat-ing every file, so 460k paths in 100 folders
    cost 100 directory listings.
    """
    split = pd.Series(paths, dtype=object).str.rpartition("/")
    folders, names = split[0], split[2]
    missing = np.ones(len(paths), dtype=bool)
    for folder, index in folders.groupby(folders, sort=False).indices.items():
        missing[index] = ~names.iloc[index].isin(listing(Path(root) / folder)).to_numpy()
    return missing


def require_rows(table: ImageTable, listed_in: str) -> ImageTable:
    """``table`` itself; FairrunError listing what was skipped when no row is left."""
    if not len(table):
        reasons = ", ".join(f"{count} {reason}" for reason, count in table.skipped.items()) or "none"
        raise FairrunError(f"No usable image is listed in {listed_in} (rows skipped: {reasons}). Check the "
                           f"file and the dataset.* filters.")
    return table


def drop_missing_images(table: ImageTable, skip_bad: bool, listed_in: str) -> ImageTable:
    """``table`` without rows whose image file is missing (counted as 'missing image') if ``skip_bad``.

    Otherwise raises FairrunError with the number of missing files and the first few paths; also
    when every listed image is missing (a wrong dataset.root), whatever ``skip_bad``.
    """
    table = require_rows(table, listed_in)
    missing = missing_images(table.root, table.paths)
    count = int(missing.sum())
    if not count:
        return table
    examples = ", ".join(str(table.root / table.paths[i]) for i in np.flatnonzero(missing)[:3])
    if count == len(table):
        raise FairrunError(f"None of the {count} images listed in {listed_in} is under {table.root}, e.g. "
                           f"{examples}. Check dataset.root (the folder the listed paths are relative to), "
                           f"with the images unpacked there.")
    if not skip_bad:
        raise FairrunError(f"{count} of {len(table)} images listed in {listed_in} are missing under "
                           f"{table.root}, e.g. {examples}. Restore them, or pass dataset.skip_bad=true to "
                           f"skip them (they are counted as skipped).")
    log.warning("Skipped %d image(s) listed in %s but missing on disk, e.g. %s", count, listed_in, examples)
    kept = table.take(~missing)
    count_skipped(kept.skipped, "missing image", count)
    return kept


def resolve_root(cfg, dataset: str, obtain: str) -> Path:
    """``dataset.root`` as an absolute path (relative paths are relative to the launch directory)."""
    if cfg.root in (None, "", "???"):
        raise FairrunError(f"dataset.root is not set for dataset={cfg.name}. Pass dataset.root=DIR, the "
                           f"folder holding your copy of {dataset} (get it from {obtain}; fairrun never "
                           f"downloads data).")
    root = launch_path(str(cfg.root))
    if not root.is_dir():
        raise FairrunError(f"dataset.root={cfg.root} is not a directory ({root}). Point it at the folder "
                           f"holding your copy of {dataset} (get it from {obtain}; fairrun never downloads "
                           f"data).")
    return root
