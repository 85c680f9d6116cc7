"""Any image folder described by a CSV (``dataset=csv``): one row per image.

The CSV has a column with the image path (``dataset.path_column``, default ``path``; relative to
``dataset.root``, by default the CSV's own folder, or absolute), one column per attribute and
optionally a split column (``dataset.split_column``: train/val/test, also valid/validation and
CelebA's 0/1/2). Each attribute's value names are its distinct values as strings (numbers without
a trailing ``.0``, booleans ``False``/``True``), sorted (numerically for numeric columns); rows with
a missing value are dropped and counted.

Missing image files are handled by :func:`fairrun.data.table.drop_missing_images`, shared by all readers.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from fairrun.data.table import ImageDatasetConfig, ImageTable, drop_missing_images, launch_path, resolve_root
from fairrun.core.errors import ConfigError, FairrunError

log = logging.getLogger(__name__)

SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test",
                 "0": "train", "1": "val", "2": "test"}
EXAMPLE = ("Expected a CSV with one row per image: a column holding the image path (dataset.path_column, "
           "default 'path'; relative to dataset.root, which defaults to the CSV's folder, or absolute), one "
           "column per attribute and optionally a split column (dataset.split_column; values train/val/test, "
           "valid/validation or 0/1/2). Example header: path,gender,smiling,split with rows like "
           "images/000001.jpg,Female,1,train.")


@dataclass
class CSVConfig(ImageDatasetConfig):
    """``dataset=csv``: images listed in a CSV with their attributes (and optionally their split)."""

    name: str = "csv"
    target: str = ""  # required: an attribute column, e.g. smiling
    protected: Any = ""  # required: an attribute column, or a list for intersectional groups
    image_size: int = 64  # images are resized to image_size x image_size when the cache is built
    crop: str = "square"  # square: centred largest square | center: centred crop_size square | none
    csv: Optional[str] = None  # the CSV file (relative to the launch directory); required
    path_column: str = "path"  # column with image paths, relative to dataset.root or absolute
    # column with train/val/test (also valid/validation, 0/1/2); null = carve splits
    split_column: Optional[str] = None
    # attribute columns, e.g. [gender, smiling]; null = every other column
    attributes: Optional[list[str]] = None
    max_values: int = 50  # reject attribute columns with more distinct values (ids, continuous values)


def validate(cfg) -> None:
    """Checks of the CSV keys (column names, ``dataset.max_values`` >= 2); raises ConfigError."""
    if cfg.csv is not None and not str(cfg.csv).strip():
        raise ConfigError(f"Invalid value for 'dataset.csv': {cfg.csv!r}. Accepted: the path of a CSV file.")
    if not isinstance(cfg.path_column, str) or not cfg.path_column.strip():
        raise ConfigError(f"Invalid value for 'dataset.path_column': {cfg.path_column!r}. "
                          f"Accepted: the name of the CSV column holding image paths.")
    if cfg.split_column is not None and cfg.split_column in ("", cfg.path_column):
        raise ConfigError(f"Invalid value for 'dataset.split_column': {cfg.split_column!r}. Accepted: null "
                          f"or the name of a CSV column other than dataset.path_column.")
    if cfg.attributes is not None:
        attributes = list(cfg.attributes)
        bad = [a for a in attributes if a in (cfg.path_column, cfg.split_column)]
        if not attributes or bad or len(set(attributes)) != len(attributes):
            raise ConfigError(f"Invalid value for 'dataset.attributes': {attributes!r}. Accepted: null "
                              f"(every column but the path and split columns) or a list of distinct "
                              f"attribute column names.")
    if isinstance(cfg.max_values, bool) or not isinstance(cfg.max_values, int) or cfg.max_values < 2:
        raise ConfigError(f"Invalid value for 'dataset.max_values': {cfg.max_values!r}. "
                          f"Accepted: an integer of at least 2.")


def attribute_names(cfg) -> Optional[list[str]]:
    """The names ``dataset.target`` / ``dataset.protected`` may take, from the CSV's header line alone:
    ``dataset.attributes`` when set, else every column but the path and split columns. None when the file
    cannot be read here (reading the table reports that) or its header is not one line of names."""
    if cfg.attributes is not None:
        return [str(a) for a in cfg.attributes]
    if cfg.csv in (None, "", "???"):
        return None
    try:
        header = pd.read_csv(launch_path(cfg.csv), nrows=0, skipinitialspace=True)
    except Exception:  # noqa: BLE001 - a missing or unparsable file is read_table's to report
        return None
    columns = [str(c).strip() for c in header.columns]
    return [c for c in columns if c not in (cfg.path_column, cfg.split_column)]


def _csv_path(cfg) -> Path:
    """The CSV file of ``dataset.csv``; FairrunError describing the expected CSV when absent."""
    if cfg.csv in (None, "", "???"):
        raise FairrunError(f"dataset.csv is not set for dataset=csv. Pass dataset.csv=FILE. {EXAMPLE}")
    path = launch_path(cfg.csv)
    if not path.is_file():
        raise FairrunError(f"dataset.csv={cfg.csv} does not exist ({path}). {EXAMPLE}")
    return path


def _image_root(cfg, csv_path: Path) -> Path:
    """``dataset.root``, or the CSV's folder when it is null."""
    if cfg.root in (None, "", "???"):
        return csv_path.parent
    return resolve_root(cfg, "the images listed in the CSV", "your own files")


def _read_csv(path: Path) -> pd.DataFrame:
    """The CSV as a DataFrame with stripped column names; FairrunError when pandas cannot parse it."""
    try:
        frame = pd.read_csv(path, skipinitialspace=True, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise FairrunError(f"Cannot parse dataset.csv={path}: {err}. {EXAMPLE}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _require_columns(frame: pd.DataFrame, columns: list[str], path: Path) -> None:
    """FairrunError naming the ``columns`` missing from the CSV and the columns it has."""
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise FairrunError(f"dataset.csv={path} has no column {', '.join(map(repr, absent))}; its columns "
                           f"are {', '.join(map(repr, frame.columns))}. Set dataset.path_column, "
                           f"dataset.split_column or dataset.attributes to existing columns. {EXAMPLE}")


def _as_text(values: pd.Series) -> pd.Series:
    """Values as strings: integral numbers without '.0', booleans False/True, blanks as NaN."""
    def one(value):
        if isinstance(value, (bool, np.bool_)):
            return str(bool(value))
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return str(int(value))
        text = str(value).strip()
        return text if text else np.nan
    return values.map(one, na_action="ignore").astype(object)


def _value_names(values: pd.Series) -> list[str]:
    """Sorted distinct values as strings (numeric columns sorted by number)."""
    distinct = pd.Series(values.dropna().unique())
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        distinct = distinct.sort_values()
        return list(dict.fromkeys(_as_text(distinct)))
    return sorted(set(_as_text(distinct).dropna()))


def _drop_missing_values(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows with a value in every one of ``columns``; counts of dropped rows per column (first found)."""
    skipped = {}
    for column in columns:
        blank = _as_text(frame[column]).isna()
        if blank.any():
            skipped[f"missing value in {column}"] = int(blank.sum())
            frame = frame[~blank.to_numpy()]
    return frame.reset_index(drop=True), skipped


def _encode_attribute(values: pd.Series, names: list[str]) -> np.ndarray:
    """int64 codes of ``values`` in ``names``."""
    lookup = {name: code for code, name in enumerate(names)}
    return _as_text(values).map(lookup).to_numpy(dtype=np.int64)


def _attribute_columns(cfg, frame: pd.DataFrame) -> list[str]:
    """``dataset.attributes``, or every column but the path and split columns."""
    if cfg.attributes is not None:
        return list(cfg.attributes)
    return [c for c in frame.columns if c not in (cfg.path_column, cfg.split_column)]


def _check_value_counts(names: dict[str, list[str]], max_values: int, path: Path) -> None:
    """FairrunError for attribute columns with more than ``max_values`` distinct values."""
    too_many = {column: len(values) for column, values in names.items() if len(values) > max_values}
    if too_many:
        listed = ", ".join(f"{column!r} ({count} values)" for column, count in too_many.items())
        keep = [c for c in names if c not in too_many]
        raise FairrunError(f"dataset.csv={path}: column(s) {listed} have more than "
                           f"dataset.max_values={max_values} distinct values, which looks like an id or a "
                           f"continuous column, not a group. "
                           f"Exclude them with dataset.attributes=[{','.join(keep)}] or raise "
                           f"dataset.max_values.")


def _splits(values: pd.Series, column: str, path: Path) -> np.ndarray:
    """The split column as 'train' | 'val' | 'test'; FairrunError naming unknown values."""
    mapped = _as_text(values).str.lower().map(SPLIT_ALIASES)
    unknown = pd.unique(values[mapped.isna()])
    if len(unknown):
        shown = ", ".join(repr(v) for v in unknown[:5])
        raise FairrunError(f"dataset.csv={path}: unknown value(s) {shown} in split column {column!r}. "
                           f"Accepted: train, val (or valid, validation), test, or 0, 1, 2 "
                           f"(case-insensitive).")
    return mapped.to_numpy(dtype=object).astype(str)


def read_table(cfg) -> ImageTable:
    """Read the image list and attributes of ``dataset.csv`` (no image is decoded).

    Paths come from ``dataset.path_column`` (relative to ``dataset.root``, default the CSV's folder, or
    absolute); attributes from ``dataset.attributes`` (default every other column but the split column),
    each coded by its sorted distinct values as strings; the split from ``dataset.split_column`` if
    set (else None: splits are carved later). Rows with a missing value are dropped and counted;
    images missing on disk raise FairrunError, or are dropped and counted with ``dataset.skip_bad``.
    """
    path = _csv_path(cfg)
    root = _image_root(cfg, path)
    frame = _read_csv(path)
    attributes = _attribute_columns(cfg, frame)
    if not attributes:
        raise FairrunError(f"dataset.csv={path} has no attribute column besides the path and split columns. "
                           f"{EXAMPLE}")
    split_columns = [cfg.split_column] if cfg.split_column else []
    _require_columns(frame, [cfg.path_column, *split_columns, *attributes], path)
    frame, skipped = _drop_missing_values(frame, [cfg.path_column, *split_columns, *attributes])
    names = {column: _value_names(frame[column]) for column in attributes}
    _check_value_counts(names, cfg.max_values, path)
    table = ImageTable(
        root=root,
        paths=[Path(p).as_posix() for p in _as_text(frame[cfg.path_column])],
        attributes=pd.DataFrame({c: _encode_attribute(frame[c], names[c]) for c in attributes}),
        attribute_values=names,
        split=_splits(frame[cfg.split_column], cfg.split_column, path) if cfg.split_column else None,
        skipped=skipped,
        source=str(path),
    )
    for reason, count in skipped.items():
        log.warning("%s: dropped %d row(s) with a %s", path, count, reason)
    outside = rows_outside_root(table.paths, root)
    if outside:
        log.warning("%s: %d of %d image path(s) point outside dataset.root=%s (absolute paths or '..'); "
                    "they are read as given", path, outside, len(table.paths), root)
    return drop_missing_images(table, cfg.skip_bad, f"dataset.csv={path}")


def rows_outside_root(paths: list[str], root: Path) -> int:
    """How many image paths are absolute or lead out of ``root`` through '..' (by path arithmetic alone:
    nothing is opened or resolved through symbolic links)."""
    base = os.path.normpath(str(root))
    count = 0
    for rel in paths:
        joined = os.path.normpath(os.path.join(base, rel))
        if os.path.isabs(rel) or os.path.commonpath([base, joined]) != base:
            count += 1
    return count
