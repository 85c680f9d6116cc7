"""A tiny FairFace on disk: the two label CSVs in the exact official format and 224x224 JPEGs.

``make_fairface(root, n_train, n_val, padding, seed, layout)`` writes ``fairface_label_train.csv``
and ``fairface_label_val.csv`` (``file,age,gender,race,service_test``, files ``train/1.jpg ...`` and
``val/1.jpg ...``) and the images of one or both paddings. In each CSV every race x gender
combination occurs (given at least 14 rows), ages are random bins and service_test is random with
both values present. The pictures depend weakly on gender (background tone) and race (face tone).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fairrun.data.fairface import AGE_BINS, RACES

SIZE = 224
# layout -> padding -> image folder under root ("" = root itself).
#   root: the 0.25 images directly in root (train/, val/), the 1.25 ones in margin125/
#   short: margin025/ and margin125/
#   zip_names: the folder names of the official zips
LAYOUTS = {
    "root": {0.25: "", 1.25: "margin125"},
    "short": {0.25: "margin025", 1.25: "margin125"},
    "zip_names": {0.25: "fairface-img-margin025-trainval", 1.25: "fairface-img-margin125-trainval"},
}


def make_fairface(root: Path, n_train: int = 70, n_val: int = 30, padding: float | str = 0.25,
                  seed: int = 0, layout: str = "root") -> Path:
    """Write a FairFace of ``n_train`` + ``n_val`` images under ``root``; return ``root``.

    ``padding`` is 0.25, 1.25 or "both" (the same faces, zoomed out for 1.25); ``layout`` picks the
    image folder names (see LAYOUTS).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    if padding not in (0.25, 1.25, "both"):
        raise ValueError(f"padding must be 0.25, 1.25 or 'both', not {padding!r}")
    if min(n_train, n_val) < 14:
        raise ValueError("n_train and n_val must be at least 14 (every race x gender in each CSV)")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = random_rows(rng, "train", n_train) + random_rows(rng, "val", n_val)
    write_labels(root / "fairface_label_train.csv", rows[:n_train])
    write_labels(root / "fairface_label_val.csv", rows[n_train:])
    for pad in (0.25, 1.25) if padding == "both" else (padding,):
        write_images(root / LAYOUTS[layout][pad], rows, pad, np.random.default_rng([seed, int(pad * 100)]))
    return root


def random_rows(rng: np.random.Generator, folder: str, n: int) -> list[dict]:
    """``n`` label rows: all race x gender combinations, random ages and service_test flags."""
    combo = rng.permutation(np.arange(n) % (2 * len(RACES)))
    service = rng.random(n) < 0.5
    service[:2] = [True, False]
    ages = rng.integers(0, len(AGE_BINS), size=n)
    return [dict(file=f"{folder}/{i + 1}.jpg", age=AGE_BINS[ages[i]],
                 gender="Male" if combo[i] >= len(RACES) else "Female",
                 race=RACES[combo[i] % len(RACES)], service_test=bool(service[i]))
            for i in range(n)]


def write_labels(path: Path, rows: list[dict]) -> None:
    """A label CSV exactly like the official ones (no quoting, True/False flags)."""
    lines = ["file,age,gender,race,service_test"]
    lines += [f"{r['file']},{r['age']},{r['gender']},{r['race']},{r['service_test']}" for r in rows]
    path.write_text("\n".join(lines) + "\n")


def face_picture(rng: np.random.Generator, row: dict, padding: float) -> np.ndarray:
    """A 224x224x3 uint8 picture: background tone for gender, face tone for race; smaller face
    for the wider padding 1.25."""
    background = 60 if row["gender"] == "Male" else 140
    picture = rng.integers(background, background + 50, size=(SIZE, SIZE, 3), dtype=np.uint8)
    half = SIZE // 4 if padding == 1.25 else SIZE // 3
    tone = 60 + 25 * RACES.index(row["race"])
    picture[SIZE // 2 - half:SIZE // 2 + half, SIZE // 2 - half:SIZE // 2 + half] = tone
    return picture


def write_images(image_dir: Path, rows: list[dict], padding: float, rng: np.random.Generator) -> None:
    """One JPEG (quality 90) per row, at ``image_dir / row['file']``."""
    for row in rows:
        path = image_dir / row["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(face_picture(rng, row, padding)).save(path, quality=90)
