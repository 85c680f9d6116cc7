"""FairFace read from disk: the label CSVs and either image set (padding 0.25 or 1.25).

FairFace (Kärkkäinen & Joo, "FairFace: Face Attribute Dataset for Balanced Race, Gender, and Age
for Bias Measurement and Mitigation", WACV 2021) labels 108,501 face crops with gender, seven race
groups and nine age bins. Under ``dataset.root`` it expects ``fairface_label_train.csv`` and
``fairface_label_val.csv`` (header ``file,age,gender,race,service_test``, rows like
``train/9.jpg,10-19,Male,White,True``) and an image directory holding the ``train/`` and ``val/``
folders the ``file`` column points into. Two image sets exist, cropped with padding 0.25 (the main
one) or 1.25 (``dataset.padding``); with ``dataset.image_dir`` null the first of these holding a
``train/`` folder is used:

* padding 0.25: ``fairface-img-margin025-trainval/``, ``margin025/``, ``dataset.root`` itself;
* padding 1.25: ``fairface-img-margin125-trainval/``, ``margin125/``.

Attributes: ``gender`` (Female, Male), ``race`` (see :data:`RACE_GROUPS` for ``dataset.race_groups``
7, 5 or 4), ``age`` (the nine official bins) and ``age_group`` (under/over ``dataset.age_threshold``).
``service_test`` is a flag, not an attribute: ``dataset.service_test_only=true`` keeps only the rows
the authors marked True (their race- and gender-balanced subset).

Splits: FairFace ships train and val only. The rows of the val CSV become the ``test`` split and
those of the train CSV the ``train`` split; the shared code then carves a seeded, stratified ``val``
split (``dataset.val_fraction``) from train, since no row is marked 'val'.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from fairrun.core.validation import require
from fairrun.data.groups import protected_list
from fairrun.data.table import (GENDER_VALUES, ImageDatasetConfig, ImageTable, age_group_values, count_skipped,
                                drop_missing_images, encode, missing_files_error, resolve_root)
from fairrun.core.errors import FairrunError

OBTAIN = ("https://github.com/joojs/fairface, whose README links the image zips "
          "fairface-img-margin025-trainval.zip and fairface-img-margin125-trainval.zip and the label "
          "CSVs on Google Drive")
LABEL_FILES = {"train": "fairface_label_train.csv", "test": "fairface_label_val.csv"}  # split: file
LABEL_COLUMNS = ["file", "age", "gender", "race", "service_test"]
IMAGE_DIR_CANDIDATES = {  # dataset.padding -> image directories tried in order ("" = dataset.root)
    0.25: ("fairface-img-margin025-trainval", "margin025", ""),
    1.25: ("fairface-img-margin125-trainval", "margin125"),
}
LAYOUT_DESCRIPTION = (
    "fairface_label_train.csv and fairface_label_val.csv in dataset.root, and the images of the "
    "chosen padding in <image dir>/train/ and <image dir>/val/, where <image dir> is dataset.image_dir "
    "or, when it is null, for padding 0.25 the first of fairface-img-margin025-trainval/, margin025/ "
    "or dataset.root itself, for padding 1.25 the first of fairface-img-margin125-trainval/ or "
    "margin125/ that holds a train/ folder."
)
SOURCE = "FairFace (padding {padding})"

RACES = ["White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern"]
AGE_BINS = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]
AGE_BIN_LOWER_EDGES = [0, 3, 10, 20, 30, 40, 50, 60, 70]
AGE_THRESHOLDS = tuple(AGE_BIN_LOWER_EDGES[1:])
# dataset.race_groups -> {FairFace race: race group}, the groups in code order. 5 is UTKFace's coding
# (White, Black, Asian, Indian, Others) for cross-dataset evaluation; with 4, races absent from the
# mapping (Latino_Hispanic, Middle Eastern) are dropped.
RACE_GROUPS: dict[int, tuple[dict[str, str], list[str]]] = {
    7: ({race: race for race in RACES}, list(RACES)),
    5: ({"White": "White", "Black": "Black", "East Asian": "Asian", "Southeast Asian": "Asian",
         "Indian": "Indian", "Latino_Hispanic": "Others", "Middle Eastern": "Others"},
        ["White", "Black", "Asian", "Indian", "Others"]),
    4: ({"White": "White", "Black": "Black", "East Asian": "Asian", "Southeast Asian": "Asian",
         "Indian": "Indian"},
        ["White", "Black", "Asian", "Indian"]),
}
ATTRIBUTES = ("gender", "race", "age", "age_group")


@dataclass
class FairFaceConfig(ImageDatasetConfig):
    """``dataset=fairface``: FairFace from disk; keys under ``dataset.``."""

    name: str = "fairface"
    target: str = "gender"  # gender | race | age | age_group
    protected: Any = "race"  # an attribute, or a list for intersectional groups: [race, gender]
    image_size: int = 64  # side in pixels of the square images the model sees (resized once, cached)
    padding: float = 0.25  # image set: 0.25 (main, tight crops) or 1.25 (more context around the face)
    # folder holding train/ and val/ (relative to root). null: the first holding a train/
    image_dir: Optional[str] = None
    race_groups: int = 7  # 7 official | 5 UTKFace-compatible | 4 (Latino_Hispanic, Middle Eastern dropped)
    age_threshold: int = 30  # age_group splits at this age: a bin lower edge 3, 10, 20, 30, 40, 50, 60 or 70
    # true: keep only rows with service_test True (the authors' balanced subset)
    service_test_only: bool = False


def attribute_names(cfg) -> list[str]:
    """The names ``dataset.target`` / ``dataset.protected`` may take (no file is read): gender, race, the nine
    official age bins ``age`` and ``age_group`` (Kärkkäinen & Joo, WACV 2021)."""
    return list(ATTRIBUTES)


def validate(cfg) -> None:
    """Check the FairFace-specific keys and the attribute names; raise ConfigError.

    padding 0.25 or 1.25, race_groups 7/5/4, age_threshold a lower edge of an official age bin
    (Kärkkäinen & Joo, WACV 2021), target and protected among gender, race, age, age_group.
    """
    require(cfg.padding in IMAGE_DIR_CANDIDATES, "dataset.padding", cfg.padding, "0.25 or 1.25")
    require(cfg.race_groups in RACE_GROUPS, "dataset.race_groups", cfg.race_groups,
            "7 (official races), 5 (UTKFace-compatible) or 4 (White, Black, Asian, Indian)")
    require(cfg.age_threshold in AGE_THRESHOLDS, "dataset.age_threshold", cfg.age_threshold,
            f"a lower edge of a FairFace age bin: {', '.join(map(str, AGE_THRESHOLDS))}")
    require(cfg.image_dir is None or (isinstance(cfg.image_dir, str) and cfg.image_dir.strip() != ""),
            "dataset.image_dir", cfg.image_dir, "null (found from dataset.padding) or a folder path")
    accepted = ", ".join(ATTRIBUTES)
    require(cfg.target in ATTRIBUTES, "dataset.target", cfg.target, f"one of {accepted}")
    for name in protected_list(cfg.protected):
        require(name in ATTRIBUTES, "dataset.protected", cfg.protected,
                f"one of {accepted}, or a list of them")


def read_table(cfg) -> ImageTable:
    """Read FairFace's label CSVs into an ImageTable (no image is decoded).

    Rows of the train CSV form ``train``, rows of the val CSV ``test``. Codes gender, race (merged
    per ``dataset.race_groups``), the nine age bins and ``age_group``; applies
    ``dataset.service_test_only``; checks with one listing per folder that the image files exist.
    ``ImageTable.root`` is the image directory, and ``paths`` are the CSV's ``file`` entries.
    FairFace: Kärkkäinen & Joo, WACV 2021.
    """
    root = resolve_root(cfg, "FairFace", OBTAIN)
    image_root = check_files(root, cfg.padding, cfg.image_dir)
    labels = read_labels(root)
    skipped: dict[str, int] = {}
    labels = select_rows(labels, cfg, skipped)
    table = ImageTable(
        root=image_root,
        paths=labels["file"].tolist(),
        attributes=code_attributes(labels, cfg.race_groups, cfg.age_threshold),
        attribute_values={
            "gender": list(GENDER_VALUES),
            "race": list(RACE_GROUPS[cfg.race_groups][1]),
            "age": list(AGE_BINS),
            "age_group": age_group_values(cfg.age_threshold),
        },
        split=labels["split"].to_numpy(dtype=object),
        skipped=skipped,
        source=SOURCE.format(padding=cfg.padding),
    )
    return drop_missing_images(table, bool(cfg.skip_bad), " and ".join(LABEL_FILES.values()))


def check_files(root: Path, padding: float, image_dir: Optional[str]) -> Path:
    """The image folder, after checking that it and both label CSVs exist.

    Otherwise raises the missing-files error listing the CSVs, every image folder candidate
    (``<candidate>/train/``), what is missing and where to get FairFace.
    """
    candidates = image_dir_candidates(padding, image_dir)
    image_root = find_image_dir(root, candidates)
    missing = [name for name in LABEL_FILES.values() if not (root / name).is_file()]
    if image_root is not None and not missing:
        return image_root
    if image_root is None:
        what = f"dataset.image_dir={image_dir}" if image_dir else f"padding {padding}"
        missing.append(f"an image folder for {what} (one of the train/ folders listed)")
    expected = [*LABEL_FILES.values(), *(posixpath.join(c, "train/") if c else "train/" for c in candidates)]
    raise missing_files_error("FairFace", root, expected, LAYOUT_DESCRIPTION, OBTAIN,
                              found=f"Missing: {'; '.join(missing)}.")


def read_labels(root: Path) -> pd.DataFrame:
    """Both label CSVs in one frame (train rows first) with a ``split`` column: train or test."""
    frames = [read_label_file(root / name).assign(split=split) for split, name in LABEL_FILES.items()]
    return pd.concat(frames, ignore_index=True)


def read_label_file(path: Path) -> pd.DataFrame:
    """One label CSV (``file,age,gender,race,service_test``) as strings, service_test as bool."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as err:
        raise FairrunError(f"Cannot parse {path}: {err}. Expected FairFace's label CSV "
                           f"(header {','.join(LABEL_COLUMNS)}).") from None
    missing = [c for c in LABEL_COLUMNS[:-1] if c not in frame.columns]
    if missing:
        raise FairrunError(f"{path} has no column(s) {', '.join(missing)}; expected FairFace's header "
                           f"{','.join(LABEL_COLUMNS)}, found {','.join(map(str, frame.columns))}.")
    if "service_test" not in frame.columns:  # the first release of the CSVs had no such column
        frame["service_test"] = "False"
    frame = frame[LABEL_COLUMNS].copy()
    frame["service_test"] = (frame["service_test"].str.strip().str.lower() == "true").to_numpy(dtype=bool)
    return frame


def image_dir_candidates(padding: float, image_dir: Optional[str]) -> list[str]:
    """Image folders to try, relative to the root ("" = the root): ``image_dir`` or those of ``padding``."""
    return [str(Path(image_dir).expanduser())] if image_dir else list(IMAGE_DIR_CANDIDATES[padding])


def find_image_dir(root: Path, candidates: list[str]) -> Optional[Path]:
    """The first candidate folder holding a ``train/`` folder (the CSV paths are relative to it)."""
    for candidate in candidates:
        if (root / candidate / "train").is_dir():
            return (root / candidate).resolve()
    return None


def select_rows(labels: pd.DataFrame, cfg, skipped: dict[str, int]) -> pd.DataFrame:
    """Rows kept by ``service_test_only`` and ``race_groups`` (dropped rows counted in ``skipped``)."""
    keep = np.ones(len(labels), dtype=bool)
    if cfg.service_test_only:
        require_service_test_column(labels)
        count_skipped(skipped, "service_test False (dataset.service_test_only=true)",
                      int((~labels["service_test"]).sum()))
        keep &= labels["service_test"].to_numpy()
    mapping, _ = RACE_GROUPS[cfg.race_groups]
    in_groups = labels["race"].isin(list(mapping)).to_numpy()
    known = labels["race"].isin(RACES).to_numpy()
    count_skipped(skipped, f"race outside dataset.race_groups={cfg.race_groups}",
                  int((keep & known & ~in_groups).sum()))
    keep &= in_groups | ~known  # unknown race names are reported by code_attributes
    return labels[keep].reset_index(drop=True)


def require_service_test_column(labels: pd.DataFrame) -> None:
    """Raise FairrunError when no row is marked service_test True (e.g. CSVs without the column)."""
    if not labels["service_test"].any():
        raise FairrunError("dataset.service_test_only=true, but no row of the FairFace label CSVs has "
                           "service_test True (CSVs of the first release have no service_test column). "
                           "Use the current label CSVs from https://github.com/joojs/fairface or set "
                           "dataset.service_test_only=false.")


def code_attributes(labels: pd.DataFrame, race_groups: int, age_threshold: int) -> pd.DataFrame:
    """int64 codes of gender, race (merged per ``race_groups``), age bin and age_group."""
    where = "FairFace label CSVs"
    mapping, groups = RACE_GROUPS[race_groups]
    encode(labels["race"], RACES, "race", where)  # names an unknown race before it is merged away
    age = encode(labels["age"], AGE_BINS, "age", where)
    return pd.DataFrame({
        "gender": encode(labels["gender"], GENDER_VALUES, "gender", where),
        "race": encode(labels["race"].map(mapping), groups, "race", where),
        "age": age,
        "age_group": (np.asarray(AGE_BIN_LOWER_EDGES)[age] >= age_threshold).astype(np.int64),
    })
