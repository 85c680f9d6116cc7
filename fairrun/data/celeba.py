"""CelebA read from disk: the official layout or the Kaggle copy, whole or any subset.

CelebA (Liu et al., "Deep Learning Face Attributes in the Wild", ICCV 2015) has 202,599 aligned
178x218 face images, 40 binary attributes per image and an official partition (0 train,
1 valid, 2 test). Two layouts are accepted under ``dataset.root``:

* official: ``img_align_celeba/000001.jpg ...``, ``list_attr_celeba.txt`` (line 1 the image count,
  line 2 the 40 attribute names, then rows ``000001.jpg -1  1  1 -1 ...``) and
  ``list_eval_partition.txt`` (rows ``000001.jpg 0``);
* Kaggle (jessicali9530/celeba-dataset): ``list_attr_celeba.csv`` (``image_id,5_o_Clock_Shadow,...``),
  ``list_eval_partition.csv`` (``image_id,partition``) and the images in
  ``img_align_celeba/img_align_celeba/``.

Either layout may sit in ``dataset.root`` itself or in its ``celeba/`` sub-folder, which is where
torchvision's ``CelebA(root)`` keeps it (``ROOT/celeba/img_align_celeba/...`` and the annotation files
in ``ROOT/celeba/``). ``dataset.root`` is tried first, then ``celeba/``; the folder used is logged and
is the ``ImageTable.root`` (so it is part of the decoded-image cache key). When neither holds a
complete copy, the error also names any folder a few levels below ``dataset.root`` (a bounded
search) or just above it that does hold one.

``dataset.layout=auto`` uses the official layout when it is complete, else the Kaggle one.
torchvision's ``CelebA`` is not used: it MD5-checks every annotation file, so it rejects subsets and
the Kaggle copy. Here a subset is any set of rows: the count line may disagree with the rows (the
rows win, with a warning), and only images present in both the attribute and the partition file
are used (the others are counted in ``ImageTable.skipped``).

Attributes: all 40, with value names ``[f"not_{A}", A]``, except ``Male`` whose values are
``["Female", "Male"]``; plus ``gender``, an alias of ``Male`` (same codes and names) so that a
model trained on CelebA can be evaluated on UTKFace or FairFace with the same attribute name.

Identities (optional): when ``identity_CelebA.txt`` (official release, 'Anno' folder; rows
``000001.jpg 2880``: the image name and the person's identity number 1-10,177, one per line, no header)
sits beside the attribute file, in either layout, the table gets one more column, ``identity``: codes
into the identity numbers as strings (``attribute_values["identity"]``), -1 for an image the file does
not list. It is metadata only (not an attribute a run can predict or protect; the decoded-image cache
is keyed by the image paths, so it is unchanged). ``method=dp_fedavg method.partition=identity`` makes
each person one client (:func:`with_identity`).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch

from fairrun.core.validation import require
from fairrun.data.base import LabeledSplit, SplitData
from fairrun.data.groups import protected_list
from fairrun.data.table import (GENDER_VALUES, ImageDatasetConfig, ImageTable, count_skipped, drop_missing_images,
                                missing_files_error, resolve_root)
from fairrun.core.errors import ConfigError, FairrunError

log = logging.getLogger(__name__)

OBTAIN = ("https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, Google Drive folders 'Align&Cropped Images' "
          "for img_align_celeba.zip, 'Anno' for list_attr_celeba.txt and 'Eval' for list_eval_partition.txt, "
          "or the Kaggle copy jessicali9530/celeba-dataset")
LAYOUTS = ("auto", "official", "kaggle")
LAYOUT_FILES = {  # annotation files and image directory of each layout, relative to the CelebA folder
    "official": ("list_attr_celeba.txt", "list_eval_partition.txt", "img_align_celeba/"),
    "kaggle": ("list_attr_celeba.csv", "list_eval_partition.csv", "img_align_celeba/img_align_celeba/"),
}
LAYOUT_DESCRIPTION = (
    "official: list_attr_celeba.txt, list_eval_partition.txt and img_align_celeba/000001.jpg ...; "
    "Kaggle: list_attr_celeba.csv, list_eval_partition.csv and img_align_celeba/img_align_celeba/"
    "000001.jpg ... (any subset of the rows and images is fine)."
)
SOURCES = {"official": "CelebA (official layout)", "kaggle": "CelebA (Kaggle layout)"}
LAYOUT_NAMES = {"official": "official layout", "kaggle": "Kaggle layout"}
SUBFOLDER = "celeba"  # torchvision's CelebA(root) keeps the dataset in root/celeba/
FOLDERS_DESCRIPTION = (f" Either layout may be in dataset.root itself or in its {SUBFOLDER}/ sub-folder "
                       f"(torchvision's layout: ROOT/{SUBFOLDER}/img_align_celeba/... with the annotation "
                       f"files in ROOT/{SUBFOLDER}/).")
# Bounds of the search below dataset.root for a copy to name in the missing-files error: it only runs
# when the files are missing, and never reads a huge tree (an image folder has 202,599 entries).
SEARCH_DEPTH = 3  # levels below dataset.root
SEARCH_MAX_FOLDERS = 200  # folders listed in all
SEARCH_MAX_ENTRIES = 2000  # entries read per folder
SEARCH_MAX_REPORTED = 3  # copies named in the message
PARTITION_SPLITS = {0: "train", 1: "val", 2: "test"}

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
)
GENDER_ALIAS = "gender"  # a copy of Male, named like UTKFace's and FairFace's gender attribute
IDENTITY = "identity"  # the table column of each image's person (identity_CelebA.txt), when the file is there
IDENTITY_FILE = "identity_CelebA.txt"  # official release, 'Anno': rows "000001.jpg 2880", no header
IDENTITY_DATASETS = ("celeba",)  # the built-in datasets whose rows can carry an identity


@dataclass
class CelebAConfig(ImageDatasetConfig):
    """``dataset=celeba``: CelebA from disk (official or Kaggle layout); keys under ``dataset.``."""

    name: str = "celeba"
    target: str = "Smiling"  # any of the 40 attributes, e.g. Smiling, Blond_Hair, Young
    # an attribute (Male or its alias gender, ...), or a list for intersectional groups: [Male, Young]
    protected: Any = "Male"
    image_size: int = 64  # side in pixels of the square images the model sees (resized once, cached)
    crop: str = "center"  # the published CelebA code center-crops 178x178, then resizes
    crop_size: Optional[int] = 178  # side of the center crop (crop=center only)
    layout: str = "auto"  # auto (official if complete, else Kaggle) | official | kaggle


def attribute_value_names(attribute: str) -> list[str]:
    """Names of codes 0 and 1 of a CelebA attribute: Female/Male for Male (and gender), else not_A/A."""
    if attribute in ("Male", GENDER_ALIAS):
        return list(GENDER_VALUES)
    return [f"not_{attribute}", attribute]


def attribute_names(cfg) -> list[str]:
    """The names ``dataset.target`` / ``dataset.protected`` may take, without reading a file: the 40
    attributes of the header of the official ``list_attr_celeba.txt`` (Liu et al., ICCV 2015) and
    ``gender``, the alias of ``Male``."""
    return [*CELEBA_ATTRIBUTES, GENDER_ALIAS]


def validate(cfg) -> None:
    """Check the CelebA-specific keys (layout, target and protected names); raise ConfigError.

    The attribute names are checked before any file is read: one of the 40 CelebA attributes
    (Liu et al., ICCV 2015) or ``gender``, the alias of ``Male``.
    """
    require(cfg.layout in LAYOUTS, "dataset.layout", cfg.layout, "auto, official or kaggle")
    accepted = f"one of the 40 CelebA attributes ({', '.join(CELEBA_ATTRIBUTES)}) or {GENDER_ALIAS}"
    known = set(CELEBA_ATTRIBUTES) | {GENDER_ALIAS}
    require(isinstance(cfg.target, str) and cfg.target in known, "dataset.target", cfg.target, accepted)
    protected = protected_list(cfg.protected)
    for name in protected:
        require(isinstance(name, str) and name in known, "dataset.protected", cfg.protected,
                f"{accepted}, or a list of them")
    names = [cfg.target, *protected]
    if "Male" in names and GENDER_ALIAS in names:
        raise ConfigError(f"Invalid value for 'dataset.protected': {cfg.protected!r} together with "
                          f"dataset.target={cfg.target!r}. Accepted: Male or gender, not both "
                          f"(gender is an alias of Male).")


def read_table(cfg) -> ImageTable:
    """Read CelebA's attribute and partition files into an ImageTable (no image is decoded).

    Detects the layout, keeps the images listed in both annotation files, maps the official
    partition (0, 1, 2) to train/val/test, codes each attribute 0 (-1 in the file) or 1 (+1) and
    adds the ``gender`` alias of ``Male``. Image files listed but absent are skipped
    (``dataset.skip_bad=true``) or reported as an error. CelebA: Liu et al., ICCV 2015.
    """
    root, layout = locate(resolve_root(cfg, "CelebA", OBTAIN), getattr(cfg, "layout", "auto"))
    attr_file, partition_file, image_dir = LAYOUT_FILES[layout]
    if layout == "official":
        attributes = read_official_attributes(root / attr_file)
        partition = read_official_partition(root / partition_file)
    else:
        attributes = read_kaggle_attributes(root / attr_file)
        partition = read_kaggle_partition(root / partition_file)
    skipped: dict[str, int] = {}
    attributes, split = join_partition(attributes, partition, skipped)
    image_ids = attributes.pop("image_id").astype(str).tolist()
    codes = code_attributes(attributes, image_ids, root / attr_file)
    values = {name: attribute_value_names(name) for name in codes.columns}
    if (root / IDENTITY_FILE).is_file():
        codes[IDENTITY], values[IDENTITY] = identity_codes(image_ids, read_identities(root / IDENTITY_FILE))
    table = ImageTable(
        root=root,
        paths=[image_dir + image_id for image_id in image_ids],
        attributes=codes,
        attribute_values=values,
        split=split,
        skipped=skipped,
        source=SOURCES[layout],
    )
    return drop_missing_images(table, bool(cfg.skip_bad), f"{attr_file} and {partition_file}")


def locate(root: Path, layout: str = "auto") -> tuple[Path, str]:
    """The folder holding CelebA and its layout: ``root`` itself, else torchvision's ``root/celeba/``.

    Logs the folder used. When neither is complete, raises the missing-files error: every file
    looked for, what was found, and any folder below (or just above) ``root`` that holds a copy.
    """
    candidates = ["official", "kaggle"] if layout == "auto" else [layout]
    sub = root / SUBFOLDER
    for folder in (root, sub):
        for candidate in candidates:
            if is_complete(folder, candidate):
                folder = folder.resolve()  # the cache key holds the resolved folder, symlinks followed
                if folder == root:
                    log.info("CelebA: %s in dataset.root=%s", LAYOUT_NAMES[candidate], folder)
                else:
                    log.info("CelebA: %s in %s (the %s/ sub-folder of dataset.root=%s, torchvision's layout)",
                             LAYOUT_NAMES[candidate], folder, SUBFOLDER, root)
                return folder, candidate
    entries = [entry for candidate in candidates for entry in LAYOUT_FILES[candidate]]
    expected = list(entries)
    expected += [f"{SUBFOLDER}/{entry}" for entry in entries] if sub.is_dir() else [f"{SUBFOLDER}/"]
    found = [entry for entry in expected if entry != f"{SUBFOLDER}/" and (root / entry).exists()]
    note = f"Found only: {', '.join(found)}." if found else "None of them exists."
    copies = copies_near(root)
    if copies:
        shown = "; ".join(f"{folder} ({LAYOUT_NAMES[kind]})" for folder, kind in copies[:SEARCH_MAX_REPORTED])
        more = f" and {len(copies) - SEARCH_MAX_REPORTED} more" if len(copies) > SEARCH_MAX_REPORTED else ""
        first, kind = copies[0]
        fix = f"pass dataset.root={first}" if first != root else ""
        if kind not in candidates:  # only when dataset.layout names the other layout
            fix += f"{' with ' if fix else 'pass '}dataset.layout={kind} (or auto)"
        note += f" A CelebA copy is in {shown}{more}: {fix}."
    raise missing_files_error("CelebA", root, expected, LAYOUT_DESCRIPTION + FOLDERS_DESCRIPTION, OBTAIN,
                              found=note)


def detect_layout(root: Path, layout: str = "auto") -> str:
    """The layout of the CelebA copy found from ``root`` (see :func:`locate`, which also gives the folder)."""
    return locate(root, layout)[1]


def is_complete(folder: Path, layout: str, names: Optional[set[str]] = None) -> bool:
    """Whether ``folder`` holds every annotation file and the image folder of ``layout``.

    ``names``: the folder's entries when already listed (saves the stat of each annotation file).
    """
    attr_file, partition_file, image_dir = LAYOUT_FILES[layout]
    if names is not None and not {attr_file, partition_file, image_dir.split("/")[0]} <= names:
        return False
    return ((folder / attr_file).is_file() and (folder / partition_file).is_file()
            and (folder / image_dir).is_dir())


def copies_near(root: Path) -> list[tuple[Path, str]]:
    """Folders (with their layout) holding a complete CelebA copy in, below or just above ``root``.

    ``root`` and its ``celeba/`` sub-folder only show up with the layout that dataset.layout did not
    name (else they would have been used). Below ``root``: a breadth-first search at most
    SEARCH_DEPTH levels deep that lists at most SEARCH_MAX_FOLDERS folders and reads at most
    SEARCH_MAX_ENTRIES entries of each, skipping hidden folders and never listing an image folder, so
    a huge tree costs a bounded number of reads. Above: the parent and grandparent (a dataset.root
    pointing into ``img_align_celeba/``), checked with a few stats.
    """
    copies: list[tuple[Path, str]] = []
    level, listed = [root], 0
    for _ in range(SEARCH_DEPTH + 1):
        below: list[Path] = []
        for folder in level:
            if listed >= SEARCH_MAX_FOLDERS:
                break
            listed += 1
            names, folders = bounded_listing(folder)
            copies += [(folder.resolve(), kind) for kind in LAYOUT_FILES if is_complete(folder, kind, names)]
            below += [folder / name for name in sorted(folders) if name != "img_align_celeba"]
        level = below
        if not level or listed >= SEARCH_MAX_FOLDERS:
            break
    for parent in list(root.parents)[:2]:
        copies += [(parent, kind) for kind in LAYOUT_FILES if is_complete(parent, kind)]
    return copies


def bounded_listing(folder: Path) -> tuple[set[str], set[str]]:
    """Up to SEARCH_MAX_ENTRIES entry names of ``folder``, and which of them are (non-hidden) folders."""
    names: set[str] = set()
    folders: set[str] = set()
    try:
        with os.scandir(folder) as entries:
            for count, entry in enumerate(entries):
                if count >= SEARCH_MAX_ENTRIES:
                    break
                names.add(entry.name)
                try:
                    if not entry.name.startswith(".") and entry.is_dir():
                        folders.add(entry.name)
                except OSError:
                    pass
    except OSError:
        pass
    return names, folders


def read_official_attributes(path: Path) -> pd.DataFrame:
    """``list_attr_celeba.txt`` as a frame: ``image_id`` then one -1/1 column per attribute.

    Line 1 is the image count (compared with the rows; the rows win, with a warning), line 2 the
    attribute names, then one whitespace-separated row per image.
    """
    with open(path, encoding="utf-8") as handle:
        first = handle.readline().strip()
        has_count = first.isdigit()
        names = (handle.readline() if has_count else first).split()
    frame = parse_table(path, dict(sep=r"\s+", skiprows=2 if has_count else 1, header=None,
                                   names=["image_id", *names], dtype={"image_id": str}))
    if not isinstance(frame.index, pd.RangeIndex):  # pandas indexes by any fields beyond the names
        raise FairrunError(f"Cannot parse {path}: its rows have more fields than the file name and the "
                           f"{len(names)} attribute names of the header line.")
    if has_count and int(first) != len(frame):
        log.warning("%s: the count line says %s images but %d rows follow; using the %d rows.",
                    path, first, len(frame), len(frame))
    return frame


def read_official_partition(path: Path) -> pd.DataFrame:
    """``list_eval_partition.txt`` (rows ``000001.jpg 0``) as columns image_id, partition."""
    return parse_table(path, dict(sep=r"\s+", header=None, names=["image_id", "partition"],
                                  dtype={"image_id": str}))


def read_kaggle_attributes(path: Path) -> pd.DataFrame:
    """Kaggle's ``list_attr_celeba.csv`` (``image_id,5_o_Clock_Shadow,...``, values -1/1)."""
    frame = parse_table(path, dict(dtype={"image_id": str}))
    require_columns(frame, path, ["image_id"])
    return frame


def read_kaggle_partition(path: Path) -> pd.DataFrame:
    """Kaggle's ``list_eval_partition.csv`` (``image_id,partition``)."""
    frame = parse_table(path, dict(dtype={"image_id": str}))
    require_columns(frame, path, ["image_id", "partition"])
    return frame[["image_id", "partition"]]


def parse_table(path: Path, options: dict) -> pd.DataFrame:
    """``pandas.read_csv(path, **options)``, parse errors reported as a FairrunError naming the file."""
    try:
        return pd.read_csv(path, **options)
    except (ValueError, pd.errors.ParserError) as err:
        raise FairrunError(f"Cannot parse {path}: {err}. Is it an unmodified CelebA annotation file "
                           f"(or a subset of its rows)?") from None


def require_columns(frame: pd.DataFrame, path: Path, columns: list[str]) -> None:
    """Raise FairrunError unless ``frame`` (read from ``path``) has ``columns``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise FairrunError(f"{path} has no column(s) {', '.join(missing)}; its header is "
                           f"{', '.join(map(str, frame.columns[:5]))}, ... Expected the Kaggle CelebA "
                           f"format (header image_id,... ).")


def join_partition(attributes: pd.DataFrame, partition: pd.DataFrame,
                   skipped: dict[str, int]) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of ``attributes`` that have a partition entry, and their split names.

    Images in only one of the two files are counted in ``skipped``. Keeps the attribute file's order.
    """
    partition = partition.drop_duplicates("image_id").set_index("image_id")["partition"]
    has_partition = attributes["image_id"].isin(partition.index).to_numpy()
    count_skipped(skipped, "missing from the partition file", int((~has_partition).sum()))
    attributes = attributes[has_partition].reset_index(drop=True)
    codes = partition.reindex(attributes["image_id"]).to_numpy()
    no_attributes = ~partition.index.isin(attributes["image_id"])
    count_skipped(skipped, "missing from the attribute file", int(no_attributes.sum()))
    bad = ~np.isin(codes, list(PARTITION_SPLITS))
    if bad.any():
        raise FairrunError(f"Unexpected partition value {codes[bad].tolist()[0]!r} for "
                           f"{attributes['image_id'][np.flatnonzero(bad)[0]]} ({int(bad.sum())} rows). "
                           f"Accepted: 0 (train), 1 (valid), 2 (test).")
    names = np.array([PARTITION_SPLITS[k] for k in sorted(PARTITION_SPLITS)], dtype=object)
    return attributes, names[codes.astype(np.int64)]


def code_attributes(values: pd.DataFrame, image_ids: list[str], path: Path) -> pd.DataFrame:
    """-1/1 attribute columns as int64 codes 0/1, plus the ``gender`` alias of ``Male``."""
    matrix = values.to_numpy()
    bad = ~np.isin(matrix, (-1, 1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise FairrunError(f"{path}: value {matrix[row, col].item()!r} for {image_ids[row]} in column "
                           f"{values.columns[col]!r} ({int(bad.sum())} bad values in all). CelebA "
                           f"attribute values must be -1 or 1.")
    codes = pd.DataFrame((matrix > 0).astype(np.int64), columns=list(values.columns))
    if "Male" in codes.columns:
        codes[GENDER_ALIAS] = codes["Male"]
    return codes


# -- identities (identity_CelebA.txt) -----------------------------------------------------------------

def read_identities(path: Path) -> pd.Series:
    """``identity_CelebA.txt`` (rows ``000001.jpg 2880``, no header) as a Series image_id -> identity number.

    Raises FairrunError naming the file when a row is not an image name followed by one integer, or when an
    image is listed twice with different identities.
    """
    frame = parse_table(path, dict(sep=r"\s+", header=None, dtype={0: str}))
    if frame.shape[1] != 2 or not pd.api.types.is_integer_dtype(frame[1]):
        raise FairrunError(f"Cannot parse {path}: expected rows '000001.jpg 2880' (the image name and its "
                           f"integer identity number, no header), as in CelebA's {IDENTITY_FILE}.")
    if frame[0].duplicated().any():  # a repeated row is harmless; a second identity number is not
        frame = frame.drop_duplicates()
        if frame[0].duplicated().any():
            image = frame[0][frame[0].duplicated()].iloc[0]
            raise FairrunError(f"{path} lists {image} with more than one identity number.")
    return pd.Series(frame[1].to_numpy(dtype=np.int64), index=frame[0].to_numpy())


def identity_codes(image_ids: list[str], identities: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Per image, the code of its identity number among the sorted numbers present (-1 if unlisted), and
    those numbers as strings (the column's value names)."""
    numbers = identities.reindex(image_ids).to_numpy(dtype=np.float64)
    listed = ~np.isnan(numbers)
    names = np.unique(numbers[listed]).astype(np.int64)
    codes = np.full(len(image_ids), -1, dtype=np.int64)
    codes[listed] = np.searchsorted(names, numbers[listed].astype(np.int64))
    if not listed.all():
        log.warning("%s lists no identity for %d of %d images", IDENTITY_FILE, int((~listed).sum()),
                    len(listed))
    return codes, [str(n) for n in names]


@dataclass
class IdentifiedSplit(LabeledSplit):
    """A :class:`LabeledSplit` whose rows also carry their person: ``identity`` (int64 (N,), codes of the
    identity numbers, -1 for none). :meth:`subset` (imbalance sampling) keeps it aligned with the rows, and
    ``dataclasses.replace`` (moving to memory or the device) keeps it."""

    identity: Optional[torch.Tensor] = None

    def subset(self, index: torch.Tensor) -> "IdentifiedSplit":
        return replace(super().subset(index), identity=self.identity[index])


def identity_file_locations(cfg) -> str:
    """Where ``identity_CelebA.txt`` is looked for, in words (for error messages)."""
    return (f"{IDENTITY_FILE} beside list_attr_celeba.txt (or list_attr_celeba.csv), in dataset.root="
            f"{getattr(cfg, 'root', None)} or its {SUBFOLDER}/ sub-folder")


def require_identities(cfg, key: str = "method.partition=identity") -> None:
    """Raise ConfigError unless dataset ``cfg`` can give every image its person, before any image is decoded:
    ``dataset=celeba`` with :data:`IDENTITY_FILE` in the CelebA folder (:func:`locate`)."""
    accepted = (f"Datasets with identities: {', '.join(IDENTITY_DATASETS)} (the file "
                f"{identity_file_locations(cfg)}; rows '000001.jpg 2880': image name and identity number).")
    if cfg.name not in IDENTITY_DATASETS:
        raise ConfigError(f"{key} needs each image's person, and dataset={cfg.name} has no identities. "
                          f"{accepted}")
    folder, _ = locate(resolve_root(cfg, "CelebA", OBTAIN), getattr(cfg, "layout", "auto"))
    if not (folder / IDENTITY_FILE).is_file():
        raise ConfigError(f"{key} needs {folder / IDENTITY_FILE}, which does not exist. Download it from "
                          f"https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive folder 'Anno') "
                          f"into {folder}, beside the attribute file. {accepted}")


def with_identity(split: LabeledSplit, raw: SplitData) -> IdentifiedSplit:
    """``split`` with each row's identity code from its raw split's ``identity`` column (same rows and order).

    Raises ConfigError when the raw split has no identities or some rows lack one (an image that
    identity_CelebA.txt does not list cannot be given to a client).
    """
    if IDENTITY not in raw.attributes.columns:
        raise ConfigError(f"The {split.name} split has no identities. Datasets with identities: "
                          f"{', '.join(IDENTITY_DATASETS)} (with {IDENTITY_FILE}).")
    identity = torch.from_numpy(raw.attributes[IDENTITY].to_numpy(dtype=np.int64, copy=True))
    missing = int((identity < 0).sum())
    if missing:
        raise ConfigError(f"{missing} of {len(identity)} images of the {split.name} split are not listed in "
                          f"{IDENTITY_FILE}, so they belong to no person. Use the complete file, or a subset "
                          f"of images that it lists.")
    fields = {name: getattr(split, name) for name in LabeledSplit.__dataclass_fields__}
    return IdentifiedSplit(**fields, identity=identity)
