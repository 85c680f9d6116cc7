"""From an on-disk dataset's :class:`ImageTable` to decoded, labelled splits.

Shared by every file-based reader: renames/merges attribute values (``dataset.value_map``),
carves the splits a dataset does not ship (seeded, stratified by target x protected), decodes the
images once into the cache (:mod:`fairrun.data.cache`), handles unreadable images
(``dataset.skip_bad``) and returns :class:`~fairrun.data.base.SplitData` whose images are lazy
rows of the memory-mapped cache.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import pandas as pd
import torch

from fairrun.data.base import SplitData
from fairrun.data.cache import DecodedImages, decoded_images
from fairrun.data.decode import Preprocessing
from fairrun.data.groups import check_attributes, protected_list
from fairrun.data.images import ImageRows
from fairrun.data.table import CROP_POLICIES, SPLIT_NAMES, ImageTable
from fairrun.core.errors import ConfigError, FairrunError

log = logging.getLogger("fairrun")


def validate_image_dataset(cfg) -> None:
    """Range checks of the keys every on-disk dataset shares (ImageDatasetConfig)."""
    def bad(key, value, accepted):
        raise ConfigError(f"Invalid value for 'dataset.{key}': {value!r}. Accepted: {accepted}.")

    if not 8 <= cfg.image_size <= 512:
        bad("image_size", cfg.image_size, "an integer from 8 to 512 (pixels of the square images)")
    if cfg.crop not in CROP_POLICIES:
        bad("crop", cfg.crop, "square (centred largest square), center (centred dataset.crop_size square) "
                              "or none (resize the whole image)")
    if cfg.crop == "center" and (cfg.crop_size is None or cfg.crop_size < 1):
        bad("crop_size", cfg.crop_size, "a positive integer (pixels) when dataset.crop=center, e.g. 178 "
                                        "for CelebA")
    for key in ("val_fraction", "test_fraction"):
        value = getattr(cfg, key)
        if not 0 <= value < 1 and not (key == "test_fraction" and value == 1):
            bad(key, value, "a number in [0, 1)" if key == "val_fraction" else "a number in [0, 1]")
    if cfg.val_fraction + cfg.test_fraction > 1:
        raise ConfigError(f"dataset.val_fraction={cfg.val_fraction} plus dataset.test_fraction="
                          f"{cfg.test_fraction} exceed 1; together they may be at most 1.")
    if cfg.random_crop < 0 or cfg.random_crop >= cfg.image_size:
        bad("random_crop", cfg.random_crop, f"an integer from 0 (off) to {cfg.image_size - 1} (pixels of "
                                            f"padding before a random crop)")
    if cfg.value_map is not None and (not isinstance(cfg.value_map, dict) or
                                      not all(isinstance(v, dict) for v in cfg.value_map.values())):
        bad("value_map", cfg.value_map, "a mapping {attribute: {value: new name}}, e.g. "
                                        "{race: {'East Asian': Asian, 'Southeast Asian': Asian}}")


def apply_value_map(table: ImageTable, value_map: dict | None) -> ImageTable:
    """Rename attribute values; values mapped to the same name are merged into one value.

    ``value_map`` is ``{attribute: {old name: new name}}``; unmapped values keep their names.
    The merged values keep the order of their first old value.
    """
    if not value_map:
        return table
    attributes, values = table.attributes.copy(), dict(table.attribute_values)
    for attribute, mapping in value_map.items():
        if attribute not in values:
            raise ConfigError(f"dataset.value_map names the attribute {attribute!r}, which this dataset does "
                              f"not have. Its attributes are: {', '.join(values)}.")
        unknown = [old for old in mapping if old not in values[attribute]]
        if unknown:
            raise ConfigError(f"dataset.value_map.{attribute} maps unknown value(s) {unknown!r}. The values "
                              f"of {attribute!r} are: {', '.join(values[attribute])}.")
        renamed = [str(mapping.get(old, old)) for old in values[attribute]]
        new_names = list(dict.fromkeys(renamed))
        recode = np.array([new_names.index(name) for name in renamed], dtype=np.int64)
        attributes[attribute] = recode[attributes[attribute].to_numpy()]
        values[attribute] = new_names
    return ImageTable(root=table.root, paths=table.paths, attributes=attributes, attribute_values=values,
                      split=table.split, skipped=table.skipped, source=table.source)


def stratified_pick(strata: np.ndarray, fraction: float, generator: np.random.Generator) -> np.ndarray:
    """A boolean mask choosing ``round(fraction * n_s)`` rows at random in each stratum s."""
    chosen = np.zeros(len(strata), dtype=bool)
    if fraction <= 0:
        return chosen
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        take = int(round(fraction * len(members)))
        chosen[generator.permutation(members)[:take]] = True
    return chosen


def assign_splits(table: ImageTable, cfg) -> np.ndarray:
    """Split name per row: the official split where there is one, the rest carved.

    Carving is seeded by ``dataset.split_seed`` and stratified by the (target, protected) cell, so
    every group keeps its label balance in every split. With no official split, ``test_fraction``
    and then ``val_fraction`` of all rows are carved; a dataset that ships train and test only
    (FairFace) gets ``val_fraction`` of its training rows as validation.
    """
    generator = np.random.default_rng(cfg.split_seed)
    columns = [cfg.target, *protected_list(cfg.protected)]
    strata = table.attributes[columns].to_numpy(dtype=np.int64)
    strata = np.unique(strata, axis=0, return_inverse=True)[1].reshape(-1)
    if table.split is None:
        split = np.full(len(table), "train", dtype=object)
        test = stratified_pick(strata, cfg.test_fraction, generator)
        split[test] = "test"
        rest = np.flatnonzero(~test)
        val_share = cfg.val_fraction / (1 - cfg.test_fraction) if cfg.test_fraction < 1 else 0.0
        split[rest[stratified_pick(strata[rest], val_share, generator)]] = "val"
        return split
    split = np.asarray(table.split, dtype=object).copy()
    train = np.flatnonzero(split == "train")
    for name, fraction in (("val", cfg.val_fraction), ("test", cfg.test_fraction)):
        if not (split == name).any():
            pick = stratified_pick(strata[train], fraction, generator)
            split[train[pick]] = name
            train = train[~pick]
            log.info("%s has no %s split: carved %d of its training images (dataset.%s_fraction=%s)",
                     table.source or cfg.name, name, int(pick.sum()), name, fraction)
    return split


def drop_unreadable(decoded: DecodedImages, table: ImageTable, skip_bad: bool) -> np.ndarray:
    """Boolean mask of usable rows; without ``skip_bad``, an unreadable image is an error naming it."""
    bad = decoded.bad_rows
    if len(bad) and not skip_bad:
        first = bad[0]
        raise FairrunError(
            f"Cannot decode image {table.root / table.paths[first]} ({decoded.errors.iloc[first]}); "
            f"{len(bad)} of {len(table)} images of this dataset are unreadable. Replace or remove the file, or "
            f"pass dataset.skip_bad=true to skip unreadable images (they are counted and reported). The "
            f"decoded images are cached in {decoded.path}, so rerunning does not decode again."
        )
    if len(bad):
        names = ", ".join(table.paths[i] for i in bad[:3])
        log.warning("dataset.skip_bad=true: skipped %d unreadable image(s) of %d (e.g. %s)", len(bad),
                    len(table), names)
    return decoded.ok


def table_and_splits(cfg, read_table: Callable) -> tuple[ImageTable, np.ndarray]:
    """The dataset's metadata (values mapped, attributes checked) and the split name of every row."""
    table = read_table(cfg)
    for reason, count in table.skipped.items():
        log.info("%s: skipped %d rows (%s)", table.source or cfg.name, count, reason)
    table = apply_value_map(table, cfg.value_map)
    check_attributes(table.attribute_values, cfg.target, cfg.protected)
    if len(table) == 0:
        raise FairrunError(f"dataset={cfg.name} at {table.root} has no usable images after filtering "
                           f"({', '.join(f'{k}: {v}' for k, v in table.skipped.items()) or 'none listed'}).")
    return table, assign_splits(table, cfg)


def load_image_dataset(cfg, read_table: Callable, workers: int = 0) -> dict[str, SplitData]:
    """Read, split, decode (cached) and return train/val/test of an on-disk dataset."""
    table, split = table_and_splits(cfg, read_table)
    prep = Preprocessing(cfg.image_size, cfg.crop, cfg.crop_size)
    decoded = decoded_images(cfg.name, table, prep, workers)
    usable = drop_unreadable(decoded, table, cfg.skip_bad)
    out = {}
    for name in SPLIT_NAMES:
        rows = np.flatnonzero((split == name) & usable)
        out[name] = SplitData(
            images=ImageRows(decoded.images, torch.from_numpy(rows)),
            attributes=table.attributes.iloc[rows].reset_index(drop=True),
            attribute_values=table.attribute_values,
        )
    log.info("%s: %s", table.source or cfg.name,
             ", ".join(f"{name} {len(out[name].attributes)}" for name in SPLIT_NAMES))
    return out


def split_frame(table: ImageTable, split: np.ndarray) -> pd.DataFrame:
    """The table as a DataFrame with readable attribute values and the split (for reports)."""
    frame = pd.DataFrame({"path": table.paths, "split": split})
    for column in table.attributes.columns:
        frame[column] = pd.Categorical.from_codes(table.attributes[column].to_numpy(),
                                                  categories=table.attribute_values[column])
    return frame
