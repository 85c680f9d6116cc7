"""The built-in ``synthetic`` dataset: procedurally drawn cartoon faces, generated in memory.

Every image is a face (a soft-edged ellipse) on a random plain background, with two eyes and a
mouth, and optionally a pair of glasses. Three attributes are recorded per image:

* ``smiling`` (the default target): the mouth curves up (``smiling``) or down (``not_smiling``).
  The strength of the curve is random and can be slight, so with pixel noise the task is not
  trivially solved.
* ``group`` (the default protected attribute, ``num_groups`` values named ``A``, ``B``, ...):
  groups differ in how they look *and* in how the target shows up. Group ``A`` has a light, round
  face with a dark, wide mouth; the last group a dark, oval face with a pale, narrow mouth drawn
  lower on the face (groups in between are interpolated; the first half have dark mouths). A
  classifier trained mostly on group ``A`` learns to read the bend of a *dark* arc; with the
  contrast inverted those features hardly transfer, so a group that is rare in training is served
  clearly worse (near chance when it is ~2% of the training set), although with balanced
  training every group is about equally easy.
* ``glasses``: dark-framed tinted glasses, present in half of the images independently of
  everything else, so other target/protected pairs and intersectional groups can be studied.

Nuisance variation: face position, size and colour jitter, mouth width and contrast jitter,
background colour, Gaussian pixel noise. Generation is vectorised over the whole batch
(coordinate grids and soft masks) and deterministic: each split is drawn from its own seed
derived from ``seed``, so changing one split's size leaves the other splits' images unchanged.

The training split has the configured ``group_proportions`` (default: 0.95 for group ``A`` and the
remaining 0.05 shared equally by the other groups, which gives ERM a clear gap) and, optionally, a spurious correlation
``label_group_corr`` between ``smiling`` and ``group == A``. Validation and test splits are
balanced over groups and have no such correlation, so every group is measured equally. Group
sizes and per-group smiling counts are exact (rounded), not sampled. Half of every split is
smiling; the training correlation only shifts the per-group smiling rates, which bounds it by
``max_label_group_corr`` (0.229 for the default 0.95 share of group ``A``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from fairrun.data.base import SplitData

MAX_GROUPS = 8
_CHUNK_PIXELS = 2**18  # pixels rendered at once: keeps temporaries small and cache-friendly


@dataclass
class SyntheticConfig:
    """Settings of the synthetic dataset (field names are also YAML keys under ``dataset.``)."""

    n_train: int = 4000  # training images
    n_val: int = 1000  # validation images
    n_test: int = 2000  # test images
    image_size: int = 32  # square images, 16..128 pixels
    num_groups: int = 2  # 1..MAX_GROUPS
    group_proportions: list[float] | None = None  # train shares; None = default_group_proportions()
    label_group_corr: float = 0.0  # train corr(smiling, group == A); val/test are independent
    noise: float = 0.1  # std of Gaussian pixel noise, intensities in [0, 1]
    seed: int = 0  # generation seed, separate from the training seed




def default_group_proportions(num_groups: int) -> list[float]:
    """Training group shares used when ``group_proportions`` is None: 0.95 majority, 0.05 for the rest."""
    if num_groups == 1:
        return [1.0]
    return [0.95] + [0.05 / (num_groups - 1)] * (num_groups - 1)


def max_label_group_corr(share_group0: float) -> float:
    """Largest |corr(smiling, group == 0)| achievable with 50% smiling and this share of group 0."""
    if share_group0 >= 1.0:
        return 0.0
    return math.sqrt(min(share_group0, 1 - share_group0) / max(share_group0, 1 - share_group0))


def attribute_names(cfg) -> list[str]:
    """The attributes :func:`make_synthetic` records per image (nothing is generated to know them)."""
    return ["smiling", "group", "glasses"]


def validate_synthetic(cfg: SyntheticConfig) -> None:
    """Raise ValueError naming the offending ``dataset.`` key if ``cfg`` is not usable."""
    for key in ("n_train", "n_val", "n_test"):
        value = getattr(cfg, key)
        if not _is_int(value) or value < 1:
            raise ValueError(f"dataset.{key}={value!r} is invalid; it must be an integer >= 1.")
    if not _is_int(cfg.image_size) or not 16 <= cfg.image_size <= 128:
        raise ValueError(
            f"dataset.image_size={cfg.image_size!r} is invalid; it must be an integer from 16 to 128."
        )
    if not _is_int(cfg.num_groups) or not 1 <= cfg.num_groups <= MAX_GROUPS:
        raise ValueError(
            f"dataset.num_groups={cfg.num_groups!r} is invalid; it must be an integer from 1 to {MAX_GROUPS}."
        )
    props = cfg.group_proportions
    if props is not None:
        if (
            isinstance(props, str)
            or not isinstance(props, Sequence)
            or len(props) != cfg.num_groups
            or not all(isinstance(p, (int, float)) and p > 0 for p in props)
            or abs(sum(props) - 1) > 1e-6
        ):
            raise ValueError(
                f"dataset.group_proportions={props!r} is invalid; it must have num_groups="
                f"{cfg.num_groups} positive entries that sum to 1 (or be null for the default)."
            )
    if not isinstance(cfg.label_group_corr, (int, float)) or not -1 <= cfg.label_group_corr <= 1:
        raise ValueError(
            f"dataset.label_group_corr={cfg.label_group_corr!r} is invalid; it must be a number in [-1, 1]."
        )
    share0 = _train_proportions(cfg)[0]
    limit = max_label_group_corr(share0)
    if abs(cfg.label_group_corr) > limit + 1e-9:
        raise ValueError(
            f"dataset.label_group_corr={cfg.label_group_corr!r} is not achievable with a training share of "
            f"{share0:.3g} for group A and 50% smiling; it must be in [-{limit:.3f}, {limit:.3f}]."
        )
    if not isinstance(cfg.noise, (int, float)) or not cfg.noise >= 0:
        raise ValueError(f"dataset.noise={cfg.noise!r} is invalid; it must be a number >= 0.")
    if not _is_int(cfg.seed) or cfg.seed < 0:
        raise ValueError(f"dataset.seed={cfg.seed!r} is invalid; it must be an integer >= 0.")


def make_synthetic(cfg: SyntheticConfig) -> dict[str, SplitData]:
    """Generate the ``train``, ``val`` and ``test`` splits described by ``cfg``."""
    validate_synthetic(cfg)
    balanced = [1 / cfg.num_groups] * cfg.num_groups
    specs = {
        "train": (cfg.n_train, _train_proportions(cfg), cfg.label_group_corr),
        "val": (cfg.n_val, balanced, 0.0),
        "test": (cfg.n_test, balanced, 0.0),
    }
    return {
        name: _make_split(cfg, n, props, corr, split_id)
        for split_id, (name, (n, props, corr)) in enumerate(specs.items())
    }


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _train_proportions(cfg: SyntheticConfig) -> list[float]:
    if cfg.group_proportions is None:
        return default_group_proportions(cfg.num_groups)
    return [float(p) for p in cfg.group_proportions]


def _exact_counts(n: int, proportions: list[float]) -> list[int]:
    """Split n into integer counts matching the proportions (largest remainder)."""
    raw = [n * p for p in proportions]
    counts = [math.floor(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


def _make_split(
    cfg: SyntheticConfig, n: int, proportions: list[float], corr: float, split_id: int
) -> SplitData:
    seed = int(np.random.SeedSequence([cfg.seed, split_id]).generate_state(1)[0])
    gen = torch.Generator().manual_seed(seed)

    # Exact group counts and, within each group, exact smiling counts; then shuffle.
    p0 = proportions[0]
    smile_rate = [0.5] * cfg.num_groups
    if corr != 0:
        smile_rate = [0.5 + 0.5 * corr * math.sqrt((1 - p0) / p0)]
        smile_rate += [0.5 - 0.5 * corr * math.sqrt(p0 / (1 - p0))] * (cfg.num_groups - 1)
    group, smiling = [], []
    for g, n_g in enumerate(_exact_counts(n, proportions)):
        n_smile = round(n_g * smile_rate[g])
        group += [g] * n_g
        smiling += [1] * n_smile + [0] * (n_g - n_smile)
    order = torch.randperm(n, generator=gen)
    group = torch.tensor(group)[order]
    smiling = torch.tensor(smiling)[order]
    glasses = (torch.rand(n, generator=gen) < 0.5).long()

    images = _render(group, smiling, glasses, cfg.num_groups, cfg.image_size, cfg.noise, gen)
    attributes = pd.DataFrame(
        {"smiling": smiling.numpy(), "group": group.numpy(), "glasses": glasses.numpy()}
    ).astype("int64")
    attribute_values = {
        "smiling": ["not_smiling", "smiling"],
        "group": [chr(ord("A") + g) for g in range(cfg.num_groups)],
        "glasses": ["no_glasses", "glasses"],
    }
    return SplitData(images=images, attributes=attributes, attribute_values=attribute_values)


def _group_styles(num_groups: int) -> dict[str, torch.Tensor]:
    """Per-group appearance, interpolated from group A (t=0) to the last group (t=1)."""
    t = torch.linspace(0, 1, num_groups) if num_groups > 1 else torch.zeros(1)
    light_face, dark_face = torch.tensor([0.98, 0.86, 0.68]), torch.tensor([0.36, 0.23, 0.16])
    dark_mouth, pale_mouth = torch.tensor([0.45, 0.05, 0.08]), torch.tensor([1.0, 0.8, 0.82])
    return {
        "face_rgb": light_face + (dark_face - light_face) * t[:, None],
        "mouth_rgb": torch.where((t < 0.5)[:, None], dark_mouth, pale_mouth),
        "aspect": 1.0 + 0.2 * t,  # face height / width
        "mouth_y": 0.40 + 0.15 * t,  # mouth centre below face centre, in face radii
        "mouth_w": 0.48 - 0.12 * t,  # mouth half-width, in face radii
    }


def _render(
    group: torch.Tensor,
    smiling: torch.Tensor,
    glasses: torch.Tensor,
    num_groups: int,
    size: int,
    noise: float,
    gen: torch.Generator,
) -> torch.Tensor:
    n = len(group)

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=gen)

    style = {k: v[group] for k, v in _group_styles(num_groups).items()}
    radius = uniform(0.56, 0.70)
    face_rgb = (style["face_rgb"] + uniform(-0.05, 0.05, 3)).clamp(0, 1)
    params = {
        "cx": uniform(-0.12, 0.12),
        "cy": uniform(-0.10, 0.10),
        "rx": radius,
        "ry": radius * style["aspect"],
        "background": uniform(0.1, 0.95, 3),
        "face_rgb": face_rgb,
        # Mouth colour: the group's mouth colour blended towards the face colour (random contrast).
        "mouth_rgb": face_rgb + uniform(0.7, 1.0, 1) * (style["mouth_rgb"] - face_rgb),
        "mouth_y": style["mouth_y"] * radius,
        "mouth_w": style["mouth_w"] * radius * uniform(0.9, 1.1),
        # Signed mouth bend: positive = corners up (smiling); slight bends make some images ambiguous.
        "bend": (2 * smiling - 1) * uniform(0.0, 0.25) * radius,
        "glasses": glasses.float(),
    }
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    chunk_size = max(1, _CHUNK_PIXELS // size**2)
    for start in range(0, n, chunk_size):
        chunk = {k: v[start : start + chunk_size] for k, v in params.items()}
        img = _draw_faces(chunk, size)
        if noise > 0:
            img = img + noise * torch.randn(img.shape, generator=gen)
        images[start : start + chunk_size] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return images


def _draw_faces(p: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """Draw faces from per-image parameters (each of leading size B) into float images (B, 3, S, S)."""
    pixel = 2.0 / size
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) * pixel - 1
    y, x = coords[None, :, None], coords[None, None, :]  # y grows downwards

    def col(v: torch.Tensor) -> torch.Tensor:
        """(B,) -> (B, 1, 1), to broadcast per-image values over pixels."""
        return v[:, None, None]

    def soft(distance: torch.Tensor) -> torch.Tensor:
        """Anti-aliased coverage of the region where ``distance`` (in image units) is negative."""
        return (0.5 - distance / pixel).clamp(0, 1)

    def paint(img: torch.Tensor, alpha: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        return img + alpha[:, None] * (rgb[:, :, None, None] - img)

    cx, cy, rx, ry = col(p["cx"]), col(p["cy"]), col(p["rx"]), col(p["ry"])
    batch = len(p["cx"])
    img = p["background"][:, :, None, None].expand(batch, 3, size, size)

    face = torch.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    img = paint(img, soft((face - 1) * torch.minimum(rx, ry)), p["face_rgb"])

    # Both eyes (and both glasses rims) at once: distance to the nearer eye centre via |x - cx|.
    eye_y = cy - 0.25 * ry
    eye = torch.sqrt(((x - cx).abs() - 0.38 * rx) ** 2 + (y - eye_y) ** 2)
    white, black = torch.ones(batch, 3), torch.full((batch, 3), 0.05)
    img = paint(img, soft(eye - 0.14 * rx), white)
    img = paint(img, soft(eye - 0.07 * rx), black)
    glasses = col(p["glasses"])
    lens = torch.tensor([0.55, 0.8, 1.0]).expand(batch, 3)
    img = paint(img, 0.35 * glasses * soft(eye - 0.26 * rx), lens)
    frame = torch.maximum(0.07 * rx, torch.tensor(1.2 * pixel))
    rims = (eye - 0.26 * rx).abs() - frame / 2
    bridge = torch.maximum((x - cx).abs() - 0.12 * rx, (y - eye_y).abs() - frame / 2)
    img = paint(img, glasses * soft(torch.minimum(rims, bridge)), black)

    # Mouth: a thick parabolic arc; its centre sits `bend` below (smiling) or above its corners.
    u = (x - cx) / col(p["mouth_w"])
    arc_y = cy + col(p["mouth_y"]) + col(p["bend"]) * (0.5 - u**2)
    thickness = torch.maximum(0.1 * rx, torch.tensor(1.5 * pixel))
    mouth = torch.maximum((y - arc_y).abs() - thickness / 2, (u.abs() - 1) * col(p["mouth_w"]))
    return paint(img, soft(mouth), p["mouth_rgb"])
