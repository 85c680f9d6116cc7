"""A tiny CelebA on disk, in the exact file formats of the official release or of the Kaggle copy.

``make_celeba(root, n, layout, seed)`` writes ``n`` real JPEG images, the attribute and partition
files and (official layout, by default) ``identity_CelebA.txt``; ``make_torchvision_celeba(root, ...)``
writes the same under ``root/celeba/``, where torchvision's ``CelebA(root)`` keeps it (with the bbox and
landmark files of the official release too). Attributes are random except that, within every split, the
four Smiling x Male combinations are as balanced as possible (so both values of each occur everywhere).
The pictures depend weakly on them so a classifier can learn something: a bright mouth-like bar for
Smiling and a darker background for Male, on top of noise.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fairrun.data.celeba import CELEBA_ATTRIBUTES

SPLIT_SHARES = (0.6, 0.2, 0.2)  # contiguous train / val / test ranges, like the official partition
SMILING = CELEBA_ATTRIBUTES.index("Smiling")
MALE = CELEBA_ATTRIBUTES.index("Male")


def make_celeba(root: Path, n: int = 60, layout: str = "official", seed: int = 0,
                image_size: tuple[int, int] = (178, 218), identities: bool | None = None,
                per_person: int = 3) -> Path:
    """Write a CelebA of ``n`` images under ``root`` ("official" or "kaggle" layout); return ``root``.

    The same ``seed`` gives the same images, attributes and partition in both layouts.
    ``image_size`` is (width, height), 178x218 as in img_align_celeba. ``identities`` (default: official
    layout only, as the Kaggle copy has no identity file): also write ``identity_CelebA.txt``
    (:func:`identities_of`, about ``per_person`` images per person), drawn from its own random stream so
    that the images, attributes and partition do not depend on it.
    """
    if layout not in ("official", "kaggle"):
        raise ValueError(f"layout must be 'official' or 'kaggle', not {layout!r}")
    if n < 20:
        raise ValueError("n must be at least 20 (every split holds all four Smiling x Male combinations)")
    root = Path(root)
    rng = np.random.default_rng(seed)
    partition = contiguous_partition(n)
    values = random_attributes(rng, partition)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    image_dir = root / ("img_align_celeba" if layout == "official" else "img_align_celeba/img_align_celeba")
    write_images(image_dir, names, values, rng, image_size)
    if layout == "official":
        write_official_annotations(root, names, values, partition)
    else:
        write_kaggle_annotations(root, names, values, partition)
    if layout == "official" if identities is None else identities:
        write_identities(root, names, identities_of(partition, per_person, seed))
    return root


def identities_of(partition: np.ndarray, per_person: int = 3, seed: int = 0) -> np.ndarray:
    """An identity number (1, 2, ...) per image: every split gets its own people (as in CelebA, whose
    partition never shares a person between splits), ``ceil(rows / per_person)`` of them, every one with at
    least one image and the rows assigned at random (seeded by ``(seed, 0x1D)``)."""
    rng = np.random.default_rng([seed, 0x1D])
    out = np.zeros(len(partition), dtype=np.int64)
    first = 1
    for code in (0, 1, 2):
        rows = np.flatnonzero(partition == code)
        people = max(1, -(-len(rows) // per_person))
        out[rows] = first + rng.permutation(np.arange(len(rows)) % people)
        first += people
    return out


def write_identities(root: Path, names: list[str], identities: np.ndarray) -> None:
    """``identity_CelebA.txt`` as published: rows ``000001.jpg 2880`` (image name, space, identity number),
    one per image, no header."""
    (root / "identity_CelebA.txt").write_text("".join(f"{n} {i}\n" for n, i in zip(names, identities)))


def contiguous_partition(n: int) -> np.ndarray:
    """Partition codes 0 (train), 1 (val), 2 (test) in contiguous ranges of SPLIT_SHARES."""
    n_train = round(n * SPLIT_SHARES[0])
    n_val = round(n * SPLIT_SHARES[1])
    return np.repeat([0, 1, 2], [n_train, n_val, n - n_train - n_val])


def random_attributes(rng: np.random.Generator, partition: np.ndarray) -> np.ndarray:
    """(n, 40) matrix of -1/1; Smiling x Male balanced inside each split."""
    values = rng.choice([-1, 1], size=(len(partition), len(CELEBA_ATTRIBUTES)))
    for code in (0, 1, 2):
        rows = np.flatnonzero(partition == code)
        combo = rng.permutation(np.arange(len(rows)) % 4)
        values[rows, SMILING] = np.where(combo // 2 == 1, 1, -1)
        values[rows, MALE] = np.where(combo % 2 == 1, 1, -1)
    return values


def face_picture(rng: np.random.Generator, smiling: bool, male: bool,
                 size: tuple[int, int]) -> np.ndarray:
    """A (height, width, 3) uint8 picture: background tone for Male, a bright mouth bar for Smiling."""
    width, height = size
    background = 50 if male else 130
    picture = rng.integers(background, background + 60, size=(height, width, 3), dtype=np.uint8)
    face_top, face_left = height // 4, width // 4
    picture[face_top:height - face_top, face_left:width - face_left] += 40
    if smiling:
        mouth_row = int(height * 0.65)
        picture[mouth_row:mouth_row + max(2, height // 20), width // 3:width - width // 3] = 245
    return picture


def write_images(image_dir: Path, names: list[str], values: np.ndarray, rng: np.random.Generator,
                 size: tuple[int, int]) -> None:
    """One JPEG (quality 90) per row of ``values``."""
    image_dir.mkdir(parents=True, exist_ok=True)
    for name, row in zip(names, values):
        picture = face_picture(rng, row[SMILING] > 0, row[MALE] > 0, size)
        Image.fromarray(picture).save(image_dir / name, quality=90)


def write_official_annotations(root: Path, names: list[str], values: np.ndarray,
                               partition: np.ndarray) -> None:
    """``list_attr_celeba.txt`` and ``list_eval_partition.txt`` formatted like the originals.

    Attribute file: the count, the names (space-separated, with the original's trailing space),
    then the file name followed by each value right-aligned in a field of width 3
    (``000001.jpg -1  1  1 -1 ...``).
    """
    lines = [str(len(names)), " ".join(CELEBA_ATTRIBUTES) + " "]
    lines += [name + "".join(f"{v:3d}" for v in row) for name, row in zip(names, values)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    rows = [f"{name} {code}" for name, code in zip(names, partition)]
    (root / "list_eval_partition.txt").write_text("\n".join(rows) + "\n")


def write_kaggle_annotations(root: Path, names: list[str], values: np.ndarray,
                             partition: np.ndarray) -> None:
    """Kaggle's ``list_attr_celeba.csv`` and ``list_eval_partition.csv``."""
    lines = [",".join(["image_id", *CELEBA_ATTRIBUTES])]
    lines += [",".join([name, *map(str, row)]) for name, row in zip(names, values)]
    (root / "list_attr_celeba.csv").write_text("\n".join(lines) + "\n")
    rows = ["image_id,partition"] + [f"{name},{code}" for name, code in zip(names, partition)]
    (root / "list_eval_partition.csv").write_text("\n".join(rows) + "\n")


def make_torchvision_celeba(root: Path, n: int = 60, layout: str = "official", seed: int = 0,
                            image_size: tuple[int, int] = (178, 218)) -> Path:
    """``make_celeba`` in ``root/celeba/`` (torchvision's ``CelebA(root)`` layout); return ``root``.

    The official layout also gets torchvision's other three annotation files (identity_CelebA.txt, written
    by :func:`make_celeba`, list_bbox_celeba.txt, list_landmarks_align_celeba.txt) in their published formats.
    """
    folder = make_celeba(Path(root) / "celeba", n=n, layout=layout, seed=seed, image_size=image_size)
    if layout == "official":
        write_other_official_annotations(folder, [f"{i:06d}.jpg" for i in range(1, n + 1)],
                                         np.random.default_rng(seed + 1))
    return Path(root)


def write_other_official_annotations(root: Path, names: list[str], rng: np.random.Generator) -> None:
    """list_bbox_celeba.txt and list_landmarks_align_celeba.txt (identity_CelebA.txt: :func:`make_celeba`).

    Both start with the count and the column names, like list_attr_celeba.txt. fairrun reads neither;
    they make the folder look like the real release.
    """
    rng.integers(1, 10178, size=len(names))  # the identities' draws once made here: the rest stays unchanged
    boxes = [str(len(names)), "image_id x_1 y_1 width height"]
    boxes += [f"{n:<10}{x:>6}{y:>6}{w:>6}{h:>6}" for n, (x, y, w, h) in
              zip(names, rng.integers(50, 500, size=(len(names), 4)))]
    (root / "list_bbox_celeba.txt").write_text("\n".join(boxes) + "\n")
    columns = ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x "
               "rightmouth_y")
    marks = [str(len(names)), columns]
    marks += [f"{n:<10}" + "".join(f"{v:>6}" for v in row) for n, row in
              zip(names, rng.integers(60, 160, size=(len(names), 10)))]
    (root / "list_landmarks_align_celeba.txt").write_text("\n".join(marks) + "\n")
