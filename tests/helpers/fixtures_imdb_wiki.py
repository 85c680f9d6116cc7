"""A tiny IMDB-WIKI look-alike on disk: ``<source>.mat`` in the real struct layout plus JPEGs.

Real layout (Rothe, Timofte & Van Gool, IJCV 2018): ``imdb_crop/imdb.mat`` holds the struct
``meta['imdb'][0, 0]`` whose fields are 1 x N arrays: ``dob`` (float Matlab datenum),
``photo_taken`` (year), ``full_path`` (cell of strings like
``01/nm0000001_rm124825600_1899-5-10_1968.jpg``), ``gender`` (0 female, 1 male, NaN), ``name``
(cell), ``face_location`` (cell of 1 x 4 arrays), ``face_score`` (-inf: no face) and
``second_face_score`` (NaN: none). Images live in ``00/`` ... ``99/``, of varied sizes, some gray.

Rows of :func:`make_imdb_wiki` follow a fixed pattern (by row index i) so tests know the counts:

* i % 10 == 3: no face (face_score -inf)
* i % 10 == 5: a second face (second_face_score finite)
* i % 10 == 7: unknown gender (NaN)
* i % 20 == 9: implausible age (photo taken 5 years before birth)
* otherwise gender = i % 2 (0 female, 1 male), face_score in 1..5.
* row 0 is Fred Astaire's first row: born 1899-05-10, photo 1968 (age 69); row 1 is born
  1950-07-01, photo 1980 (born in July: age 29); row 2 born 1990-12-31 (dob with a fractional
  part), photo 2010 (age 19).
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.io import savemat

NO_FACE, SECOND_FACE, UNKNOWN_GENDER = 3, 5, 7
BAD_AGE_EVERY, BAD_AGE_AT = 20, 9
FIXED_ROWS = [(date(1899, 5, 10), 1968), (date(1950, 7, 1), 1980), (date(1990, 12, 31), 2010)]
ETHNICITIES = ["Asian", "Black", "Indian", "White"]


def datenum(born: date, fraction: float = 0.0) -> float:
    """The Matlab datenum of ``born`` (Python ordinal + 366), plus a fraction of a day."""
    return float(born.toordinal() + 366) + fraction


def _cell(values: list) -> np.ndarray:
    """A 1 x N object array, which savemat writes as a Matlab cell array."""
    cell = np.empty((1, len(values)), dtype=object)
    for i, value in enumerate(values):
        cell[0, i] = value
    return cell


def _image(rng: np.random.Generator, gender: float) -> Image.Image:
    """A JPEG-able image of random non-square size, grayscale for some rows; brighter for males."""
    width, height = int(rng.integers(40, 120)), int(rng.integers(40, 120))
    level = 90 + (50 if gender == 1 else 0)
    pixels = np.clip(level + rng.normal(0, 30, size=(height, width, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    return image.convert("L") if rng.random() < 0.3 else image


def _birth_and_photo(rng: np.random.Generator, i: int) -> tuple[date, int]:
    """Birth date and photo year of row ``i`` (see the module docstring for the fixed rows)."""
    if i < len(FIXED_ROWS):
        return FIXED_ROWS[i]
    born = date(int(rng.integers(1930, 2000)), int(rng.integers(1, 13)), int(rng.integers(1, 29)))
    if i % BAD_AGE_EVERY == BAD_AGE_AT:
        return born, born.year - 5
    return born, born.year + int(rng.integers(5, 70))


def _file_name(source: str, i: int, born: date, taken: int) -> str:
    """``NN/nm..._rm..._Y-M-D_YEAR.jpg`` (imdb) or ``NN/..._Y-M-D_YEAR.jpg`` (wiki)."""
    stem = f"nm{i:07d}_rm{100000 + i}" if source == "imdb" else f"{1000 + i}"
    return f"{i % 10:02d}/{stem}_{born.year}-{born.month}-{born.day}_{taken}.jpg"


def _gender(i: int) -> float:
    """Gender of row ``i``: NaN (unknown) for i % 10 == 7, else i % 2 (0 female, 1 male)."""
    return np.nan if i % 10 == UNKNOWN_GENDER else float(i % 2)


def make_imdb_wiki(root, n: int = 80, source: str = "imdb", seed: int = 0) -> Path:
    """Write ``<root>/<source>.mat`` and ``n`` JPEGs in ``<root>/NN/``; return ``root``.

    ``root`` plays the extracted ``imdb_crop/`` (``wiki_crop/``) folder. Rows follow the pattern of
    the module docstring.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        born, taken = _birth_and_photo(rng, i)
        gender = _gender(i)
        rows.append(dict(
            dob=datenum(born, 0.5 if i == 2 else 0.0), photo_taken=taken,
            full_path=_file_name(source, i, born, taken), gender=gender, name=f"Person {i}",
            face_location=np.array([[10.0, 12.0, 60.0, 70.0]]) + i,
            face_score=-np.inf if i % 10 == NO_FACE else float(rng.uniform(1, 5)),
            second_face_score=float(rng.uniform(0.5, 3)) if i % 10 == SECOND_FACE else np.nan,
        ))
        path = root / rows[-1]["full_path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        _image(rng, gender).save(path, quality=85)
    _save_mat(root / f"{source}.mat", source, rows)
    return root


def _save_mat(path: Path, source: str, rows: list[dict]) -> None:
    """savemat ``{source: struct}`` with 1 x N fields, as in the real file."""
    def row_array(key, dtype):
        return np.array([[r[key] for r in rows]], dtype=dtype)

    struct = {
        "dob": row_array("dob", np.float64),
        "photo_taken": row_array("photo_taken", np.uint16),
        "full_path": _cell([r["full_path"] for r in rows]),
        "gender": row_array("gender", np.float64),
        "name": _cell([r["name"] for r in rows]),
        "face_location": _cell([r["face_location"] for r in rows]),
        "face_score": row_array("face_score", np.float64),
        "second_face_score": row_array("second_face_score", np.float64),
    }
    savemat(str(path), {source: struct})


def make_imdb_clean_sheet(root, n: int = 40, fmt: str = "csv", seed: int = 0) -> Path:
    """Write ``n`` JPEGs in ``<root>/NN/`` and a hand-cleaned-style sheet listing them; return its path.

    The sheet (``imdb_clean.csv`` or ``imdb_clean.xlsx``) has columns ``Full_Path``, ``Gender``,
    ``Ethnicity`` (capitalised, to exercise case-insensitive matching). Row i has ethnicity
    ``ETHNICITIES[i % 4]`` (with stray spaces) and gender male for odd i: written as 0/1 in XLSX and
    as words (Female, m, MALE, f) in CSV.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    paths, genders, words = [], [], []
    for i in range(n):
        born, taken = date(1960 + i % 30, 1 + i % 12, 1 + i % 28), 2000 + i % 10
        paths.append(_file_name("imdb", 9_000_000 + i, born, taken))
        genders.append(i % 2)
        words.append(["Female", "m", "female", "MALE", "f", "Male"][i % 6])
        (root / paths[-1]).parent.mkdir(parents=True, exist_ok=True)
        _image(rng, float(i % 2)).save(root / paths[-1], quality=85)
    ethnicity = [f" {ETHNICITIES[i % 4]} " if i % 3 == 0 else ETHNICITIES[i % 4] for i in range(n)]
    frame = pd.DataFrame({"Full_Path": paths, "Gender": genders if fmt == "xlsx" else words,
                          "Ethnicity": ethnicity})
    if fmt == "xlsx":
        path = root / "imdb_clean.xlsx"
        frame.to_excel(path, index=False)
    elif fmt == "csv":
        path = root / "imdb_clean.csv"
        frame.to_csv(path, index=False)
    else:
        raise ValueError(f"fmt must be 'csv' or 'xlsx', not {fmt!r}")
    return path
