"""Image grids as PNG files: samples of a generator, pairs of images side by side.

Generic helpers for every generative model (the GAN's sample grids, a latent flip's before/after
pairs, a VAE's reconstructions). Images are either float tensors in [-1, 1] (what generators
output) or uint8 tensors (what :class:`~fairrun.data.base.LabeledSplit` holds), shaped (N, C, H, W)
with C = 1 or 3. Files are written atomically (a crash never leaves a truncated PNG).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from fairrun.rundir import _atomic


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] or uint8 images (N, C, H, W) -> float32 in [0, 1] on the CPU."""
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float().add(1.0).div_(2.0).clamp_(0.0, 1.0)


def grid_array(images: torch.Tensor, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """An (H, W, 3) uint8 array of the images tiled ``nrow`` per row (torchvision's make_grid)."""
    from torchvision.utils import make_grid

    if images.dim() != 4:
        raise ValueError(f"expected images shaped (N, C, H, W), got {tuple(images.shape)}")
    unit = to_unit(images)
    if len(unit) == 0:
        unit = torch.zeros(1, 3, 8, 8)
    grid = make_grid(unit, nrow=max(1, nrow), padding=padding, pad_value=1.0)  # grey images become RGB
    return (grid.permute(1, 2, 0).mul(255).round().clamp(0, 255).to(torch.uint8)).numpy()


def _save_png(array: np.ndarray, path: Path) -> Path:
    from PIL import Image

    path = Path(path)
    _atomic(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))
    return path


def _save_figure(columns: Sequence[np.ndarray], path: Path, title: Optional[str],
                 column_titles: Sequence[str] = ()) -> Path:
    """Draw image arrays side by side with matplotlib (titles wrapped), small images enlarged; save a PNG."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = max(a.shape[0] for a in columns)
    width = sum(a.shape[1] for a in columns)
    scale = min(4.0, max(1.0, 512 / max(width, 1)))  # small grids: draw the pixels larger (nearest)
    chars = max(12, int(width * scale / len(columns) / 7))
    lines = max([1] + [len(textwrap.wrap(t, chars)) for t in column_titles]) if column_titles else 0
    title_inches = 0.25 * (len(textwrap.wrap(title, 2 * chars)) if title else 0) + 0.18 * lines + 0.1
    figsize = (width * scale / 100 + 0.1 * len(columns), height * scale / 100 + title_inches)
    fig, axes = plt.subplots(1, len(columns), squeeze=False, dpi=100, figsize=figsize,
                             gridspec_kw={"width_ratios": [a.shape[1] for a in columns]})
    for k, (ax, array) in enumerate(zip(axes.flat, columns)):
        ax.imshow(array, interpolation="nearest")
        ax.axis("off")
        if k < len(column_titles):
            ax.set_title("\n".join(textwrap.wrap(column_titles[k], chars)), fontsize=8)
    if title:
        fig.suptitle("\n".join(textwrap.wrap(title, 2 * chars)), fontsize=9)
    fig.tight_layout(pad=0.2)
    _atomic(Path(path), lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight", pad_inches=0.05))
    plt.close(fig)
    return Path(path)


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8, title: Optional[str] = None) -> Path:
    """Tile images (N, C, H, W; float in [-1, 1] or uint8) ``nrow`` per row into a PNG; returns ``path``.

    Without a title the PNG holds the grid's pixels exactly (1 image pixel = 1 PNG pixel, 2 px
    white padding); with one it is drawn with matplotlib, small grids enlarged.
    """
    array = grid_array(images, nrow)
    return _save_figure([array], path, title) if title else _save_png(array, path)


def pair_grid(left: torch.Tensor, right: torch.Tensor, path: Path,
              titles: tuple[str, str] = ("G(z)", "G(z')"), title: Optional[str] = None) -> Path:
    """Side-by-side pairs: row ``i`` shows ``left[i]`` next to ``right[i]``; returns ``path``.

    For a latent flip: ``left = G(z)``, ``right = G(z')``. Both tensors have the same shape
    (N, C, H, W) (float in [-1, 1] or uint8).
    """
    if left.shape != right.shape:
        raise ValueError(f"pair_grid needs two image tensors of the same shape, got {tuple(left.shape)} "
                         f"and {tuple(right.shape)}")
    columns = [grid_array(images, nrow=1) for images in (left, right)]
    return _save_figure(columns, path, title, column_titles=titles)
