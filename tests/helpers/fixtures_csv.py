"""A tiny image folder described by a CSV (``dataset=csv``), for tests.

``<root>/labels.csv`` has columns ``path`` (``images/img_000.jpg``, relative to the CSV's folder),
``gender`` (Female/Male), ``smiling`` (0/1), ``young`` (True/False) and, with ``with_split``,
``split`` (train/val/test: 60 % / 20 % / 20 %). Images are 48 x 40 JPEGs, slightly brighter when
smiling.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SPLIT_CYCLE = ["train", "train", "train", "val", "test"]


def make_csv_dataset(root, n: int = 60, seed: int = 0, with_split: bool = True) -> Path:
    """Write ``n`` JPEGs under ``<root>/images/`` and ``<root>/labels.csv``; return the CSV's path.

    Row i: gender ``["Female", "Male"][i % 2]``, smiling ``(i // 2) % 2``, young ``i % 3 != 0`` and
    split ``SPLIT_CYCLE[i % 5]``, so every combination of gender and smiling occurs in every split.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row = {"path": f"images/img_{i:03d}.jpg", "gender": ["Female", "Male"][i % 2],
               "smiling": (i // 2) % 2, "young": i % 3 != 0}
        if with_split:
            row["split"] = SPLIT_CYCLE[i % 5]
        rows.append(row)
        pixels = 100 + 40 * row["smiling"] + rng.normal(0, 20, size=(40, 48, 3))
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(root / row["path"], quality=85)
    path = root / "labels.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
