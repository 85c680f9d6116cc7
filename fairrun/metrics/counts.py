"""The count metrics: every metric that is a function of the per-group confusion counts, one implementation.

``c[b, g, y, y_hat]`` counts the rows of group g with label y and prediction y_hat in the b-th of B
sets of counts. The point estimates (:func:`fairrun.metrics.group_metrics` and the single-metric
functions) pass the observed counts with B = 1; the bootstrap (:mod:`fairrun.metrics.bootstrap`)
passes B resampled replicates. Both run the formulas below, one per count metric of the registry
(:mod:`fairrun.metrics.registry`), each registered with ``@formula(key)`` and returning an array with
the leading replicate axis: shape (B,) for an overall metric, (B, G) for a per-group one, (B, G * K) for a
per-cell one (group by group, class by class).

Exactness: a replicate's value is the float the same formula gives for that replicate alone, and the
B = 1 values are bit for bit those of numpy's ``ptp``, ``var``, ``mean`` and ``min`` over the defined
values. Sums over groups or classes leave undefined entries out rather than adding zeros
(:func:`sum_defined`), since numpy's pairwise summation groups the terms by their number.

Undefined values are NaN: a rate with a zero denominator (also a group's precision without a row predicted
1); a gap, ratio, variance or BiasAmp with fewer than two groups where it is defined; a ratio 0/0 (the rate
is 0 in every group; eo_ratio leaves such a ratio out of its minimum); a worst-group (worst-cell) accuracy
with none; a cell without rows; the binary-only metrics of a multi-class target. The formulas emit no warnings; the point-estimate functions
report undefined values.
"""
from __future__ import annotations

from functools import cached_property
from typing import Callable

import numpy as np

from . import registry

#: registry key -> formula(Counts) -> array with a leading replicate axis
FORMULAS: dict[str, Callable[["Counts"], np.ndarray]] = {}


def formula(key: str):
    """Register the function below as the formula of the count metric ``key`` (a registry key)."""
    def register(fn):
        if key in FORMULAS:
            raise ValueError(f"two formulas for {key}")
        FORMULAS[key] = fn
        return fn
    return register


def confusion_counts(y_true, y_pred, groups, n_groups: int, num_classes: int = 2) -> np.ndarray:
    """Counts c[g, y, y_hat] (shape G x K x K, K = ``num_classes``) of integer ids, from one bincount."""
    k = num_classes
    cells = (groups.astype(np.intp) * k + y_true) * k + y_pred
    return np.bincount(cells, minlength=n_groups * k * k).reshape(n_groups, k, k)


def divide(num, den):
    """num / den elementwise (as float64), NaN where den == 0, without a numpy warning."""
    return np.divide(num, den, out=np.full(np.broadcast(num, den).shape, np.nan), where=den > 0)


class Counts:
    """B sets of per-group confusion counts c[b, g, y, y_hat] and the per-group rates derived from them.

    ``binary``: the target is binary (K = 2), so TPR, FPR and selection rates exist.
    """

    def __init__(self, c, binary: bool):
        c = np.asarray(c)
        if c.ndim != 4 or c.shape[2] != c.shape[3]:
            raise ValueError(f"counts must have shape (B, G, K, K), got {c.shape}")
        if binary and c.shape[2] != 2:
            raise ValueError(f"binary counts need K = 2 classes, got {c.shape[2]}")
        self.c = c.astype(np.int64, copy=False)
        self.binary = binary

    @cached_property
    def n(self) -> np.ndarray:
        """Rows per group, (B, G)."""
        return self.c.sum(axis=(2, 3))

    @cached_property
    def acc(self) -> np.ndarray:
        """Per-group accuracy P(y_hat = y | g), (B, G); NaN for an empty group."""
        return divide(np.diagonal(self.c, axis1=2, axis2=3).sum(axis=2).astype(np.float64), self.n)

    @cached_property
    def cell_n(self) -> np.ndarray:
        """Rows per (group, true class) cell, n[b, g, c] = sum_k c[b, g, c, k]: (B, G, K)."""
        return self.c.sum(axis=3)

    @cached_property
    def cell_acc(self) -> np.ndarray:
        """Per-cell accuracy c[b, g, c, c] / n[b, g, c] (the recall of class c in group g): (B, G, K);
        NaN for a cell without rows."""
        return divide(np.diagonal(self.c, axis1=2, axis2=3).astype(np.float64), self.cell_n)

    @cached_property
    def pos(self) -> np.ndarray:
        """Positive labels (y = 1) per group, (B, G)."""
        return self.c[:, :, 1].sum(axis=2)

    @cached_property
    def neg(self) -> np.ndarray:
        """Negative labels (y = 0) per group, (B, G)."""
        return self.c[:, :, 0].sum(axis=2)

    @cached_property
    def tpr(self) -> np.ndarray:
        """P(y_hat=1 | y=1, g), (B, G); NaN for a group without positives."""
        return divide(self.c[:, :, 1, 1].astype(np.float64), self.pos)

    @cached_property
    def fpr(self) -> np.ndarray:
        """P(y_hat=1 | y=0, g), (B, G); NaN for a group without negatives."""
        return divide(self.c[:, :, 0, 1].astype(np.float64), self.neg)

    @cached_property
    def sel(self) -> np.ndarray:
        """Selection rate P(y_hat=1 | g), (B, G); NaN for an empty group."""
        return divide(self.c[:, :, :, 1].sum(axis=2).astype(np.float64), self.n)

    @cached_property
    def tp(self) -> np.ndarray:
        """True positives per group, c[b, g, 1, 1]: (B, G)."""
        return self.c[:, :, 1, 1]

    @cached_property
    def fp(self) -> np.ndarray:
        """False positives per group, c[b, g, 0, 1]: (B, G)."""
        return self.c[:, :, 0, 1]

    @cached_property
    def tn(self) -> np.ndarray:
        """True negatives per group, c[b, g, 0, 0]: (B, G)."""
        return self.c[:, :, 0, 0]

    @cached_property
    def fn(self) -> np.ndarray:
        """False negatives per group, c[b, g, 1, 0]: (B, G)."""
        return self.c[:, :, 1, 0]

    @cached_property
    def ppv(self) -> np.ndarray:
        """Precision TP / (TP + FP) per group, (B, G); NaN for a group without a row predicted 1."""
        return divide(self.tp.astype(np.float64), self.tp + self.fp)

    @cached_property
    def f1(self) -> np.ndarray:
        """F1 = 2 TP / (2 TP + FP + FN) per group, (B, G); NaN where the denominator is 0."""
        return divide(2.0 * self.tp, 2 * self.tp + self.fp + self.fn)

    @cached_property
    def confusion(self) -> np.ndarray:
        """The confusion matrix over all groups, cm[b, y, y_hat]: (B, K, K)."""
        return self.c.sum(axis=1)

    def rates(self) -> dict[str, np.ndarray]:
        """``n``, ``acc`` and, for a binary target, ``tpr``, ``fpr``, ``sel``, ``pos``, ``neg``: (B, G) each."""
        names = ("n", "acc", "tpr", "fpr", "sel", "pos", "neg") if self.binary else ("n", "acc")
        return {name: getattr(self, name) for name in names}


def count_metrics(counts: Counts | np.ndarray, binary: bool | None = None, keys=None) -> dict[str, np.ndarray]:
    """The count metrics of every set of counts, by registry key, in registry order.

    ``counts``: a :class:`Counts`, or an array c[b, g, y, y_hat] with ``binary`` given. ``keys``: the
    registry keys wanted (default: every count metric). Overall metrics are arrays of length B, per-group
    ones (``acc[<group>]``, ...) arrays (B, G), per-cell ones (``acc[<group>,<class>]``) arrays (B, G * K).
    A binary-only metric of a multi-class target is NaN.
    """
    if not isinstance(counts, Counts):
        counts = Counts(counts, bool(binary))
    wanted = None if keys is None else set(keys)
    out = {}
    for m in registry.metrics(kind="count"):
        if wanted is not None and m.key not in wanted:
            continue
        if m.binary_only and not counts.binary:
            shape = counts.n.shape if m.per_group else counts.n.shape[:1]
            shape = (shape[0], counts.cell_n[0].size) if m.per_cell else shape
            out[m.key] = np.full(shape, np.nan)
        else:
            out[m.key] = FORMULAS[m.key](counts)
    if wanted is not None and wanted - set(out):
        raise KeyError(f"not registered count metrics: {sorted(wanted - set(out))}")
    return out


# ---------------------------------------------------------------- reductions over groups or classes

def sum_defined(values: np.ndarray, defined: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row sums of the entries of ``values`` (B, M) where ``defined``, number of those entries).

    Each row's sum is numpy's sum of the 1-D array of that row's defined values: the undefined entries
    are removed, not replaced by 0, because numpy's pairwise summation groups terms by their count,
    and every row is summed from C-contiguous memory, where numpy sums a row of a 2-D array as it sums
    a 1-D array (a column-major copy, as fancy indexing can return, is summed in another order).
    """
    count = defined.sum(axis=1)
    if values.shape[0] == 0 or defined.all():
        return _row_sums(values), count
    if (defined == defined[0]).all():  # the same entries in every row, e.g. the non-empty groups
        return _row_sums(values[:, defined[0]]), count
    order = np.argsort(~defined, axis=1, kind="stable")  # each row's defined entries first, in order
    packed = np.take_along_axis(values, order, axis=1)
    total = np.zeros(values.shape[0])
    for m in np.unique(count):
        rows = count == m
        total[rows] = _row_sums(packed[rows, :m])
    return total, count


def _row_sums(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values).sum(axis=1)


def mean_defined(values: np.ndarray, defined: np.ndarray) -> np.ndarray:
    """Row means over the defined entries (as ``np.mean`` of them); NaN for a row without one."""
    total, count = sum_defined(values, defined)
    return divide(total, count)


def gap(values: np.ndarray) -> np.ndarray:
    """max - min over each row's defined (non-NaN) values; NaN where fewer than two (as ``np.ptp``)."""
    defined = ~np.isnan(values)
    hi = np.where(defined, values, -np.inf).max(axis=1, initial=-np.inf)
    lo = np.where(defined, values, np.inf).min(axis=1, initial=np.inf)
    with np.errstate(invalid="ignore"):
        return np.where(defined.sum(axis=1) >= 2, hi - lo, np.nan)


def variance(values: np.ndarray) -> np.ndarray:
    """Population variance (ddof = 0) of each row's defined values, as ``np.var``; NaN where fewer than two."""
    defined = ~np.isnan(values)
    mean = mean_defined(values, defined)
    squares, count = sum_defined((values - mean[:, None]) ** 2, defined)
    return np.where(count >= 2, divide(squares, count), np.nan)


def ratio(values: np.ndarray) -> np.ndarray:
    """min / max over each row's defined (non-NaN) values; NaN where fewer than two are defined, and NaN
    where the max is 0 (0/0: every value is 0), as fairlearn's ``MetricFrame.ratio()`` (group_min /
    group_max, a pandas division that gives NaN for 0/0). The values are rates, so never negative."""
    defined = ~np.isnan(values)
    lo = np.where(defined, values, np.inf).min(axis=1, initial=np.inf)
    hi = np.where(defined, values, -np.inf).max(axis=1, initial=-np.inf)
    return np.where(defined.sum(axis=1) >= 2, divide(lo, hi), np.nan)


def worst(values: np.ndarray) -> np.ndarray:
    """min over each row's defined values; NaN where none is defined."""
    defined = ~np.isnan(values)
    low = np.where(defined, values, np.inf).min(axis=1, initial=np.inf)
    return np.where(defined.any(axis=1), low, np.nan)


# ---------------------------------------------------------------- bias amplification A -> T

def indicator(r: np.ndarray) -> np.ndarray:
    """y_at = 1[P(A=a, T=t) > P(A=a) P(T=t)] from counts r[..., a, t], compared exactly in integers:
    n n_at > n_a n_t."""
    n, n_a, n_t = r.sum(axis=(-2, -1)), r.sum(axis=-1), r.sum(axis=-2)
    return n[..., None, None] * r > n_a[..., :, None] * n_t[..., None, :]


def amplification(c: np.ndarray, r: np.ndarray | None = None) -> np.ndarray:
    """BiasAmp A->T per replicate from c[b, a, t, t_hat] and reference counts r[b, a, t] (default: the
    true labels of c). Groups without members are left out; NaN where fewer than two have members.
    Definition: :func:`fairrun.metrics.bias_amplification`."""
    c = np.asarray(c, dtype=np.int64)
    true = c.sum(axis=3)
    reference = true if r is None else np.asarray(r)
    n_a = c.sum(axis=(2, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        # Δ_at = P(T_hat=t | A=a) - P(T=t | A=a); rows of empty groups are NaN and left out
        delta = (c.sum(axis=2) - true) / n_a[:, :, None]
    values = np.where(indicator(reference), delta, -delta)
    keep = np.broadcast_to((n_a > 0)[:, :, None], delta.shape)
    mean = mean_defined(values.reshape(len(c), -1), keep.reshape(len(c), -1))
    return np.where(np.count_nonzero(n_a, axis=1) >= 2, mean, np.nan)


# ---------------------------------------------------------------- the formulas, one per registry key

@formula("n")
def _n(k: Counts) -> np.ndarray:
    return k.c.sum(axis=(1, 2, 3))


@formula("accuracy")
def _accuracy(k: Counts) -> np.ndarray:
    cm = k.confusion
    return divide(np.diagonal(cm, axis1=1, axis2=2).sum(axis=1).astype(np.float64), cm.sum(axis=(1, 2)))


@formula("balanced_accuracy")
def _balanced_accuracy(k: Counts) -> np.ndarray:
    rows = k.confusion.sum(axis=2)
    recall = divide(np.diagonal(k.confusion, axis1=1, axis2=2).astype(np.float64), rows)
    return mean_defined(recall, rows > 0)


@formula("acc_gap")
def _acc_gap(k: Counts) -> np.ndarray:
    return gap(k.acc)


@formula("acc_var")
def _acc_var(k: Counts) -> np.ndarray:
    return variance(k.acc)


@formula("worst_group_acc")
def _worst_group_acc(k: Counts) -> np.ndarray:
    return worst(k.acc)


@formula("dp_diff")
def _dp_diff(k: Counts) -> np.ndarray:
    return gap(k.sel)


@formula("eo_diff")
def _eo_diff(k: Counts) -> np.ndarray:
    return np.maximum(gap(k.tpr), gap(k.fpr))  # NaN if either gap is


@formula("eopp_diff")
def _eopp_diff(k: Counts) -> np.ndarray:
    return gap(k.tpr)


@formula("ba")
def _ba(k: Counts) -> np.ndarray:
    return amplification(k.c)


# the per-group rates: acc[<group>], n[<group>], tpr[<group>], fpr[<group>], sel[<group>]
for _rate in ("acc", "n", "tpr", "fpr", "sel"):
    formula(f"{_rate}[{registry.GROUP}]")(lambda k, rate=_rate: getattr(k, rate))


# the per-cell results of issue 18: acc[<group>,<class>], n[<group>,<class>] (B, G * K) and their minimum

@formula("worst_cell_acc")
def _worst_cell_acc(k: Counts) -> np.ndarray:
    return worst(k.cell_acc.reshape(len(k.c), -1))


@formula(f"acc[{registry.GROUP},{registry.CLASS}]")
def _cell_acc(k: Counts) -> np.ndarray:
    return k.cell_acc.reshape(len(k.c), -1)


@formula(f"n[{registry.GROUP},{registry.CLASS}]")
def _cell_n(k: Counts) -> np.ndarray:
    return k.cell_n.reshape(len(k.c), -1)


# issue 18, point 1 (continued): tp, fp, tn, fn, ppv, f1 per group (B, G) and the parity ratios (B,)
for _rate in ("tp", "fp", "tn", "fn", "ppv", "f1"):
    formula(f"{_rate}[{registry.GROUP}]")(lambda k, rate=_rate: getattr(k, rate))


@formula("dp_ratio")
def _dp_ratio(k: Counts) -> np.ndarray:
    return ratio(k.sel)


@formula("eo_ratio")
def _eo_ratio(k: Counts) -> np.ndarray:
    # a 0/0 ratio (parity at rate 0) is left out of the minimum (np.fmin), as fairlearn's worst case leaves
    # out a 0/0 FPR ratio; a rate defined in fewer than two groups makes it NaN, like eo_diff
    few = (np.count_nonzero(~np.isnan(k.tpr), axis=1) < 2) | (np.count_nonzero(~np.isnan(k.fpr), axis=1) < 2)
    return np.where(few, np.nan, np.fmin(ratio(k.tpr), ratio(k.fpr)))
