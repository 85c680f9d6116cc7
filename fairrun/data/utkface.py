"""UTKFace (``dataset=utkface``): labels parsed from the image file names.

Zhang, Song & Qi, "Age Progression/Regression by Conditional Adversarial Autoencoder", CVPR 2017;
https://susanqq.github.io/UTKFace/. Every image is named ``[age]_[gender]_[race]_[date&time].jpg``
(the aligned and cropped faces end ``.jpg.chip.jpg``): age 0-116, gender 0 male / 1 female, race
0 White, 1 Black, 2 Asian, 3 Indian, 4 Others. The images are found recursively under
``dataset.root``, so the aligned ``UTKFace/`` folder, ``crop_part1/`` and the in-the-wild
``part1/ part2/ part3/`` folders all work. Files whose names do not follow the pattern (three
real files lack the race field) are skipped, counted and logged. There is no official split.

Attributes: ``gender`` (Female, Male), ``race`` (White, Black, Asian, Indian, Others),
``age_group`` (``dataset.age_threshold``) and ``age_decade`` (0-9, 10-19, ..., 70+).
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairrun.data.table import (
    GENDER_VALUES,
    ImageDatasetConfig,
    ImageTable,
    age_group_values,
    missing_files_error,
    resolve_root,
)
from fairrun.core.errors import ConfigError

log = logging.getLogger(__name__)

OBTAIN = ("https://susanqq.github.io/UTKFace/ (Zhang, Song & Qi, \"Age Progression/Regression by "
          "Conditional Adversarial Autoencoder\", CVPR 2017)")
RACE_VALUES = ["White", "Black", "Asian", "Indian", "Others"]
MAX_AGE = 116
AGE_DECADE_VALUES = ["0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"]
NAME_PATTERN = re.compile(r"^(\d{1,3})_(\d{1,2})_(\d{1,2})_(\d+)\.jpg(?:\.chip\.jpg)?$", re.IGNORECASE)
LAYOUTS = ("dataset.root is (or contains, at any depth) the folder of UTKFace images named "
           "[age]_[gender]_[race]_[yyyymmddHHMMSSFFF].jpg, e.g. 25_0_2_20170116174525125.jpg.chip.jpg "
           "in UTKFace/ or crop_part1/, or 25_0_2_20170116174525125.jpg in the in-the-wild "
           "part1/ part2/ part3/ folders.")


@dataclass
class UTKFaceConfig(ImageDatasetConfig):
    """``dataset=utkface``: UTKFace images with labels in their file names (no official split)."""

    name: str = "utkface"
    target: str = "gender"  # gender, race, age_group (at age_threshold) or age_decade
    protected: Any = "race"  # an attribute name, or a list for intersectional groups: [race, gender]
    image_size: int = 64  # images are resized to image_size x image_size when the cache is built
    crop: str = "square"  # square: centred largest square | center: centred crop_size square | none
    age_threshold: int = 30  # age_group: under_30 (age < 30) | 30_plus; 1..116


def attribute_names(cfg) -> list[str]:
    """The names ``dataset.target`` / ``dataset.protected`` may take (no file is read): the columns of
    :func:`read_table`, gender and race from the file names (Zhang, Song & Qi, CVPR 2017), age_group and
    age_decade from the age."""
    return ["gender", "race", "age_group", "age_decade"]


def validate(cfg) -> None:
    """Range checks of the UTKFace keys (``dataset.age_threshold`` in 1..116); raises ConfigError."""
    check_age_threshold(cfg.age_threshold, MAX_AGE)


def check_age_threshold(threshold: Any, max_age: int) -> None:
    """Raise ConfigError unless ``dataset.age_threshold`` is an integer in 1..``max_age``."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= max_age:
        raise ConfigError(f"Invalid value for 'dataset.age_threshold': {threshold!r}. "
                          f"Accepted: an integer from 1 to {max_age}.")


def age_group_codes(ages: np.ndarray, threshold: int) -> np.ndarray:
    """Codes of ``age_group``: 0 for age < ``threshold``, 1 otherwise (names: ``age_group_values``)."""
    return (np.asarray(ages) >= threshold).astype(np.int64)


def age_decade_codes(ages: np.ndarray) -> np.ndarray:
    """Codes of ``age_decade`` indexing ``AGE_DECADE_VALUES`` (0-9, 10-19, ..., 60-69, 70+)."""
    return np.minimum(np.asarray(ages) // 10, len(AGE_DECADE_VALUES) - 1).astype(np.int64)


def list_jpegs(root: Path) -> list[str]:
    """Posix paths, relative to ``root`` and sorted, of every ``.jpg`` file below it.

    One directory listing per folder (``os.walk``); hidden files and folders are ignored.
    """
    found = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        relative = Path(folder).relative_to(root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        found.extend(prefix + f for f in files if f.lower().endswith(".jpg") and not f.startswith("."))
    return sorted(found)


def parse_file_names(paths: list[str]) -> pd.DataFrame:
    """Age, UTKFace gender code and race code per path (NaN where the name does not match)."""
    names = pd.Series([p.rsplit("/", 1)[-1] for p in paths], dtype=object)
    fields = names.str.extract(NAME_PATTERN).iloc[:, :3]
    fields.columns = ["age", "gender", "race"]
    return fields.apply(pd.to_numeric)


def _label_problems(fields: pd.DataFrame) -> pd.Series:
    """Reason each row is unusable ('' when it is fine)."""
    malformed = fields.isna().any(axis=1)
    out_of_range = ~malformed & ~(fields["age"].between(0, MAX_AGE) & fields["gender"].isin([0, 1])
                                  & fields["race"].between(0, len(RACE_VALUES) - 1))
    reason = pd.Series("", index=fields.index, dtype=object)
    reason[malformed] = "malformed file name"
    reason[out_of_range] = "label out of range"
    return reason


def _log_skipped(paths: list[str], reason: pd.Series) -> dict[str, int]:
    """Count (and log, with examples) the rows skipped per reason."""
    skipped = {}
    for why, count in reason[reason != ""].value_counts().items():
        examples = ", ".join(paths[i] for i in np.flatnonzero(reason.to_numpy() == why)[:3])
        log.warning("UTKFace: skipped %d image(s) with %s, e.g. %s", count, why, examples)
        skipped[str(why)] = int(count)
    return skipped


def read_table(cfg) -> ImageTable:
    """Read UTKFace's labels from its file names (no image is decoded).

    Lists every ``.jpg`` below ``dataset.root`` (recursively), parses age, gender and race from the
    names (UTKFace codes gender 0 = male, 1 = female; recoded to our Female = 0, Male = 1), skips
    and counts malformed names or out-of-range codes, and derives ``age_group`` and ``age_decade``.
    Raises FairrunError when no correctly named image is found. ``split`` is None (no official one).
    """
    root = resolve_root(cfg, "UTKFace", OBTAIN)
    paths = list_jpegs(root)
    fields = parse_file_names(paths)
    reason = _label_problems(fields)
    skipped = _log_skipped(paths, reason)
    keep = (reason == "").to_numpy()
    if not keep.any():
        found = (f"Found {len(paths)} .jpg file(s), none named like UTKFace images, e.g. {paths[0]}."
                 if paths else "Found no .jpg file at any depth.")
        raise missing_files_error("UTKFace", root, ["**/[age]_[gender]_[race]_[date&time].jpg.chip.jpg",
                                                    "**/[age]_[gender]_[race]_[date&time].jpg"],
                                  LAYOUTS, OBTAIN, found=found)
    fields = fields[keep].astype(np.int64).reset_index(drop=True)
    ages = fields["age"].to_numpy()
    attributes = pd.DataFrame({
        "gender": 1 - fields["gender"].to_numpy(),  # UTKFace: 0 male, 1 female
        "race": fields["race"].to_numpy(),
        "age_group": age_group_codes(ages, cfg.age_threshold),
        "age_decade": age_decade_codes(ages),
    }).astype(np.int64)
    values = {"gender": list(GENDER_VALUES), "race": list(RACE_VALUES),
              "age_group": age_group_values(cfg.age_threshold), "age_decade": list(AGE_DECADE_VALUES)}
    return ImageTable(root=root, paths=[p for p, k in zip(paths, keep) if k], attributes=attributes,
                      attribute_values=values, split=None, skipped=skipped,
                      source=f"UTKFace file names under {root}")
