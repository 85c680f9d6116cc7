"""Directional bias amplification (Wang & Russakovsky, ICML 2021) from per-group counts.

Attributes A are the groups (one-hot over group ids 0..G-1); tasks T are the values of the binary
target, one-hot over both classes t in {0, 1}, as in the 2 x 2 (target x gender) computation of
Ramaswamy, Kim & Russakovsky (CVPR 2021). Counts come from one ``np.bincount``, so both directions
are O(n).
"""

import numpy as np

from ._common import as_ids, check_binary, warn_once
from .counts import amplification, confusion_counts, indicator

_NAN = float("nan")


def _n_groups(arrays, n_groups):
    top = max((int(a.max()) + 1 for a in arrays if a.size), default=0)
    if n_groups is None:
        return top
    if top > n_groups:
        raise ValueError(f"group id {top - 1} out of range for n_groups={n_groups}")
    return n_groups


def _same_length(**arrays):
    sizes = {name: a.size for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError("lengths differ: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))


def _reference(y_true, groups, y_true_train, groups_train, n_groups, transpose=False):
    """Counts r[a, t] of (group, label) used for the indicator y_at: training labels if given."""
    if (y_true_train is None) != (groups_train is None):
        raise ValueError("give both y_true_train and groups_train, or neither")
    if y_true_train is not None:
        y_true = as_ids(y_true_train, "y_true_train")
        groups = as_ids(groups_train, "groups_train")
        check_binary(y_true, "y_true_train")
        _same_length(y_true_train=y_true, groups_train=groups)
        if groups.size and groups.max() >= n_groups:
            raise ValueError(f"groups_train id {groups.max()} out of range for {n_groups} groups")
    return np.bincount(2 * groups + y_true, minlength=2 * n_groups).reshape(n_groups, 2)


def _amplification(delta, y_at, keep, what, msgs):
    """Mean over the kept cells of y_at Δ_at + (1 - y_at)(-Δ_at); NaN with a message if none."""
    values = np.where(y_at, delta, -delta)[keep]
    if values.size == 0:
        msgs.append(f"{what} is NaN: no (attribute, task) cell is defined")
        return _NAN
    return float(values.mean())


def bias_amplification(y_true, y_pred, groups, n_groups=None, y_true_train=None, groups_train=None):
    """Directional bias amplification attribute -> task, BiasAmp_{A->T} (the ``ba`` results key).

    BiasAmp = 1/(|A| |T|) sum_{a in A, t in T} [ y_at Δ_at + (1 - y_at)(-Δ_at) ] with
    y_at = 1[P(A=a, T=t) > P(A=a) P(T=t)] and Δ_at = P(T_hat=t | A=a) - P(T=t | A=a),
    where A = the groups (one-hot over group ids), T = both values t in {0, 1} of the binary
    target (one-hot, |T| = 2), T_hat = ``y_pred`` and the probabilities are empirical frequencies
    on the given rows. Wang & Russakovsky, "Directional Bias Amplification", ICML 2021, Eq. 2
    (the "A->T" direction); the measure reported as BA by Ramaswamy, Kim & Russakovsky,
    "Fair Attribute Classification through Latent Space De-biasing", CVPR 2021 (on the 2 x 2
    target x gender table). Positive: the classifier exaggerates the label/group correlation of
    the data; negative: it weakens it. Returned as a fraction (papers print it x 100).

    ``y_at`` uses the training labels when ``y_true_train``/``groups_train`` are given (as the
    paper prescribes), else the labels of the evaluated rows (as the GAN de-biasing code does, and
    as ``group_metrics`` does for ``ba``); it is compared exactly in integer
    counts. Summing over both task values matters only where a cell is exactly independent
    (n n_at = n_a n_t): for t and 1 - t the indicators are complementary and Δ_{a,1-t} = -Δ_at,
    so otherwise the two cells contribute equally; at exact independence they cancel (0), which
    also matches the authors' code (it uses sign(P(a,t) - P(a)P(t)), i.e. 0 there). Groups without
    members are left out (|A| counts the non-empty groups); NaN with one FairnessMetricWarning if
    fewer than two groups have members. Depends on the threshold that produced ``y_pred``.
    """
    y_true, y_pred, g = as_ids(y_true, "y_true"), as_ids(y_pred, "y_pred"), as_ids(groups, "groups")
    _same_length(y_true=y_true, y_pred=y_pred, groups=g)
    check_binary(y_true, "y_true")
    check_binary(y_pred, "y_pred")
    n_groups = _n_groups([g], n_groups)
    c = confusion_counts(y_true, y_pred, g, n_groups)
    r = _reference(y_true, g, y_true_train, groups_train, n_groups)
    n_a = c.sum(axis=(1, 2))
    msgs = []
    if np.count_nonzero(n_a) < 2:
        msgs.append("bias amplification is NaN: fewer than two groups have members")
    elif np.any(n_a == 0):
        msgs.append(f"group(s) {', '.join(map(str, np.flatnonzero(n_a == 0)))} have no members")
    value = amplification(c[None], r[None])[0].item()  # the formula of the ``ba`` results column
    warn_once(msgs)
    return value


def bias_amplification_t_to_a(y_true, groups, groups_pred, n_groups=None, y_true_train=None,
                              groups_train=None):
    """Directional bias amplification task -> attribute, BiasAmp_{T->A}, for predicted groups.

    BiasAmp = 1/(|A| |T|) sum_{a, t} [ y_at Δ_at + (1 - y_at)(-Δ_at) ] with
    y_at = 1[P(A=a, T=t) > P(A=a) P(T=t)] and Δ_at = P(A_hat=a | T=t) - P(A=a | T=t), where
    A = the groups (one-hot), A_hat = ``groups_pred`` (a predicted group per row, e.g. from an
    adversarial or auxiliary attribute head), T = both values of the binary target ``y_true``.
    Wang & Russakovsky, "Directional Bias Amplification", ICML 2021, Eq. 2 ("T->A"): how much the
    attribute predictions lean on the task. fairrun's results only carry the A->T direction
    (``ba``, see ``bias_amplification``); this function is for methods that predict the attribute.

    ``y_at`` uses ``y_true_train``/``groups_train`` when given, else the evaluated labels,
    compared exactly in integers. Here the indicator follows the paper's formula literally: an
    exactly independent cell (n n_at = n_a n_t) has y_at = 0 and contributes -Δ_at, whereas the
    authors' code (sign(...)) gives it 0; the two agree whenever no cell is exactly independent.
    Cells of a task value with no rows, and groups without members in ``groups`` (the true
    attribute), are left out with one FairnessMetricWarning; NaN if fewer than two groups have
    members.
    """
    y_true, g = as_ids(y_true, "y_true"), as_ids(groups, "groups")
    g_hat = as_ids(groups_pred, "groups_pred")
    _same_length(y_true=y_true, groups=g, groups_pred=g_hat)
    check_binary(y_true, "y_true")
    n_groups = _n_groups([g, g_hat], n_groups)
    k = n_groups
    d = np.bincount((y_true * k + g) * k + g_hat, minlength=2 * k * k).reshape(2, k, k)  # [t, a, a_hat]
    r = _reference(y_true, g, y_true_train, groups_train, n_groups)
    n_t, n_a = d.sum(axis=(1, 2)), d.sum(axis=(0, 2))
    msgs = []
    if np.count_nonzero(n_a) < 2:
        msgs.append("bias amplification is NaN: fewer than two groups have members")
        value = _NAN
    else:
        if np.any(n_a == 0):
            msgs.append(f"group(s) {', '.join(map(str, np.flatnonzero(n_a == 0)))} have no members")
        if np.any(n_t == 0):
            msgs.append(f"no rows with y_true={int(np.flatnonzero(n_t == 0)[0])}; those cells are left out")
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = ((d.sum(axis=1) - d.sum(axis=2)) / n_t[:, None]).T  # [a, t]
        keep = (n_a > 0)[:, None] & (n_t > 0)[None, :]
        value = _amplification(delta, indicator(r), keep, "bias amplification", msgs)
    warn_once(msgs)
    return value
