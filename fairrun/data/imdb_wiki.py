"""IMDB-WIKI (``dataset=imdb_wiki``): celebrity faces from IMDb or Wikipedia with gender and age.

Rothe, Timofte & Van Gool, "Deep expectation of real and apparent age from a single image without
facial landmarks", IJCV 2018; https://data.vision.ee.ethz.ch/cvl/rrothe/imdb-wiki/. The "faces
only" tarballs extract to ``imdb_crop/`` (``wiki_crop/``) holding ``imdb.mat`` (``wiki.mat``) and
the image folders ``00/`` ... ``99/``. The .mat file holds the struct ``meta[source][0, 0]`` with
1 x N fields ``dob`` (Matlab datenum of the birth date), ``photo_taken`` (year), ``full_path``,
``gender`` (0 female, 1 male, NaN unknown), ``name``, ``face_location``, ``face_score`` (-inf: no
face found) and ``second_face_score`` (NaN: no second face). The age at the photo is computed as in
the dataset's code: photo_taken - birth year, minus 1 for births in July or later (the photo year's
July 1st is the assumed photo date). There is no official split.

Attributes: ``gender`` (Female, Male; plus Unknown with ``dataset.drop_unknown_gender=false``),
``age_group`` (``dataset.age_threshold``) and ``age_decade`` (0-9, ..., 70+; both plus Unknown with
``dataset.drop_bad_age=false``). Filters (``drop_no_face``, ``drop_multiple_faces``,
``min_face_score``, ``drop_unknown_gender``, ``drop_bad_age``) are applied in that order and each
counts the rows it removes.

``dataset.labels`` reads a hand-cleaned sheet instead of the .mat file (CSV or XLSX with columns
``full_path``, ``gender``, ``ethnicity``, as used for the IMDB test set of the FairFace notebook):
attributes ``gender`` and ``ethnicity``.
"""
from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from fairrun.data.table import (
    GENDER_VALUES,
    ImageDatasetConfig,
    ImageTable,
    age_group_values,
    drop_missing_images,
    launch_path,
    missing_files_error,
    resolve_root,
)
from fairrun.data.utkface import AGE_DECADE_VALUES, age_decade_codes, age_group_codes, check_age_threshold
from fairrun.core.errors import ConfigError, FairrunError

log = logging.getLogger(__name__)

OBTAIN = ("https://data.vision.ee.ethz.ch/cvl/rrothe/imdb-wiki/ (the faces-only imdb_crop.tar or "
          "wiki_crop.tar; Rothe, Timofte & Van Gool, \"Deep expectation of real and apparent age from a "
          "single image without facial landmarks\", IJCV 2018)")
SOURCES = ("imdb", "wiki")
MAX_AGE = 100
UNKNOWN = "Unknown"
SHEET_SUFFIXES = (".csv", ".xlsx", ".xlsm", ".xls")
SHEET_COLUMNS = ("full_path", "gender", "ethnicity")
GENDER_WORDS = {"female": 0, "f": 0, "woman": 0, "male": 1, "m": 1, "man": 1, "0": 0, "1": 1}
_DATENUM_TO_ORDINAL = 366  # Matlab datenum 1 is 1 January of year 0, Python ordinal 1 of year 1
_UNIX_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
FIELDS = ("dob", "photo_taken", "full_path", "gender", "face_score", "second_face_score")


@dataclass
class IMDBWikiConfig(ImageDatasetConfig):
    """``dataset=imdb_wiki``: the IMDB-WIKI face crops (imdb or wiki) or a hand-cleaned label sheet."""

    name: str = "imdb_wiki"
    target: str = "gender"  # gender, age_group (at age_threshold), age_decade; ethnicity with labels
    # an attribute name, or a list for intersectional groups: [age_group, gender]
    protected: Any = "age_group"
    image_size: int = 64  # images are resized to image_size x image_size when the cache is built
    crop: str = "square"  # square: centred largest square | center: centred crop_size square | none
    source: str = "imdb"  # imdb | wiki
    age_threshold: int = 30  # age_group: under_30 (age < 30) | 30_plus; 1..100
    drop_bad_age: bool = True  # drop rows with unknown or implausible (outside 0..100) age; false = "Unknown"
    drop_no_face: bool = True  # drop rows where no face was detected (face_score = -inf)
    drop_multiple_faces: bool = True  # drop rows with a second face (second_face_score not NaN)
    drop_unknown_gender: bool = True  # drop rows without gender; false = gender value "Unknown"
    # drop rows with a lower face_score (e.g. 3.0); null = no threshold
    min_face_score: Optional[float] = None
    labels: Optional[str] = None  # cleaned CSV/XLSX sheet (full_path, gender, ethnicity) instead of the .mat


def attribute_names(cfg) -> list[str]:
    """The names ``dataset.target`` / ``dataset.protected`` may take (no file is read): gender, age_group and
    age_decade from ``<source>.mat`` (Rothe et al., IJCV 2018), or gender and ethnicity from the cleaned
    sheet of ``dataset.labels``."""
    return ["gender", "ethnicity"] if cfg.labels is not None else ["gender", "age_group", "age_decade"]


def validate(cfg) -> None:
    """Range and choice checks of the IMDB-WIKI keys; raises ConfigError naming the key."""
    if cfg.source not in SOURCES:
        raise ConfigError(f"Invalid value for 'dataset.source': {cfg.source!r}. Accepted: imdb or wiki.")
    check_age_threshold(cfg.age_threshold, MAX_AGE)
    score = cfg.min_face_score
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                              or not np.isfinite(score)):
        raise ConfigError(f"Invalid value for 'dataset.min_face_score': {score!r}. Accepted: null or a "
                          f"finite number (face scores of detected faces are roughly 0 to 8).")
    if cfg.labels is not None and Path(str(cfg.labels)).suffix.lower() not in SHEET_SUFFIXES:
        raise ConfigError(f"Invalid value for 'dataset.labels': {cfg.labels!r}. Accepted: null or the path "
                          f"of a .csv or .xlsx file.")


# -- ages ---------------------------------------------------------------------------------------

def ages_at_photo(dob: np.ndarray, photo_taken: np.ndarray) -> np.ndarray:
    """Age (float, NaN when unknown) at the photo, vectorised over all rows.

    Birth date = ``date.fromordinal(floor(dob) - 366)`` (Matlab datenum to Python ordinal); age =
    ``photo_taken - birth year``, minus 1 when born in July or later (Rothe et al., IJCV 2018).
    Missing or out-of-range dob (ordinal below 1 or beyond year 9999) gives NaN.
    """
    dob = np.asarray(dob, dtype=np.float64).ravel()
    taken = np.asarray(photo_taken, dtype=np.float64).ravel()
    ordinal = np.floor(dob) - _DATENUM_TO_ORDINAL
    valid = np.isfinite(ordinal) & (ordinal >= 1) & (ordinal <= date.max.toordinal()) & np.isfinite(taken)
    days = np.where(valid, ordinal, _UNIX_EPOCH_ORDINAL).astype(np.int64) - _UNIX_EPOCH_ORDINAL
    born = days.astype("datetime64[D]")
    year = born.astype("datetime64[Y]").astype(np.int64) + 1970
    month = born.astype("datetime64[M]").astype(np.int64) % 12 + 1
    age = taken - year - (month >= 7)
    return np.where(valid, age, np.nan)


def _age_attributes(ages: np.ndarray, threshold: int) -> tuple[dict, dict]:
    """``age_group`` and ``age_decade`` codes and names; NaN ages get the extra value Unknown."""
    known = np.isfinite(ages)
    safe = np.where(known, ages, 0).astype(np.int64)
    group_names, decade_names = age_group_values(threshold), list(AGE_DECADE_VALUES)
    codes = {"age_group": np.where(known, age_group_codes(safe, threshold), len(group_names)),
             "age_decade": np.where(known, age_decade_codes(safe), len(decade_names))}
    if not known.all():
        group_names, decade_names = group_names + [UNKNOWN], decade_names + [UNKNOWN]
    return codes, {"age_group": group_names, "age_decade": decade_names}


def _gender_attribute(gender: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Codes (0 Female, 1 Male, 2 Unknown for NaN) and value names (Unknown only when present)."""
    known = np.isfinite(gender)
    codes = np.where(known, gender, len(GENDER_VALUES)).astype(np.int64)
    return codes, list(GENDER_VALUES) + ([] if known.all() else [UNKNOWN])


# -- the .mat file ------------------------------------------------------------------------------

def _find_mat(root: Path, source: str) -> Path:
    """``<root>/<source>.mat`` or ``<root>/<source>_crop/<source>.mat``; missing_files_error otherwise."""
    candidates = [f"{source}.mat", f"{source}_crop/{source}.mat"]
    for candidate in candidates:
        if (root / candidate).is_file():
            return root / candidate
    raise missing_files_error(
        "IMDB-WIKI", root, candidates,
        f"dataset.root is the extracted {source}_crop/ folder holding {source}.mat and the image folders "
        f"00/ ... 99/, or the folder above it (dataset.source={source} picks imdb or wiki); or set "
        f"dataset.labels to a cleaned CSV/XLSX sheet with columns full_path, gender, ethnicity.",
        OBTAIN)


def _cell_strings(cells: np.ndarray) -> list[str]:
    """A Matlab cell array of strings (as loaded by scipy.io.loadmat) as a list of str."""
    return [str(cell[0]) if np.size(cell) else "" for cell in np.ravel(cells)]


def read_mat_metadata(path: Path, source: str) -> pd.DataFrame:
    """The fields of ``meta[source][0, 0]`` needed here, one row per image (full_path as str)."""
    from scipy.io import loadmat

    try:
        meta = loadmat(str(path), variable_names=[source])[source][0, 0]
    except (KeyError, ValueError, TypeError, OSError, NotImplementedError) as err:
        raise FairrunError(f"Cannot read {path} as the IMDB-WIKI metadata (struct {source!r} with fields "
                           f"{', '.join(FIELDS)}): {err}. Check dataset.source and that the file is "
                           f"complete.") from None
    absent = [f for f in FIELDS if f not in (meta.dtype.names or ())]
    if absent:
        raise FairrunError(f"{path} lacks the IMDB-WIKI field(s) {', '.join(absent)} in struct {source!r}.")
    numeric = {f: np.ravel(meta[f]).astype(np.float64) for f in FIELDS if f != "full_path"}
    return pd.DataFrame({"full_path": _cell_strings(meta["full_path"]), **numeric})


def _filters(cfg, rows: pd.DataFrame, ages: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(reason, rows to drop) for every enabled filter, in the order they are applied."""
    filters = []
    if cfg.drop_no_face:
        filters.append(("no face", np.isneginf(rows["face_score"].to_numpy())))
    if cfg.drop_multiple_faces:
        filters.append(("multiple faces", ~np.isnan(rows["second_face_score"].to_numpy())))
    if cfg.min_face_score is not None:
        low = rows["face_score"].to_numpy() < cfg.min_face_score
        filters.append(("face score below min_face_score", low))
    if cfg.drop_unknown_gender:
        filters.append(("unknown gender", ~np.isfinite(rows["gender"].to_numpy())))
    if cfg.drop_bad_age:
        filters.append(("unknown or implausible age", ~np.isfinite(ages)))
    return filters


def _apply_filters(filters: list[tuple[str, np.ndarray]], n: int) -> tuple[np.ndarray, dict[str, int]]:
    """Rows kept by every filter and, per reason, how many rows that filter removed (in order)."""
    keep = np.ones(n, dtype=bool)
    skipped = {}
    for reason, drop in filters:
        removed = keep & drop
        if removed.any():
            skipped[reason] = int(removed.sum())
        keep &= ~drop
    return keep, skipped


def _image_root_for_paths(root: Path, source: str, paths: pd.Series) -> Path:
    """The folder the ``full_path`` values are relative to: ``root`` or ``root/<source>_crop``."""
    crop = root / f"{source}_crop"
    prefixed = len(paths) and paths.iloc[0].startswith(f"{source}_crop/")
    return crop if crop.is_dir() and not prefixed else root


def _read_from_mat(cfg, root: Path) -> ImageTable:
    """ImageTable from ``<source>.mat``: filters, ages, gender and age attributes."""
    mat_path = _find_mat(root, cfg.source)
    rows = read_mat_metadata(mat_path, cfg.source)
    ages = ages_at_photo(rows["dob"].to_numpy(), rows["photo_taken"].to_numpy())
    ages[(ages < 0) | (ages > MAX_AGE)] = np.nan
    keep, skipped = _apply_filters(_filters(cfg, rows, ages), len(rows))
    for reason, count in skipped.items():
        log.info("IMDB-WIKI (%s): dropped %d of %d rows: %s", cfg.source, count, len(rows), reason)
    rows, ages = rows[keep].reset_index(drop=True), ages[keep]
    gender, gender_names = _gender_attribute(rows["gender"].to_numpy())
    age_codes, age_names = _age_attributes(ages, cfg.age_threshold)
    return ImageTable(root=mat_path.parent, paths=rows["full_path"].tolist(),
                      attributes=pd.DataFrame({"gender": gender, **age_codes}).astype(np.int64),
                      attribute_values={"gender": gender_names, **age_names}, split=None, skipped=skipped,
                      source=str(mat_path))


# -- the cleaned sheet --------------------------------------------------------------------------

def _read_sheet_file(path: Path, source: str) -> pd.DataFrame:
    """The sheet as a DataFrame of strings (CSV via read_csv, XLSX via read_excel, which needs openpyxl)."""
    if not path.is_file():
        raise FairrunError(f"dataset.labels={path} does not exist. It should be a CSV or XLSX sheet with "
                           f"columns full_path (relative to the {source}_crop folder), gender and ethnicity.")
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=True)
    engine = "xlrd" if path.suffix.lower() == ".xls" else "openpyxl"
    if importlib.util.find_spec(engine) is None:
        raise FairrunError(f"Reading dataset.labels={path} needs the {engine} package, which is not "
                           f"installed: pip install {engine} (or save the sheet as CSV).")
    return pd.read_excel(path, dtype=str, engine=engine)


def _sheet_columns(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Columns full_path, gender, ethnicity matched case-insensitively; FairrunError when absent."""
    by_name = {str(c).strip().lower(): c for c in frame.columns}
    absent = [c for c in SHEET_COLUMNS if c not in by_name]
    if absent:
        raise FairrunError(f"dataset.labels={path} has no column {', '.join(absent)} (case-insensitive); its "
                           f"columns are {', '.join(map(str, frame.columns))}. Expected full_path, gender, "
                           f"ethnicity.")
    picked = frame[[by_name[c] for c in SHEET_COLUMNS]].copy()
    picked.columns = list(SHEET_COLUMNS)
    return picked.apply(lambda column: column.str.strip()).replace("", np.nan)


def _sheet_gender(values: pd.Series, path: Path) -> np.ndarray:
    """Gender as float 0 (female) / 1 (male) / NaN (blank) from 0/1 or female/male/f/m words."""
    text = values.str.lower().str.replace(r"\.0$", "", regex=True)
    codes = text.map(GENDER_WORDS)
    unknown = pd.unique(values[codes.isna() & values.notna()])
    if len(unknown):
        raise FairrunError(f"dataset.labels={path}: unexpected gender value(s) "
                           f"{', '.join(map(repr, unknown[:5]))}. Accepted: 0 (female), 1 (male), female, "
                           f"male, f, m (any case).")
    return codes.to_numpy(dtype=np.float64)


def _read_from_sheet(cfg, root: Path) -> ImageTable:
    """ImageTable from the cleaned sheet of ``dataset.labels``: gender and ethnicity attributes."""
    path = launch_path(cfg.labels)
    sheet = _sheet_columns(_read_sheet_file(path, cfg.source), path)
    gender = _sheet_gender(sheet["gender"], path)
    filters = [("missing full_path", sheet["full_path"].isna().to_numpy()),
               ("missing ethnicity", sheet["ethnicity"].isna().to_numpy())]
    if cfg.drop_unknown_gender:
        filters.append(("unknown gender", np.isnan(gender)))
    keep, skipped = _apply_filters(filters, len(sheet))
    sheet, gender = sheet[keep].reset_index(drop=True), gender[keep]
    gender_codes, gender_names = _gender_attribute(gender)
    ethnicities = sorted(sheet["ethnicity"].unique())
    ethnicity_codes = sheet["ethnicity"].map({name: code for code, name in enumerate(ethnicities)})
    attributes = pd.DataFrame({"gender": gender_codes, "ethnicity": ethnicity_codes}).astype(np.int64)
    return ImageTable(root=_image_root_for_paths(root, cfg.source, sheet["full_path"]),
                      paths=sheet["full_path"].str.replace("\\", "/", regex=False).tolist(),
                      attributes=attributes,
                      attribute_values={"gender": gender_names, "ethnicity": ethnicities}, split=None,
                      skipped=skipped, source=str(path))


def read_table(cfg) -> ImageTable:
    """Read IMDB-WIKI's metadata (no image is decoded): ``<source>.mat``, or the sheet of ``dataset.labels``.

    From the .mat file (Rothe, Timofte & Van Gool, IJCV 2018): the age at the photo from ``dob`` and
    ``photo_taken``, then the filters no face / multiple faces / min_face_score / unknown gender /
    unknown or implausible age (0..100), each counted in ``skipped``. Attributes ``gender``,
    ``age_group``, ``age_decade``. From the sheet: ``gender`` and ``ethnicity``. Images listed but
    missing on disk raise FairrunError, or are dropped and counted with ``dataset.skip_bad``.
    ``split`` is None (no official split).
    """
    root = resolve_root(cfg, f"IMDB-WIKI ({cfg.source})", OBTAIN)
    table = _read_from_sheet(cfg, root) if cfg.labels else _read_from_mat(cfg, root)
    return drop_missing_images(table, cfg.skip_bad, table.source)
