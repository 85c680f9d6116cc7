"""A tiny UTKFace look-alike on disk: JPEGs named exactly like UTKFace's, for tests.

Real layout (Zhang, Song & Qi, CVPR 2017): ``[age]_[gender]_[race]_[yyyymmddHHMMSSFFF].jpg`` with
gender 0 male / 1 female and race 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others; the aligned crops
end ``.jpg.chip.jpg`` and are 200 x 200.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# Three real UTKFace files lack the race field.
RACELESS_NAMES = ["39_1_20170116174525125.jpg.chip.jpg", "61_1_20170109150557335.jpg.chip.jpg",
                  "61_1_20170109142408075.jpg.chip.jpg"]
SIZE = 200


def utkface_name(age: int, gender: int, race: int, index: int, chip: bool = True) -> str:
    """A UTKFace file name; ``index`` makes the date-time field unique."""
    stamp = f"20170116{index:09d}"
    return f"{age}_{gender}_{race}_{stamp}.jpg" + (".chip.jpg" if chip else "")


def face_image(rng: np.random.Generator, gender: int, race: int, size: int = SIZE) -> Image.Image:
    """An RGB image whose brightness depends weakly on race and whose mark depends on gender."""
    base = 60 + 35 * race + rng.normal(0, 25, size=(size, size, 3))
    if gender == 1:  # UTKFace female: a brighter band across the top
        base[: size // 4] += 30
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")


def make_utkface(root, n: int = 80, seed: int = 0, chip: bool = True, malformed: bool = True) -> Path:
    """Write ``n`` UTKFace-named 200 x 200 JPEGs into ``root`` (created) and return ``root``.

    Row i has race ``i % 5`` and UTKFace gender ``(i // 5) % 2`` (0 male, 1 female), so every race
    and gender occurs once n >= 10; ages are drawn in 1..90 (seeded). With ``malformed`` the three
    real race-less file names are added as well (they are not counted in ``n``).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ages = rng.integers(1, 91, size=n)
    for i in range(n):
        race, gender = i % 5, (i // 5) % 2
        name = utkface_name(int(ages[i]), gender, race, seed * 100_000 + i, chip)
        face_image(rng, gender, race).save(root / name, quality=85)
    if malformed:
        for name in RACELESS_NAMES:
            face_image(rng, 1, 0).save(root / name, quality=85)
    return root
