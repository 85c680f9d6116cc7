"""Per-group and between-group metrics of the score distributions (binary target, G >= 1 groups).

``scores`` are real numbers ordering the rows by confidence in class 1 (for ``kl``: probabilities
in [0, 1]). ``group_metrics`` computes ROC AUC, AP, per-group AP and ti_gap from one stable sort of
the scores (plus a radix sort on the group ids for per-group AP) and kl from one histogram pass.
Between-group values over more than two groups are the maximum over pairs of groups, so ti_gap
costs O(k^2) passes over the distinct scores for k groups (done in cache-sized blocks).
"""

import numpy as np

from ._common import as_ids, as_scores, check_binary, resolve_n_groups, small_ids, warn_once
from .ranking import descending_order, sorted_counts

_NAN = float("nan")

KL_BINS = 50  #: equal-width histogram bins on [0, 1] for ``kl``
KL_SIGMA = 1.0  #: Gaussian smoothing of the histograms, in bins
KL_EPS = 1e-6  #: added to every normalised, smoothed bin


def _prepare(y_true, scores, groups, n_groups, binary=True):
    y = as_ids(y_true, "y_true")
    g = as_ids(groups, "groups").astype(np.intp, copy=False)
    s = as_scores(scores, y.size)
    if y.size != g.size:
        raise ValueError(f"lengths differ: y_true {y.size}, scores {s.size}, groups {g.size}")
    if binary:
        check_binary(y, "y_true")
    n_groups = resolve_n_groups(g, n_groups)
    return y, s, g, n_groups


def _listed(mask):
    return ", ".join(map(str, np.flatnonzero(mask)))


def _group_messages(n, pos, what_pos=None, what_both=None):
    """Messages about empty groups and groups without positives (and/or negatives)."""
    if n.sum() == 0:
        return ["no samples"]
    msgs = [f"group(s) {_listed(n == 0)} have no members"] if np.any(n == 0) else []
    if what_pos and np.any((pos == 0) & (n > 0)):
        msgs.append(f"group(s) {_listed((pos == 0) & (n > 0))} have no positive labels ({what_pos})")
    if what_both and np.any(((pos == 0) | (pos == n)) & (n > 0)):
        msgs.append(f"group(s) {_listed(((pos == 0) | (pos == n)) & (n > 0))} do not have both "
                    f"positive and negative labels ({what_both})")
    return msgs


def sort_by_score(y, s, g):
    """(s, y, g) reordered by decreasing score (the order of ``ranking_counts``)."""
    order = descending_order(s)
    return s[order], y[order], g[order]


# ---------------------------------------------------------------- per-group average precision

def group_ap_sorted(s, y, g, n_groups):
    """Per-group AP from rows sorted by decreasing score; NaN for groups without positives."""
    g = small_ids(g, n_groups)
    p = np.argsort(g, kind="stable")  # radix sort on the group ids: within a group still sorted
    s, y, g = s[p], y[p], g[p]
    n = np.bincount(g, minlength=n_groups)
    pos = np.bincount(g, weights=y, minlength=n_groups)
    ap = np.full(n_groups, np.nan)
    if s.size == 0:
        return ap
    # runs of rows with one group and one score, i.e. the thresholds of each group
    last = np.r_[np.flatnonzero((s[1:] != s[:-1]) | (g[1:] != g[:-1])), s.size - 1]
    cum = np.cumsum(y)[last]
    gained = np.diff(cum, prepend=0)  # positives in each run (runs are contiguous)
    hit = np.flatnonzero(gained)  # only runs that add recall contribute
    last, cum, gained = last[hit], cum[hit], gained[hit]
    g_last = g[last].astype(np.intp)
    tps = cum - np.r_[0, np.cumsum(pos)[:-1]][g_last]  # the group's positives scored >= this run
    scored = last + 1 - np.r_[0, np.cumsum(n)[:-1]][g_last]  # the group's rows scored >= this run
    total = np.bincount(g_last, weights=gained * (tps / scored), minlength=n_groups)
    np.divide(total, pos, out=ap, where=pos > 0)
    return ap


def group_average_precision(y_true, scores, groups, n_groups=None):
    """Average precision within each group; an array of length G indexed by group id.

    AP_g = sum_k (R_k - R_{k-1}) P_k over the distinct score thresholds k of group g's rows in
    decreasing order, R_k = TP_k / P_g, P_k = TP_k / (TP_k + FP_k), counting only group g's rows:
    ``sklearn.metrics.average_precision_score`` on the group's rows (the "ap[<group>]" results
    keys; the per-group AP of Ramaswamy, Kim & Russakovsky, CVPR 2021). NaN with one
    FairnessMetricWarning for groups without members or without positive labels; a group with
    only positives has AP = 1, as in sklearn (unlike ``average_precision``, which is NaN when the
    whole input has one class).
    """
    y, s, g, n_groups = _prepare(y_true, scores, groups, n_groups)
    n = np.bincount(g, minlength=n_groups)
    pos = np.bincount(g, weights=y, minlength=n_groups)
    warn_once(_group_messages(n, pos, what_pos="AP undefined"))
    return group_ap_sorted(*sort_by_score(y, s, g), n_groups)


# ---------------------------------------------------------------- Wasserstein-1 (ti_gap)

def w1_max_sorted(s, g, n_groups):
    """max over pairs of non-empty groups of W1 between their empirical score distributions.

    ``s`` is sorted in decreasing order and ``g`` aligned with it. Returns (value, number of
    non-empty groups); the value is NaN when that number is below two. W1(i, j) is
    sum_m |F_i(u_m) - F_j(u_m)| (u_{m+1} - u_m) over the distinct scores u_m in increasing order;
    the per-group CDFs are built block by block of distinct scores, so memory stays O(n + k B)
    and each block's pair sums run in cache.
    """
    n = np.bincount(g, minlength=n_groups)
    present = np.flatnonzero(n)
    k = present.size
    if k < 2:
        return _NAN, k
    s, g = s[::-1], g[::-1]  # increasing order
    starts = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]
    m = starts.size
    if m == 1:
        return 0.0, k
    run = np.zeros(s.size, dtype=np.intp)
    run[starts[1:]] = 1
    np.cumsum(run, out=run)  # index of the distinct score of each row
    remap = np.zeros(n_groups, dtype=np.intp)
    remap[present] = np.arange(k)
    gi = remap[g]
    du = np.diff(s[starts])
    inv_n = (1.0 / n[present])[:, None]
    carry = np.zeros((k, 1), dtype=np.int64)
    total = np.zeros((k, k))
    block = max(256, 32768 // k)
    for r0 in range(0, m - 1, block):  # the last distinct score has F = 1 for every group
        r1 = min(r0 + block, m - 1)
        rows = slice(starts[r0], starts[r1])
        counts = np.bincount(gi[rows] * (r1 - r0) + (run[rows] - r0), minlength=k * (r1 - r0))
        cum = np.cumsum(counts.reshape(k, r1 - r0), axis=1) + carry
        carry = cum[:, -1:]
        cdf = cum * inv_n
        for i in range(k - 1):  # no BLAS (matmul): its threads thrash on small, busy machines
            diff = np.subtract(cdf[i + 1:], cdf[i])
            np.abs(diff, out=diff)
            np.multiply(diff, du[r0:r1], out=diff)
            total[i, i + 1:] += diff.sum(axis=1)
    return float(total.max()), k


def ti_gap(y_true, scores, groups, n_groups=None, given_label=False):
    """Threshold-invariant gap: Wasserstein-1 distance between the groups' score distributions.

    In one line: max over pairs of groups i, j of W1(i, j) = integral |F_i(u) - F_j(u)| du, F_g the
    empirical CDF of group g's scores (over pairs of non-empty groups).

    For two groups i, j with empirical score CDFs F_i, F_j:
    W1(i, j) = integral |F_i(u) - F_j(u)| du = integral over thresholds tau of
    |P(s > tau | g=i) - P(s > tau | g=j)| dtau, i.e. the demographic-parity gap of the classifier
    "s > tau" integrated over every threshold tau (for scores in [0, 1]: its average over tau
    uniform in [0, 1]). It is threshold invariant because it compares the whole score
    distributions rather than the decisions at one threshold, and it is 0 exactly when the
    distributions are equal, the condition that Chen & Wu, "Towards Threshold Invariant Fair
    Classification", UAI 2020, impose so that fairness holds at every threshold. For more than two
    groups: the maximum over pairs of non-empty groups. Equals
    ``scipy.stats.wasserstein_distance(s[g == i], s[g == j])``. In the units of the scores.

    ``given_label=True`` compares the distributions within each class instead and returns the
    larger of the two: max(max_pairs W1 over y=1 rows, max_pairs W1 over y=0 rows), i.e. the
    TPR and FPR gaps integrated over all thresholds (the equalized-odds version); classes with
    fewer than two non-empty groups are left out. NaN with one FairnessMetricWarning if fewer than
    two groups have members (in any class, with ``given_label``). Constant scores give 0.
    """
    y, s, g, n_groups = _prepare(y_true, scores, groups, n_groups, binary=given_label)
    n = np.bincount(g, minlength=n_groups)
    msgs = _group_messages(n, None)
    s, y, g = sort_by_score(y, s, g)
    if not given_label:
        value = w1_max_sorted(s, g, n_groups)[0]
    else:
        values = [w1_max_sorted(s[y == c], g[y == c], n_groups)[0] for c in (0, 1)]
        value = _NAN if np.isnan(values).all() else float(np.nanmax(values))
        if not np.isnan(value) and np.isnan(values).any():
            msgs.append(f"ti_gap leaves out y={int(np.isnan(values[1]))}: fewer than two groups "
                        "have rows of that class")
    if np.isnan(value) and msgs[:1] != ["no samples"]:
        msgs.append("ti_gap is NaN: fewer than two groups have members")
    warn_once(msgs)
    return value


# ---------------------------------------------------------------- KL of smoothed histograms

def histogram_bins(s):
    """Bin index of each score for ``np.histogram(s, bins=KL_BINS, range=(0, 1))`` (last bin closed).

    The same arithmetic as numpy's equal-width fast path, including its edge corrections, so the
    counts agree exactly.
    """
    edges = np.linspace(0.0, 1.0, KL_BINS + 1)
    idx = (s * KL_BINS).astype(np.intp)
    idx[idx == KL_BINS] -= 1
    idx[s < edges[idx]] -= 1
    idx[(s >= edges[idx + 1]) & (idx != KL_BINS - 1)] += 1
    return idx


def kl_value(y, s, g, n_groups):
    """max over pairs of eligible groups of the mean of the four directed KLs; (value, eligible)."""
    from scipy.ndimage import gaussian_filter1d

    counts = np.bincount((2 * g + y) * KL_BINS + histogram_bins(s),
                         minlength=2 * n_groups * KL_BINS).reshape(n_groups, 2, KL_BINS)
    sizes = counts.sum(axis=2)
    eligible = np.flatnonzero((sizes > 0).all(axis=1))
    if eligible.size < 2:
        return _NAN, eligible
    smooth = gaussian_filter1d(counts[eligible].astype(np.float64), KL_SIGMA, axis=-1,
                               mode="reflect", truncate=4.0)
    p = smooth / smooth.sum(axis=-1, keepdims=True) + KL_EPS
    log_p = np.log(p)
    # directed[i, j, c] = KL(p_i,c || p_j,c) = sum_b p_i log p_i - p_i log p_j
    directed = (np.einsum("icb,icb->ic", p, log_p)[:, None, :]
                - np.einsum("icb,jcb->ijc", p, log_p))
    pair = (directed + directed.transpose(1, 0, 2)).sum(axis=2) / 4
    return float(pair[np.triu_indices(eligible.size, 1)].max()), eligible


def kl(y_true, scores, groups, n_groups=None):
    """KL divergence between the groups' score distributions, per class, as in Ramaswamy et al.

    In one line: max over pairs of groups i, j of [KL(p_i1 || p_j1) + KL(p_j1 || p_i1) + KL(p_i0 ||
    p_j0) + KL(p_j0 || p_i0)] / 4, p_gc the smoothed 50-bin histogram of the scores of group g's rows
    with y = c (eligible groups: with rows of both classes).

    For each group g and class c in {0, 1}, the scores (probabilities of class 1, in [0, 1]) of
    the group's rows with y = c are counted in ``KL_BINS`` = 50 equal-width bins on [0, 1]
    (``np.histogram(range=(0, 1))``), smoothed with a Gaussian of sigma = ``KL_SIGMA`` = 1 bin
    (``scipy.ndimage.gaussian_filter1d``, mode "reflect", truncate 4), normalised to sum 1, and
    ``KL_EPS`` = 1e-6 is added to every bin: p_{g,c}. With KL(p || q) = sum_b p_b log(p_b / q_b)
    (natural log), the value for two groups i, j is the mean of the four directed divergences
    [KL(p_i1 || p_j1) + KL(p_j1 || p_i1) + KL(p_i0 || p_j0) + KL(p_j0 || p_i0)] / 4; for more than
    two groups, the maximum over pairs. 0 when the groups' per-class histograms coincide.

    This is the estimator of the code of Ramaswamy, Kim & Russakovsky, "Fair Attribute
    Classification through Latent Space De-biasing", CVPR 2021 (``smoothed_hist_kl_distance``:
    50 bins, sigma 1, +1e-6, both directions, positives and negatives; the paper reports a
    bootstrap median of those four values, this is their plain mean on the given rows), with one
    deliberate difference: their ``np.histogram(a, bins=50)`` takes each group's own min-max
    range, so the two histograms have different bins, and smooths the integer counts into an
    integer array (truncating them); here both use the fixed range [0, 1] and smooth in floating
    point.

    Groups without members, or without both positive and negative labels, are left out (one
    FairnessMetricWarning); NaN if fewer than two groups remain. Raises ValueError for scores
    outside [0, 1].
    """
    y, s, g, n_groups = _prepare(y_true, scores, groups, n_groups)
    if s.size and (s.min() < 0 or s.max() > 1):
        raise ValueError("kl needs scores in [0, 1] (probabilities of class 1)")
    n = np.bincount(g, minlength=n_groups)
    pos = np.bincount(g, weights=y, minlength=n_groups)
    msgs = _group_messages(n, pos, what_both="KL undefined")
    value, _ = kl_value(y, s, g, n_groups)
    if np.isnan(value) and msgs[:1] != ["no samples"]:
        msgs.append("kl is NaN: fewer than two groups have both positive and negative labels")
    warn_once(msgs)
    return value


# ---------------------------------------------------------------- ABROCA

def _interp_segments(f, t, x, side):
    """ROC value at knots x, the limit from the right (side='right') or the left (side='left')."""
    if side == "right":  # segment (idx, idx + 1) with f[idx] <= x < f[idx + 1]
        hi = np.searchsorted(f, x, side="right")
    else:  # segment (idx - 1, idx) with f[idx - 1] < x <= f[idx]
        hi = np.searchsorted(f, x, side="left")
    lo = hi - 1
    return t[lo] + (t[hi] - t[lo]) * (x - f[lo]) / (f[hi] - f[lo])


def _abroca_pair(f1, t1, f2, t2):
    """Exact integral over FPR in [0, 1] of |ROC_1 - ROC_2| for piecewise-linear ROC curves."""
    x = np.union1d(f1, f2)
    d0 = _interp_segments(f1, t1, x[:-1], "right") - _interp_segments(f2, t2, x[:-1], "right")
    d1 = _interp_segments(f1, t1, x[1:], "left") - _interp_segments(f2, t2, x[1:], "left")
    width, a0, a1 = np.diff(x), np.abs(d0), np.abs(d1)
    same_sign = d0 * d1 >= 0
    crossing = (d0 ** 2 + d1 ** 2) / np.where(same_sign, 1.0, a0 + a1)  # a line crossing zero
    return float(np.sum(width * np.where(same_sign, (a0 + a1), crossing)) / 2)


def abroca(y_true, scores, groups, n_groups=None):
    """Absolute Between-ROC Area: integral over FPR in [0, 1] of |ROC_i(FPR) - ROC_j(FPR)|.

    ROC_g is group g's ROC curve (TPR against FPR over all thresholds of ``scores``, tied scores
    one threshold, points joined by straight lines: sklearn's ``roc_curve`` on the group's rows);
    the area between two such curves is integrated exactly (segment by segment, splitting at
    crossings). Gardner, Brooks & Baker, "Evaluating the Fairness of Predictive Student Models
    Through Slicing Analysis", LAK 2019 (their code interpolates on a grid instead). Threshold
    free; at least |AUC_i - AUC_j|, with equality when the curves do not cross. For more than two
    groups: the maximum over pairs. Groups without members or without both classes are left out
    (one FairnessMetricWarning); NaN if fewer than two remain.
    """
    y, s, g, n_groups = _prepare(y_true, scores, groups, n_groups)
    n = np.bincount(g, minlength=n_groups)
    pos = np.bincount(g, weights=y, minlength=n_groups)
    msgs = _group_messages(n, pos, what_both="ROC undefined")
    s, y, g = sort_by_score(y, s, g)
    curves = []
    for j in np.flatnonzero((pos > 0) & (pos < n)):
        mask = g == j
        tps, fps = sorted_counts(y[mask], s[mask])
        curves.append((np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]))
    if len(curves) < 2:
        if msgs[:1] != ["no samples"]:
            msgs.append("abroca is NaN: fewer than two groups have both positive and negative labels")
        warn_once(msgs)
        return _NAN
    warn_once(msgs)
    return max(_abroca_pair(*curves[i], *curves[j])
               for i in range(len(curves)) for j in range(i + 1, len(curves)))
