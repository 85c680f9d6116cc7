"""Resampling: balance the training cells by a sampler (oversampling) or a smaller subset (undersampling)."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch

from fairrun.core.validation import require, require_choice
from fairrun.methods.base import Method
from fairrun.methods.registry import register

log = logging.getLogger("fairrun")

MODES = ("over", "under")
BY = ("group", "group_label")


@dataclass
class ResampleConfig:
    """``method=resample``: ``mode`` over | under, cells ``by`` group | group_label, subset ``seed``."""

    name: str = "resample"
    mode: str = "over"  # over | under
    by: str = "group"  # group | group_label: the cells to balance
    seed: int = 0  # undersampling only: seeds the choice of the kept rows

    def validate(self) -> None:
        require_choice("method.mode", self.mode, MODES)
        require_choice("method.by", self.by, BY)
        require(isinstance(self.seed, int) and self.seed >= 0, "method.seed", self.seed, "an integer >= 0")


def cell_ids(train, by: str) -> tuple[torch.Tensor, int]:
    """Each row's cell id (group, or group x label) on the CPU, and the number of cells."""
    g, y = train.g.cpu(), train.y.cpu()
    if by == "group":
        return g, train.num_groups
    return g * train.num_classes + y, train.num_groups * train.num_classes


def cell_names(train, by: str) -> list[str]:
    if by == "group":
        return list(train.group_names)
    return [f"{g}/{c}" for g in train.group_names for c in train.class_names]


def balanced_probs(cells: torch.Tensor, num_cells: int) -> torch.Tensor:
    """Sampling probability per row such that every non-empty cell gets the same total probability.

    Row i of cell k gets ``1 / (K n_k)``, ``K`` = number of non-empty cells (float64, sums to 1).
    """
    n = torch.bincount(cells, minlength=num_cells).double()
    present = int((n > 0).sum())
    return 1.0 / (present * n[cells])


def undersample_index(cells: torch.Tensor, num_cells: int, seed: int) -> torch.Tensor:
    """Sorted row indices keeping ``m`` rows of every non-empty cell (``m`` = smallest non-empty cell),
    drawn without replacement by a generator seeded with ``seed``."""
    n = torch.bincount(cells, minlength=num_cells)
    m = int(n[n > 0].min())
    generator = torch.Generator().manual_seed(seed)
    keep = []
    for k in range(num_cells):  # one draw per cell (a handful of cells), not per row
        rows = torch.nonzero(cells == k).flatten()
        if len(rows):
            keep.append(rows[torch.randperm(len(rows), generator=generator)[:m]])
    return torch.sort(torch.cat(keep)).values


@register
class Resample(Method):
    """Minimise the risk under a training distribution in which every cell is equally likely:
    ``(1/K) sum_k E_{(x,y) ~ cell k} l(f(x), y)`` over the K non-empty cells (groups, or group x
    label cells with ``method.by=group_label``).

    * ``mode=over`` (oversampling, the default): no data is copied; the split gets a sampler,
      ``sample_probs[i] = 1 / (K n_k(i))``, and each epoch draws ``len(train)`` rows *with
      replacement* from it (see :func:`fairrun.data.batches.epoch_order`), so epoch length and the
      number of optimisation steps stay those of ERM while rare cells are seen ~K-fold more often.
    * ``mode=under`` (undersampling): the split is replaced by a subset keeping ``m`` rows of every
      non-empty cell, ``m`` the size of the smallest one, drawn without replacement by a generator
      seeded with ``method.seed``. Epochs are shorter (``K m`` rows), so fewer steps are taken; it
      discards data and is mostly useful when the smallest cell is not tiny.

    Empty cells are skipped. Both are the classical random over/under-sampling baselines for class
    imbalance (e.g. N. Japkowicz and S. Stephen, "The class imbalance problem: A systematic study",
    Intelligent Data Analysis 6(5), 2002), applied to protected groups as in the group-balancing
    baselines of B. Y. Idrissi, M. Arjovsky, M. Pezeshki and D. Lopez-Paz, "Simple data balancing
    achieves competitive worst-group-accuracy", CLeaR 2022 (SUBG = ``by=group_label, mode=under``).
    """

    name = "resample"
    Config = ResampleConfig

    def prepare(self, train):
        cells, num_cells = cell_ids(train, self.cfg.by)
        counts = torch.bincount(cells, minlength=num_cells)
        names = cell_names(train, self.cfg.by)
        empty = [name for name, n in zip(names, counts.tolist()) if n == 0]
        if empty:
            log.info("resample: empty training cells skipped: %s", ", ".join(empty))
        if self.cfg.mode == "over":
            probs = balanced_probs(cells, num_cells)
            log.info("resample (over, by=%s): each of %d cells drawn with probability 1/%d; rows drawn per "
                     "epoch: %d (with replacement); cell sizes: %s", self.cfg.by, int((counts > 0).sum()),
                     int((counts > 0).sum()), len(train),
                     ", ".join(f"{k}={n}" for k, n in zip(names, counts.tolist())))
            return dataclasses.replace(train, sample_probs=probs)
        index = undersample_index(cells, num_cells, self.cfg.seed)
        m = int(counts[counts > 0].min())
        log.info("resample (under, by=%s): keeping %d rows of each non-empty cell, %d of %d rows in all",
                 self.cfg.by, m, len(index), len(train))
        return train.subset(index.to(train.y.device))
