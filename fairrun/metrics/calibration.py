"""Calibration of the scores (probabilities of class 1, binary target): expected calibration error and
Brier score, overall, per group, and the between-group ECE gap.

Both are means of per-row terms within bins or groups, so a set of B replicates (row weights w[b, i], as
the score-metric bootstrap of :mod:`fairrun.metrics.bootstrap` draws them) reduces to weighted sums:

- d[b, g, k] = sum over the rows i of group g in confidence bin k of w[b, i] (1[y_hat_i = y_i] - conf_i),
- q[b, g] = sum over the rows i of group g of w[b, i] (p_i - y_i)^2,
- n[b, g] = sum over the rows i of group g of w[b, i].

Then ECE = (1/n) sum_k |sum_g d[g, k]|, since (n_k / n) |acc_k - conf_k| = |sum_{i in k} (correct_i -
conf_i)| / n, ece_g = (1/n_g) sum_k |d[g, k]|, Brier = sum_g q[g] / n and brier_g = q[g] / n_g.
:func:`calibration_from_sums` is that reduction, shared by the point estimates (B = 1, unit weights, sums
from one ``np.bincount``) and the bootstrap (sums of all replicates from one sparse product).
"""
from __future__ import annotations

import numpy as np

from fairrun.core.errors import FairrunError

from . import registry
from ._common import as_ids, as_scores, check_binary, resolve_n_groups, warn_once
from .counts import divide, gap

ECE_BINS = registry.ECE_BINS  #: 15 equal-width confidence bins on [0, 1] (Guo et al., ICML 2017)
#: the results keys this module computes, in registry order of the overall ones, then the per-group ones
KEYS = ("ece", "ece_gap", "brier", f"ece[{registry.GROUP}]", f"brier[{registry.GROUP}]")


def check_probabilities(s: np.ndarray, what: str) -> None:
    """FairrunError unless every score is a probability in [0, 1]."""
    if s.size and (s.min() < 0 or s.max() > 1):
        bad = s[(s < 0) | (s > 1)][0]
        raise FairrunError(f"{what} needs scores that are probabilities of class 1, in [0, 1]; got the "
                           f"score {bad!r}. Pass P(y = 1), e.g. a softmax or sigmoid output, not a logit "
                           "or a margin.")


def confidence_bins(conf: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """Bin index k of each confidence for the right-closed equal-width bins (k / n_bins, (k + 1) / n_bins]
    (a confidence of 0 falls in bin 0): the bins of Guo et al.'s code, ``conf > lower and conf <= upper``
    with the edges of ``np.linspace(0, 1, n_bins + 1)``, reproduced exactly (also at the edges)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.ceil(conf * n_bins).astype(np.intp) - 1, 0, n_bins - 1)
    idx[(conf <= edges[idx]) & (idx > 0)] -= 1  # rounding put it one bin too high
    idx[(conf > edges[idx + 1]) & (idx < n_bins - 1)] += 1  # ... or one too low
    return idx


def row_terms(y: np.ndarray, s: np.ndarray, n_bins: int = ECE_BINS):
    """Per row: (confidence bin, 1[y_hat = y] - conf, (p - y)^2), with the top-label prediction
    y_hat = 1[p > 0.5] and its confidence conf = max(p, 1 - p)."""
    conf = np.maximum(s, 1.0 - s)
    correct = (s > 0.5) == (y == 1)
    return confidence_bins(conf, n_bins), correct - conf, (s - y) ** 2


def point_sums(y, s, g, n_groups: int, n_bins: int = ECE_BINS):
    """(d, q, n) of the rows themselves (B = 1, unit weights): shapes (1, G, n_bins), (1, G), (1, G)."""
    bins, gap_terms, squares = row_terms(y, s, n_bins)
    d = np.bincount(g * n_bins + bins, weights=gap_terms, minlength=n_groups * n_bins)
    q = np.bincount(g, weights=squares, minlength=n_groups)
    n = np.bincount(g, minlength=n_groups).astype(np.float64)
    return d.reshape(1, n_groups, n_bins), q[None], n[None]


def calibration_from_sums(d: np.ndarray, q: np.ndarray, n: np.ndarray) -> dict[str, np.ndarray]:
    """ece, ece_gap, brier (B,) and ece[<group>], brier[<group>] (B, G) from the weighted sums d (B, G, K),
    q (B, G), n (B, G) of the module docstring. Empty groups are NaN and left out of ece_gap, which is NaN
    with fewer than two non-empty groups."""
    total = n.sum(axis=1)
    ece_g = divide(np.abs(d).sum(axis=2), n)
    return {"ece": divide(np.abs(d.sum(axis=1)).sum(axis=1), total), "ece_gap": gap(ece_g),
            "brier": divide(q.sum(axis=1), total), f"ece[{registry.GROUP}]": ece_g,
            f"brier[{registry.GROUP}]": divide(q, n)}


def calibration_point(y, s, g, n_groups: int) -> dict[str, np.ndarray]:
    """The calibration values of the rows (:data:`KEYS`): overall ones as floats, per-group ones as
    arrays (G,)."""
    values = calibration_from_sums(*point_sums(y, s, g, n_groups))
    return {key: (v[0].item() if v.ndim == 1 else v[0]) for key, v in values.items()}


def _prepare(y_true, scores, groups, n_groups, what):
    y = as_ids(y_true, "y_true")
    s = as_scores(scores, y.size)
    check_binary(y, "y_true")
    check_probabilities(s, what)
    if groups is None:
        return y, s, np.zeros(y.size, dtype=np.intp), 1
    g = as_ids(groups, "groups").astype(np.intp, copy=False)
    if g.size != y.size:
        raise ValueError(f"lengths differ: y_true {y.size}, scores {s.size}, groups {g.size}")
    return y, s, g, resolve_n_groups(g, n_groups)


def _messages(n: np.ndarray, gap_wanted: bool = False) -> list[str]:
    if n.sum() == 0:
        return ["no samples"]
    empty = ", ".join(map(str, np.flatnonzero(n == 0)))
    msgs = [f"group(s) {empty} have no members"] if empty else []
    if gap_wanted and np.count_nonzero(n) < 2:
        msgs.append("ece_gap is NaN: fewer than two groups have members")
    return msgs


def expected_calibration_error(y_true, scores, n_bins: int = ECE_BINS):
    """Expected calibration error of the scores (probabilities of class 1) for a binary target.

    ECE = sum_b (n_b / n) |acc_b - conf_b| over 15 equal-width bins b = (b/15, (b+1)/15] of the top-label
    confidence conf_i = max(p_i, 1 - p_i), acc_b the fraction of bin b's rows with y_i = 1[p_i > 0.5],
    conf_b their mean confidence.

    This is the ECE of Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017
    (eq. 3 and their code: M = ``ECE_BINS`` = 15 bins, right-closed, of the confidence of the predicted
    class), for two classes: the predicted class is the arg-max of (1 - p, p), class 0 on a tie p = 0.5,
    whatever decision threshold the run uses, since ECE judges the probabilities, not the decisions.
    Empty bins contribute 0. ``n_bins`` sets another number of bins (the results use 15). 0 for perfectly
    calibrated scores, 1 at worst (certain and always wrong). NaN on empty input (one
    FairnessMetricWarning); FairrunError for scores outside [0, 1] or n_bins < 1.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise FairrunError(f"expected_calibration_error: n_bins must be a whole number >= 1, got {n_bins!r} "
                           f"(the results use {ECE_BINS}, as Guo et al. 2017).")
    y, s, g, _ = _prepare(y_true, scores, None, None, "expected_calibration_error")
    warn_once(["no samples"] if y.size == 0 else [])
    d, q, n = point_sums(y, s, g, 1, int(n_bins))
    return calibration_from_sums(d, q, n)["ece"][0].item()


def brier_score(y_true, scores):
    """Brier score of the scores (probabilities of class 1) for a binary target.

    Brier = (1/n) sum_i (p_i - y_i)^2, p_i the score (probability of class 1).

    The mean squared error of the predicted probability (Brier, "Verification of forecasts expressed in
    terms of probability", Monthly Weather Review 1950, for two classes and with one term per row rather
    than his sum over both classes, which is twice this); equals ``sklearn.metrics.brier_score_loss``. 0 for
    certain, correct scores; lower is better. NaN on empty input (one FairnessMetricWarning); FairrunError
    for scores outside [0, 1].
    """
    y, s, g, _ = _prepare(y_true, scores, None, None, "brier_score")
    warn_once(["no samples"] if y.size == 0 else [])
    return calibration_from_sums(*point_sums(y, s, g, 1))["brier"][0].item()


def calibration_by_group(y_true, scores, groups, n_groups=None):
    """ECE and Brier score within each group; arrays of length G indexed by group id.

    ``ece``: ece_g = the ECE of group g's rows (n_b, acc_b, conf_b counted within the group), with the bins of
    :func:`expected_calibration_error` (Guo et al., ICML 2017). ``brier``: brier_g = (1/n_g) sum_{i in g}
    (p_i - y_i)^2 (Brier 1950; ``sklearn.metrics.brier_score_loss`` on the group's rows). An empty group is
    NaN (one FairnessMetricWarning); FairrunError for scores outside [0, 1].
    """
    y, s, g, n_groups = _prepare(y_true, scores, groups, n_groups, "calibration_by_group")
    d, q, n = point_sums(y, s, g, n_groups)
    warn_once(_messages(n[0]))
    values = calibration_from_sums(d, q, n)
    return {"ece": values[f"ece[{registry.GROUP}]"][0], "brier": values[f"brier[{registry.GROUP}]"][0]}


def ece_gap(y_true, scores, groups, n_groups=None):
    """Calibration gap = max_g ece_g - min_g ece_g over non-empty groups.

    ece_g is the ECE of group g's rows (:func:`calibration_by_group`; Guo et al., ICML 2017, 15 bins): a
    fairness gap, 0 when every group is equally well calibrated (the per-group calibration of fairness
    criteria such as Pleiss et al., NeurIPS 2017, measured by ECE). NaN if fewer than two groups have
    members (one FairnessMetricWarning); FairrunError for scores outside [0, 1].
    """
    y, s, g, n_groups = _prepare(y_true, scores, groups, n_groups, "ece_gap")
    d, q, n = point_sums(y, s, g, n_groups)
    warn_once(_messages(n[0], gap_wanted=True))
    return calibration_from_sums(d, q, n)["ece_gap"][0].item()
