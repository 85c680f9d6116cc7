"""Percentile bootstrap intervals of the fairness metrics, resampling within groups, vectorised over B.

A bootstrap replicate draws, independently in every group g, n_g rows with replacement from the
group's n_g rows (a stratified bootstrap: group sizes are kept, so a rare group never vanishes
from a replicate). The interval of a metric is the (1 - c)/2 and (1 + c)/2 percentiles of its B
replicate values, the median their 50th percentile (Efron & Tibshirani, "An Introduction to the
Bootstrap", 1993, ch. 13; the bootstrap medians are the protocol of Ramaswamy, Kim &
Russakovsky, CVPR 2021).

Which metrics get intervals is the registry's ``bootstraps`` (:mod:`fairrun.metrics.registry`).

**Count metrics** (accuracy, balanced accuracy, per-group accuracy/TPR/FPR/selection rate/precision/F1,
per-cell accuracy, and every gap or ratio built from them: acc_gap, acc_var, worst_group_acc, dp_diff,
eo_diff, eopp_diff, ba, worst_cell_acc, dp_ratio, eo_ratio)
are functions of the per-group confusion counts c[g, y, y_hat] only, computed for all replicates
at once by the formulas of :mod:`fairrun.metrics.counts`, the same that give the point estimates
(there on the observed counts, B = 1). Resampling n_g rows of group
g with replacement gives confusion counts distributed exactly Multinomial(n_g, c[g] / n_g), so a
replicate is drawn as one multinomial per group instead of n_g row indices: the cost is
O(B * G * K^2), independent of the number of predictions, with the same distribution as the
row-level resampling loop (``scripts/bench_bootstrap.py`` checks both and times them).

**Score metrics** (auc, ap, kl, ti_gap; the calibration values ece, ece[<group>], ece_gap, brier,
brier[<group>]) depend on the scores row by row, so they use row weights w (how often each row was drawn):
the rows are sorted by score once and every replicate is a weighted cumulative sum over that order (the
calibration sums of every (replicate, group, confidence bin) one sparse product ``w @ M``), B replicates at a
time in chunks of bounded memory: O(B * N) work. ``score_metrics="auto"`` computes them when
N * B <= ``SCORE_BUDGET``.

Replicates in which a metric is undefined (e.g. a group drew no positive label, so its TPR is
undefined) are left out of that metric's percentiles; the metric's interval is NaN when every
replicate is undefined.
"""
from __future__ import annotations

import zlib

import numpy as np

from . import registry
from ._common import as_ids, as_scores
from .calibration import ECE_BINS, calibration_from_sums, row_terms
from .counts import confusion_counts, count_metrics
from .counts import divide as _div
from .scores import KL_BINS, KL_EPS, KL_SIGMA, histogram_bins

SCORE_BUDGET = 50_000_000  # rows x replicates for the weighted score-metric bootstrap under "auto"
CHUNK_ELEMENTS = 4_000_000  # rows x replicates held in memory at once by the score-metric bootstrap
# The metrics that get intervals, from the registry (``bootstraps=True``), in registry order.
COUNT_METRICS = tuple(m.name for m in registry.metrics(kind="count", per_group=False, bootstraps=True))
SCORE_METRICS = tuple(m.name for m in registry.metrics(kind="score", per_group=False, bootstraps=True))
# ece[<group>], brier[<group>]
SCORE_PER_GROUP = tuple(m.name for m in registry.metrics(kind="score", per_group=True, bootstraps=True))
PER_GROUP = tuple(m.name for m in registry.metrics(kind="count", per_group=True, bootstraps=True))  # acc[<group>]
# acc[<group>,<class>]
PER_CELL = tuple(m.name for m in registry.metrics(kind="count", per_cell=True, bootstraps=True))


def rng_for(seed: int, name: str) -> np.random.Generator:
    """The generator of one run's split: seeded by (seed, CRC-32 of the split name), so reproducible."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


# ---------------------------------------------------------------- count metrics

def resample_counts(counts: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """B replicates of c[g, y, y_hat] under within-group resampling: shape (B, G, K, K).

    Group g's replicate counts are Multinomial(n_g, c[g] / n_g): the counts that drawing n_g of the
    group's rows with replacement produces. Empty groups stay empty.
    """
    g, k = counts.shape[0], counts.shape[1]
    flat = counts.reshape(g, k * k).astype(np.float64)
    n = flat.sum(axis=1)
    p = np.divide(flat, n[:, None], out=np.zeros_like(flat), where=n[:, None] > 0)
    p[n == 0, 0] = 1.0  # any valid distribution: 0 draws
    draws = rng.multinomial(n.astype(np.int64), p, size=(n_boot, g))
    return draws.reshape(n_boot, g, k, k)


# ---------------------------------------------------------------- score metrics (row weights)

def _group_weights(g_sorted: np.ndarray, n_groups: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Row weights (B, N) of within-group resampling: w[b, i] = times row i was drawn in replicate b."""
    n = g_sorted.size
    order = np.argsort(g_sorted, kind="stable")
    sizes = np.bincount(g_sorted, minlength=n_groups)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    # every position draws a row of its own group: start of the group + uniform offset in [0, n_g)
    pos_group = g_sorted[order]
    draws = starts[pos_group] + (rng.random((n_boot, n)) * sizes[pos_group]).astype(np.intp)
    flat = (np.arange(n_boot)[:, None] * n + order[draws]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def _ranking(w: np.ndarray, y: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted (AUC, AP) per replicate from rows sorted by decreasing score; ``last`` ends tie runs."""
    tps = np.cumsum(w * y, axis=1)[:, last]
    fps = np.cumsum(w * (1 - y), axis=1)[:, last]
    p, q = tps[:, -1], fps[:, -1]
    t0 = np.concatenate([np.zeros((w.shape[0], 1)), tps], axis=1)
    f0 = np.concatenate([np.zeros((w.shape[0], 1)), fps], axis=1)
    area = (np.diff(f0, axis=1) * (t0[:, 1:] + t0[:, :-1])).sum(axis=1)
    auc = _div(area, 2 * p * q)
    precision = _div(tps, tps + fps)
    ap = _div((np.diff(t0, axis=1) * np.nan_to_num(precision)).sum(axis=1), p)
    return auc, ap


def _kl(w: np.ndarray, cells, n_groups: int) -> np.ndarray:
    """The smoothed-histogram KL of :func:`fairrun.metrics.kl` per replicate (row weights w); ``cells`` is the
    sparse (rows x group*class*bin) indicator matrix."""
    from scipy.ndimage import gaussian_filter1d

    counts = np.asarray((cells.T @ w.T).T).reshape(w.shape[0], n_groups, 2, KL_BINS)
    sizes = counts.sum(axis=3)
    eligible = (sizes > 0).all(axis=2)  # (B, G)
    smooth = gaussian_filter1d(counts, KL_SIGMA, axis=-1, mode="reflect", truncate=4.0)
    total = smooth.sum(axis=-1, keepdims=True)
    p = np.divide(smooth, total, out=np.full_like(smooth, 1.0 / KL_BINS), where=total > 0) + KL_EPS
    log_p = np.log(p)
    self_term = np.einsum("bgcx,bgcx->bgc", p, log_p)
    directed = self_term[:, :, None, :] - np.einsum("bicx,bjcx->bijc", p, log_p)
    pair = (directed + directed.transpose(0, 2, 1, 3)).sum(axis=3) / 4
    both = eligible[:, :, None] & eligible[:, None, :]
    upper = np.triu(np.ones((n_groups, n_groups), dtype=bool), 1)
    pair = np.where(both & upper, pair, -np.inf).max(axis=(1, 2))
    pair[eligible.sum(axis=1) < 2] = np.nan
    return pair


def _ti_gap(w: np.ndarray, s_sorted: np.ndarray, g_sorted: np.ndarray, n_groups: int,
            last: np.ndarray) -> np.ndarray:
    """max over group pairs of W1 between the weighted score distributions, per replicate."""
    du = np.diff(s_sorted[last][::-1])  # gaps between the distinct scores in increasing order
    sizes = np.bincount(g_sorted, minlength=n_groups)
    out_cdf = []
    for g in range(n_groups):
        if sizes[g] == 0:
            out_cdf.append(None)
            continue
        rows = np.flatnonzero(g_sorted == g)  # the group's rows, in decreasing score order
        cum = np.cumsum(w[:, rows], axis=1)
        # the group's weight scored >= each distinct score: its rows up to the run's last row
        k = np.searchsorted(rows, last, side="right")
        above = np.where(k > 0, cum[:, np.maximum(k - 1, 0)], 0.0) / sizes[g]
        # F(u_m) = 1 - share scored >= u_{m+1}, for the increasing distinct scores u_0 .. u_{M-2}
        out_cdf.append(1.0 - above[:, ::-1][:, 1:])
    present = [g for g in range(n_groups) if out_cdf[g] is not None]
    best = np.full(w.shape[0], np.nan)
    if len(present) < 2:
        return best
    best[:] = 0.0
    for i_pos, i in enumerate(present):
        for j in present[i_pos + 1:]:
            best = np.maximum(best, np.abs(out_cdf[i] - out_cdf[j]) @ du)
    return best


def calibration_matrix(y_sorted: np.ndarray, s_sorted: np.ndarray, g_sorted: np.ndarray, n_groups: int):
    """The sparse (rows x (G * ECE_BINS + G)) matrix M with, in row i, 1[y_hat_i = y_i] - conf_i in the
    column of (group, confidence bin) and (p_i - y_i)^2 in column G * ECE_BINS + group: w @ M gives every
    replicate's sums d and q of :mod:`fairrun.metrics.calibration` in one sparse product."""
    from scipy import sparse

    bins, gap_terms, squares = row_terms(y_sorted, s_sorted)
    rows = np.arange(s_sorted.size)
    columns = np.r_[g_sorted * ECE_BINS + bins, n_groups * ECE_BINS + g_sorted]
    return sparse.csr_matrix((np.r_[gap_terms, squares], (np.r_[rows, rows], columns)),
                             shape=(s_sorted.size, n_groups * (ECE_BINS + 1)))


def _calibration(w: np.ndarray, matrix, sizes: np.ndarray) -> dict[str, np.ndarray]:
    """ece, ece_gap, brier (B,) and ece[<group>], brier[<group>] (B, G) per replicate (row weights w); within
    -group resampling keeps the group sizes ``sizes``, the weight of each group."""
    n_groups = sizes.size
    sums = np.asarray(w @ matrix)  # dense (B, N) times sparse (N, G * (ECE_BINS + 1))
    d = sums[:, :n_groups * ECE_BINS].reshape(w.shape[0], n_groups, ECE_BINS)
    n = np.broadcast_to(sizes.astype(np.float64), (w.shape[0], n_groups))
    return calibration_from_sums(d, sums[:, n_groups * ECE_BINS:], n)


def score_replicates(y: np.ndarray, s: np.ndarray, g: np.ndarray, n_groups: int, n_boot: int,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """auc, ap, kl, ti_gap, ece, ece_gap, brier (B,) and ece[<group>], brier[<group>] (B, G, by registry key)
    for B within-group bootstrap replicates (row weights, chunked). The calibration values and kl are NaN
    for scores outside [0, 1]."""
    from scipy import sparse  # scipy is imported only when score intervals are computed

    order = np.argsort(s, kind="stable")[::-1]
    s_sorted, y_sorted, g_sorted = s[order], y[order].astype(np.float64), g[order].astype(np.intp)
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    cells = sparse.csr_matrix((np.ones(s.size), (np.arange(s.size),
                                                 (2 * g_sorted + y_sorted.astype(np.intp)) * KL_BINS
                                                 + histogram_bins(s_sorted))),
                              shape=(s.size, n_groups * 2 * KL_BINS))
    scores_ok = s.size == 0 or (s.min() >= 0 and s.max() <= 1)
    calibration = calibration_matrix(y_sorted, s_sorted, g_sorted, n_groups) if scores_ok else None
    sizes = np.bincount(g_sorted, minlength=n_groups)
    chunk = max(1, CHUNK_ELEMENTS // max(1, s.size))
    keys = SCORE_METRICS + tuple(f"{m}[{registry.GROUP}]" for m in SCORE_PER_GROUP)
    parts: dict[str, list] = {k: [] for k in keys}
    for start in range(0, n_boot, chunk):
        w = _group_weights(g_sorted, n_groups, min(chunk, n_boot - start), rng)
        auc, ap = _ranking(w, y_sorted, last)
        parts["auc"].append(auc)
        parts["ap"].append(ap)
        parts["kl"].append(_kl(w, cells, n_groups) if scores_ok else np.full(w.shape[0], np.nan))
        parts["ti_gap"].append(_ti_gap(w, s_sorted, g_sorted, n_groups, last))
        for key, values in _calibration(w, calibration, sizes).items() if scores_ok else ():
            parts[key].append(values)
        if not scores_ok:
            for key in parts.keys() - {"auc", "ap", "kl", "ti_gap"}:
                per_group = key.endswith(f"[{registry.GROUP}]")
                parts[key].append(np.full((w.shape[0], n_groups) if per_group else w.shape[0], np.nan))
    return {k: np.concatenate(v) for k, v in parts.items()}


# ---------------------------------------------------------------- intervals

def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """(lo, median, hi): the percentile-bootstrap interval of ``values`` over the defined replicates."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    tail = 100 * (1 - confidence) / 2
    lo, med, hi = np.percentile(v, [tail, 50.0, 100 - tail])
    return float(lo), float(med), float(hi)


def bootstrap_intervals(y_true, y_pred, groups, scores=None, group_names=None, n_groups=None,
                        num_classes: int = 2, n_boot: int = 1000, confidence: float = 0.95,
                        seed: int = 0, name: str = "", score_metrics="auto", class_names=None) -> dict:
    """Stratified percentile-bootstrap intervals of the fairness metrics of one split.

    Returns ``<metric>_lo``, ``<metric>_median``, ``<metric>_hi`` for the metrics the registry
    bootstraps: the count metrics (``COUNT_METRICS``: accuracy, balanced_accuracy, acc_gap, acc_var,
    worst_group_acc, dp_diff, eo_diff, eopp_diff, ba, worst_cell_acc, dp_ratio, eo_ratio), for ``acc``,
    ``tpr``, ``fpr``, ``sel``, ``ppv``, ``f1`` of every group (``PER_GROUP``), for ``acc[<group>,<class>]``
    of every cell (``PER_CELL``; <class> =
    ``class_names[c]`` or ``str(c)``; the per-cell accuracy of Sagawa et al., ICLR 2020), and,
    when ``scores`` are given for a binary target and ``score_metrics`` allows it (True, or "auto"
    with N x B <= ``SCORE_BUDGET``), for the score metrics (``SCORE_METRICS``: auc, ap, kl, ti_gap, ece,
    ece_gap, brier, then ``SCORE_PER_GROUP``: ece and brier of every group).
    Each replicate resamples every group's rows with replacement keeping its size (see the module
    docstring); the interval is the ``(1 - confidence)/2`` and ``(1 + confidence)/2`` percentiles of
    the B replicate values. The generator is seeded by (``seed``, ``name``), so the same run and
    split always give the same intervals.
    """
    y_true, y_pred, g = as_ids(y_true, "y_true"), as_ids(y_pred, "y_pred"), as_ids(groups, "groups")
    if n_groups is None:
        n_groups = len(group_names) if group_names is not None else (int(g.max()) + 1 if g.size else 0)
    names = [str(x) for x in group_names] if group_names is not None else [str(i) for i in range(n_groups)]
    if y_true.size == 0 or n_boot <= 0:
        return {}
    k = max(int(num_classes), int(max(y_true.max(), y_pred.max())) + 1,
            len(class_names) if class_names is not None else 0)
    binary = k <= 2
    classes = [str(c) for c in class_names] if class_names is not None else [str(c) for c in range(max(k, 2))]
    if len(classes) != max(k, 2):
        raise ValueError(f"{len(classes)} class_names for {max(k, 2)} classes")
    rng = rng_for(seed, name)
    keys = (COUNT_METRICS + tuple(f"{m}[{registry.GROUP}]" for m in PER_GROUP)
            + tuple(f"{m}[{registry.GROUP},{registry.CLASS}]" for m in PER_CELL))
    reps = count_metrics(resample_counts(confusion_counts(y_true, y_pred, g, n_groups, max(k, 2)), n_boot, rng),
                         binary, keys=keys)
    series = {m: reps[m] for m in COUNT_METRICS}
    for key in PER_GROUP:
        for i, group in enumerate(names):
            series[f"{key}[{group}]"] = reps[f"{key}[{registry.GROUP}]"][:, i]
    for key in PER_CELL:
        # in the order of the formula's columns: group by group, class by class
        cells = [f"{key}[{group},{c}]" for group in names for c in classes]
        for j, column in enumerate(cells):
            series[column] = reps[f"{key}[{registry.GROUP},{registry.CLASS}]"][:, j]
    if binary and scores is not None and should_bootstrap_scores(y_true.size, n_boot, score_metrics):
        reps = score_replicates(y_true, as_scores(scores, y_true.size), g, n_groups, n_boot, rng)
        series.update({m: reps[m] for m in SCORE_METRICS})
        for key in SCORE_PER_GROUP:
            for i, group in enumerate(names):
                series[f"{key}[{group}]"] = reps[f"{key}[{registry.GROUP}]"][:, i]
    out = {}
    for metric, values in series.items():
        lo, med, hi = percentile_interval(values, confidence)
        out.update({f"{metric}_lo": lo, f"{metric}_median": med, f"{metric}_hi": hi})
    return out


def should_bootstrap_scores(n_rows: int, n_boot: int, score_metrics) -> bool:
    """Whether the score metrics get intervals under the ``score_metrics`` setting (True/False/auto)."""
    return score_metrics is True or (score_metrics == "auto" and n_rows * n_boot <= SCORE_BUDGET)
