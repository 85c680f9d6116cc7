"""Group fairness metrics from per-group counts, each computed with one ``np.bincount`` pass.

The values come from the count formulas of :mod:`fairrun.metrics.counts` applied to the observed
counts (B = 1), the same formulas the bootstrap applies to its replicates; this module validates the
inputs, names the columns (in the order of :mod:`fairrun.metrics.registry`) and reports what is
undefined. Groups are integer ids 0..G-1. Between-group summaries (gaps, variance) ignore groups
whose value is undefined (NaN) and are NaN themselves when fewer than two groups have a defined
value. fairlearn returns 0 for a single group; NaN is used here because one group says nothing
about disparity.
Each public function emits at most one FairnessMetricWarning naming the groups involved.
"""

import numpy as np

from . import registry
from ._common import as_ids, as_scores, check_binary, resolve_n_groups, to_numpy, warn_once
from .calibration import calibration_point
from .counts import Counts, confusion_counts, count_metrics
from .ranking import ap_from_counts, auc_from_counts, one_class_message, sorted_counts
from .scores import group_ap_sorted, kl_value, sort_by_score, w1_max_sorted

_NAN = float("nan")


def _prepare(y_true, y_pred, groups, n_groups):
    """Validated integer arrays and the number of groups (max id + 1 unless given)."""
    y_true, y_pred = as_ids(y_true, "y_true"), as_ids(y_pred, "y_pred")
    g = as_ids(groups, "groups").astype(np.intp, copy=False)
    if not y_true.size == y_pred.size == g.size:
        raise ValueError(f"lengths differ: y_true {y_true.size}, y_pred {y_pred.size}, groups {g.size}")
    n_groups = resolve_n_groups(g, n_groups)
    return y_true, y_pred, g, n_groups


def _counts(y_true, y_pred, g, n_groups, binary, num_classes=0):
    """The :class:`Counts` (B = 1) of the rows: c[0, g, y, y_hat], K = 2 for a binary target (labels
    checked), else the largest label + 1 or ``num_classes``, whichever is larger."""
    if binary:
        check_binary(y_true, "y_true")
        check_binary(y_pred, "y_pred")
        k = 2
    else:
        k = max(2, int(num_classes), int(max(y_true.max(), y_pred.max())) + 1 if y_true.size else 2)
    return Counts(confusion_counts(y_true, y_pred, g, n_groups, k)[None], binary)


def _first(counts):
    """The per-group rates of the only set of counts: arrays of length G."""
    return {name: values[0] for name, values in counts.rates().items()}


def _names(n_groups, group_names=None):
    if group_names is None:
        return [str(i) for i in range(n_groups)]
    if len(group_names) != n_groups:
        raise ValueError(f"{len(group_names)} group_names for {n_groups} groups")
    return [str(name) for name in group_names]


def _class_names(k, class_names=None):
    if class_names is None:
        return [str(c) for c in range(k)]
    if len(class_names) != k:
        raise ValueError(f"{len(class_names)} class_names for {k} classes (labels 0..{k - 1})")
    return [str(name) for name in class_names]


def _empty_cells(counts, names, classes):
    """A message naming the (group, class) cells without rows in groups that have members (the
    cells of an empty group are reported with the group)."""
    cell_n = counts.cell_n[0]
    empty = (cell_n == 0) & (cell_n.sum(axis=1) > 0)[:, None]
    if not empty.any():
        return []
    listed = ", ".join(f"({names[g]},{classes[c]})" for g, c in zip(*np.nonzero(empty)))
    return [f"cell(s) {listed} have no rows (their accuracy is NaN, left out of worst_cell_acc)"]


def _undefined(rates, names, tpr=False, fpr=False):
    """Messages naming the empty groups and, if asked, groups without positives/negatives."""
    if rates["n"].sum() == 0:
        return ["no samples"]
    empty = rates["n"] == 0

    def listed(mask):
        return ", ".join(names[i] for i in np.flatnonzero(mask))

    msgs = [f"group(s) {listed(empty)} have no members"] if empty.any() else []
    for wanted, count, what in ((tpr, "pos", "positive labels (TPR undefined)"),
                                (fpr, "neg", "negative labels (FPR undefined)")):
        missing = wanted and (rates[count] == 0) & ~empty
        if np.any(missing):
            msgs.append(f"group(s) {listed(missing)} have no {what}")
    return msgs


def _nan_reasons(rates, keys):
    """Messages naming the between-group values among ``keys`` that are NaN, from the per-group rates
    (the conditions under which the formulas of :mod:`fairrun.metrics.counts` give NaN)."""
    msgs = []

    def few(rate, what):
        if np.count_nonzero(~np.isnan(rates[rate])) < 2:
            msgs.append(f"{what} is NaN: fewer than two groups have a defined value")

    for key in keys:
        if key == "acc_gap":
            few("acc", "accuracy gap")
        elif key == "acc_var":
            few("acc", "accuracy variance")
        elif key == "worst_group_acc" and np.isnan(rates["acc"]).all():
            msgs.append("worst-group accuracy is NaN: no group has a defined accuracy")
        elif key == "dp_diff":
            few("sel", "demographic parity difference")
        elif key in ("eo_diff", "eopp_diff"):
            few("tpr", "TPR gap")
            if key == "eo_diff":
                few("fpr", "FPR gap")
        elif key == "dp_ratio":
            few("sel", "demographic parity ratio")
            if np.count_nonzero(~np.isnan(rates["sel"])) >= 2 and np.nanmax(rates["sel"]) == 0:
                msgs.append("demographic parity ratio is NaN: no group has a row with y_hat = 1 (0/0)")
        elif key == "eo_ratio":
            few("tpr", "TPR ratio")
            few("fpr", "FPR ratio")
            both = [r for r in ("tpr", "fpr") if np.count_nonzero(~np.isnan(rates[r])) >= 2]
            if len(both) == 2 and all(np.nanmax(rates[r]) == 0 for r in both):
                msgs.append("equalized odds ratio is NaN: TPR and FPR are 0 in every group (0/0)")
        elif key == "worst_cell_acc" and np.count_nonzero(rates["n"]) == 0:
            msgs.append("worst-cell accuracy is NaN: no cell has rows")
        elif key == "ba" and np.count_nonzero(rates["n"]) < 2:
            msgs.append("bias amplification is NaN: fewer than two groups have members")
    return msgs


def _single(key, y_true, y_pred, groups, n_groups, binary, tpr=False, fpr=False):
    """(value, messages): the count metric ``key`` of the rows (B = 1) and what is undefined."""
    y_true, y_pred, g, n_groups = _prepare(y_true, y_pred, groups, n_groups)
    counts = _counts(y_true, y_pred, g, n_groups, binary)
    rates = _first(counts)
    msgs = _undefined(rates, _names(n_groups), tpr=tpr, fpr=fpr) + _nan_reasons(rates, (key,))
    return count_metrics(counts, keys=(key,))[key][0].item(), msgs


def per_group_rates(y_true, y_pred, groups, n_groups=None):
    """Per-group confusion rates for a binary target; arrays of length G indexed by group id.

    For group g with n_g members, P_g positives (y=1) and N_g negatives (y=0):
    ``n`` = n_g, ``pos`` = P_g, ``neg`` = N_g, ``acc`` = P(y_hat = y | g),
    ``tpr`` = TP_g / P_g = P(y_hat=1 | y=1, g), ``fpr`` = FP_g / N_g = P(y_hat=1 | y=0, g),
    ``sel`` = P(y_hat=1 | g) (selection rate). Rates with a zero denominator are NaN (one warning).
    These are fairlearn's ``MetricFrame(...).by_group`` of accuracy_score, true_positive_rate,
    false_positive_rate, selection_rate and count (fairlearn.org, "Common fairness metrics").
    """
    y_true, y_pred, g, n_groups = _prepare(y_true, y_pred, groups, n_groups)
    rates = _first(_counts(y_true, y_pred, g, n_groups, binary=True))
    warn_once(_undefined(rates, _names(n_groups), tpr=True, fpr=True))
    return rates


def _no_selection(counts, names):
    """Messages naming the non-empty groups without a row predicted 1 (precision undefined) and those
    without positives or predicted positives (F1 undefined)."""
    tp, fp, fn, n = counts.tp[0], counts.fp[0], counts.fn[0], counts.n[0]
    msgs = []
    for mask, what in (((tp + fp == 0) & (n > 0), "no row with y_hat = 1 (ppv undefined)"),
                       ((2 * tp + fp + fn == 0) & (n > 0), "neither positives nor rows with y_hat = 1 "
                                                           "(f1 undefined)")):
        if mask.any():
            msgs.append(f"group(s) {', '.join(names[i] for i in np.flatnonzero(mask))} have {what}")
    return msgs


def per_group_confusion(y_true, y_pred, groups, n_groups=None):
    """Per-group confusion counts for a binary target; integer arrays of length G indexed by group id.

    ``tp``: tp = TP_g = #{i in g : y_i = 1, y_hat_i = 1} (true positives);
    ``fp``: fp = FP_g = #{i in g : y_i = 0, y_hat_i = 1} (false positives);
    ``tn``: tn = TN_g = #{i in g : y_i = 0, y_hat_i = 0} (true negatives);
    ``fn``: fn = FN_g = #{i in g : y_i = 1, y_hat_i = 0} (false negatives).
    ``sklearn.metrics.confusion_matrix(y[g], y_hat[g], labels=[0, 1]).ravel()`` is (tn, fp, fn, tp) of the
    group; the rates of :func:`per_group_rates` and :func:`precision_f1_by_group` are ratios of these counts.
    Descriptive counts (no better direction); empty groups have all four 0 (one FairnessMetricWarning).
    """
    y_true, y_pred, g, n_groups = _prepare(y_true, y_pred, groups, n_groups)
    counts = _counts(y_true, y_pred, g, n_groups, binary=True)
    warn_once(_undefined(_first(counts), _names(n_groups)))
    return {name: getattr(counts, name)[0].copy() for name in ("tp", "fp", "tn", "fn")}


def precision_f1_by_group(y_true, y_pred, groups, n_groups=None):
    """Per-group precision and F1 score for a binary target; arrays of length G indexed by group id.

    ``ppv``: ppv = TP_g / (TP_g + FP_g) = P(y=1 | y_hat=1, g) (precision); NaN when group g has no row
    with y_hat = 1 (``sklearn.metrics.precision_score`` with ``zero_division=np.nan`` on the group's rows).
    ``f1``: f1 = 2 TP_g / (2 TP_g + FP_g + FN_g), the harmonic mean of precision and TPR; NaN when
    2 TP_g + FP_g + FN_g = 0, i.e. the group has neither positives nor rows predicted 1
    (``sklearn.metrics.f1_score`` with ``zero_division=np.nan``; van Rijsbergen, "Information Retrieval",
    1979, F with beta = 1). Counts as in :func:`per_group_confusion`; one FairnessMetricWarning names the
    groups where a value is NaN.
    """
    y_true, y_pred, g, n_groups = _prepare(y_true, y_pred, groups, n_groups)
    counts = _counts(y_true, y_pred, g, n_groups, binary=True)
    names = _names(n_groups)
    warn_once(_undefined(_first(counts), names) + _no_selection(counts, names))
    return {"ppv": counts.ppv[0], "f1": counts.f1[0]}


def accuracy(y_true, y_pred):
    """Accuracy = (1/n) sum_i [y_hat_i = y_i] (any number of classes); NaN on empty input."""
    y_true, y_pred = to_numpy(y_true), to_numpy(y_pred)
    if y_true.size != y_pred.size:
        raise ValueError(f"lengths differ: y_true {y_true.size}, y_pred {y_pred.size}")
    if y_true.size == 0:
        warn_once(["no samples"])
        return _NAN
    return float(np.mean(y_true == y_pred))  # labels of any type; equals the count formula's hits / n


def balanced_accuracy(y_true, y_pred):
    """Balanced accuracy = mean over classes c present in y_true of recall P(y_hat=c | y=c).

    Labels are integer class ids; any number of classes. Equals
    ``sklearn.metrics.balanced_accuracy_score`` (Brodersen et al., ICPR 2010); NaN on empty input.
    """
    y_true, y_pred = as_ids(y_true, "y_true"), as_ids(y_pred, "y_pred")
    if y_true.size != y_pred.size:
        raise ValueError(f"lengths differ: y_true {y_true.size}, y_pred {y_pred.size}")
    counts = _counts(y_true, y_pred, np.zeros(y_true.size, dtype=np.intp), 1, binary=False)
    value = count_metrics(counts, keys=("balanced_accuracy",))["balanced_accuracy"][0].item()
    warn_once(["no samples"] if y_true.size == 0 else [])
    return value


def acc_gap(y_true, y_pred, groups, n_groups=None):
    """Accuracy gap = max_g acc_g - min_g acc_g over non-empty groups (any number of classes).

    Called "DDP" in FairALM's code; fairlearn: ``MetricFrame(accuracy_score).difference()``.
    NaN if fewer than two groups have members.
    """
    value, msgs = _single("acc_gap", y_true, y_pred, groups, n_groups, binary=False)
    warn_once(msgs)
    return value


def acc_var(y_true, y_pred, groups, n_groups=None):
    """Population variance (ddof=0) of per-group accuracies: (1/G') sum_g (acc_g - mean acc)^2.

    G' counts the non-empty groups. This is the "unfairness" of the FairFace notebook
    (Karkkainen & Joo, WACV 2021). NaN if fewer than two groups have members.
    """
    value, msgs = _single("acc_var", y_true, y_pred, groups, n_groups, binary=False)
    warn_once(msgs)
    return value


def worst_group_acc(y_true, y_pred, groups, n_groups=None):
    """Worst-group accuracy = min_g acc_g over non-empty groups (Sagawa et al., ICLR 2020, GroupDRO).

    Any number of classes; NaN if no group has members.
    """
    value, msgs = _single("worst_group_acc", y_true, y_pred, groups, n_groups, binary=False)
    warn_once(msgs)
    return value


def dp_diff(y_true, y_pred, groups, n_groups=None):
    """Demographic parity difference = max_g P(y_hat=1 | g) - min_g P(y_hat=1 | g).

    Equals ``fairlearn.metrics.demographic_parity_difference`` (default method 'between_groups').
    Demographic (statistical) parity: Calders & Verwer, DMKD 2010; Dwork et al., ITCS 2012.
    Empty groups are excluded; NaN if fewer than two groups have members.
    """
    value, msgs = _single("dp_diff", y_true, y_pred, groups, n_groups, binary=True)
    warn_once(msgs)
    return value


def eo_diff(y_true, y_pred, groups, n_groups=None):
    """Equalized odds difference = max(TPR gap, FPR gap), gap = max_g - min_g of the rate.

    Equals ``fairlearn.metrics.equalized_odds_difference`` with agg='worst_case' (not the sum of the
    two gaps, nor MEDFAIR's 1 - mean gap). Equalized odds: Hardt, Price & Srebro, NeurIPS 2016.
    Groups without positives (negatives) are left out of the TPR (FPR) gap; NaN if either gap has
    fewer than two groups with a defined rate.
    """
    value, msgs = _single("eo_diff", y_true, y_pred, groups, n_groups, binary=True, tpr=True, fpr=True)
    warn_once(msgs)
    return value


def eopp_diff(y_true, y_pred, groups, n_groups=None):
    """Equal opportunity difference = TPR gap = max_g TPR_g - min_g TPR_g.

    For two groups this is |FNR_0 - FNR_1|, the DEO of Ramaswamy, Kim & Russakovsky (CVPR 2021) and
    of FairALM. Equal opportunity: Hardt, Price & Srebro, NeurIPS 2016; fairlearn:
    ``MetricFrame(true_positive_rate).difference()``. Groups without positives are left out; NaN
    if fewer than two groups have positives.
    """
    value, msgs = _single("eopp_diff", y_true, y_pred, groups, n_groups, binary=True, tpr=True)
    warn_once(msgs)
    return value


def dp_ratio(y_true, y_pred, groups, n_groups=None):
    """Demographic parity ratio = min_g sel_g / max_g sel_g over non-empty groups, sel_g = P(y_hat=1 | g);
    NaN when max_g sel_g = 0 (0/0).

    Equals ``fairlearn.metrics.demographic_parity_ratio`` (method 'between_groups': group_min / group_max
    of the selection rates, a pandas division, NaN for 0/0 when no group selects anyone). 1 at parity,
    higher is better; the "four-fifths rule" of US employment law flags a ratio below 0.8. Demographic
    parity: Calders & Verwer, DMKD 2010; Dwork et al., ITCS 2012. Empty groups are left out; NaN if fewer
    than two groups have members (fairlearn gives 1 for a single group). One FairnessMetricWarning.
    """
    value, msgs = _single("dp_ratio", y_true, y_pred, groups, n_groups, binary=True)
    warn_once(msgs)
    return value


def eo_ratio(y_true, y_pred, groups, n_groups=None):
    """Equalized odds ratio = min(TPR ratio, FPR ratio), ratio = min_g / max_g of the rate; a ratio that is
    0/0 (the rate is 0 in every group) is left out of the minimum.

    Equals ``fairlearn.metrics.equalized_odds_ratio`` with agg='worst_case' (the smaller of
    ``true_positive_rate`` and ``false_positive_rate``'s MetricFrame ratios) where fairlearn defines it. 1
    at parity, higher is better. Equalized odds: Hardt, Price & Srebro, NeurIPS 2016. The 0/0 case: a rate
    that is 0 in every group is at parity and fairlearn's ratio of it is NaN; fairlearn's worst case is
    Python's ``min`` over (TPR ratio, FPR ratio), which skips a NaN FPR ratio but returns NaN for a NaN TPR
    ratio. Here either 0/0 ratio is left out (the same value in the first case, the FPR ratio instead of
    NaN in the second); NaN if both are 0/0. Groups without positives (negatives) are left out of the TPR
    (FPR) ratio (fairlearn counts their rate as 0); NaN if either rate has fewer than two groups with a
    defined value, as :func:`eo_diff`. One FairnessMetricWarning.
    """
    value, msgs = _single("eo_ratio", y_true, y_pred, groups, n_groups, binary=True, tpr=True, fpr=True)
    warn_once(msgs)
    return value


def per_cell_accuracy(y_true, y_pred, groups, n_groups=None, num_classes=None):
    """Per-cell accuracy of every (protected group g, target class c) cell; arrays (G, K) by ids.

    With C[g, y, y_hat] the confusion counts of group g:
    ``acc`` = acc_gc = C[g, c, c] / sum_k C[g, c, k] = P(y_hat = c | y = c, g), the recall of class c
    within group g (``sklearn.metrics.recall_score`` of class c on group g's rows), and
    ``n`` = n_gc = sum_k C[g, c, k], the rows of group g with label c. The groups of Sagawa et al.
    (ICLR 2020, GroupDRO) are such cells (attribute × label, e.g. CelebA Blond_Hair × Male). Any number
    of classes: K = ``num_classes`` or the largest label + 1. A cell without rows is NaN (one warning).
    """
    y_true, y_pred, g, n_groups = _prepare(y_true, y_pred, groups, n_groups)
    counts = _counts(y_true, y_pred, g, n_groups, binary=False, num_classes=num_classes or 0)
    classes = _class_names(counts.c.shape[2])
    warn_once(_undefined(_first(counts), _names(n_groups)) + _empty_cells(counts, _names(n_groups), classes))
    return {"acc": counts.cell_acc[0], "n": counts.cell_n[0]}


def worst_cell_acc(y_true, y_pred, groups, n_groups=None, num_classes=None):
    """Worst-cell accuracy = min over cells (g, c) with n_gc > 0 of acc_gc = P(y_hat = c | y = c, g).

    The "worst-group accuracy" of the subpopulation-shift literature (Sagawa et al., ICLR 2020, GroupDRO:
    groups = protected attribute × target label), unlike :func:`worst_group_acc`, whose groups are the
    protected groups alone. Cells without rows are left out (one warning); NaN if none has rows.
    """
    y_true, y_pred, g, n_groups = _prepare(y_true, y_pred, groups, n_groups)
    counts = _counts(y_true, y_pred, g, n_groups, binary=False, num_classes=num_classes or 0)
    names = _names(n_groups)
    rates = _first(counts)
    msgs = _undefined(rates, names) + _empty_cells(counts, names, _class_names(counts.c.shape[2]))
    warn_once(msgs + _nan_reasons(rates, ("worst_cell_acc",)))
    return count_metrics(counts, keys=("worst_cell_acc",))["worst_cell_acc"][0].item()


def _score_metrics(y_true, s, g, n_groups, out, msgs):
    """auc, ap, ti_gap, kl, ece, ece_gap, brier into ``out``; returns the per-group families ap[<group>],
    ece[<group>], brier[<group>] (one sort of the scores, one bincount for calibration; binary target)."""
    n_pos = int(y_true.sum())
    s_sorted, y_sorted, g_sorted = sort_by_score(y_true, s, g)
    if 0 < n_pos < y_true.size:
        tps, fps = sorted_counts(y_sorted, s_sorted)
        out["auc"], out["ap"] = auc_from_counts(tps, fps), ap_from_counts(tps, fps)
    else:
        msgs.append(one_class_message(y_true.size))
    out["ti_gap"] = w1_max_sorted(s_sorted, g_sorted, n_groups)[0]
    if np.isnan(out["ti_gap"]):
        msgs.append("ti_gap is NaN: fewer than two groups have members")
    if s.min() < 0 or s.max() > 1:
        msgs.append("kl is NaN: scores outside [0, 1]")
    else:
        out["kl"] = kl_value(y_true, s, g, n_groups)[0]
        if np.isnan(out["kl"]):
            msgs.append("kl is NaN: fewer than two groups have both positive and negative labels")
    families = {f"ap[{registry.GROUP}]": group_ap_sorted(s_sorted, y_sorted, g_sorted, n_groups)}
    if s.min() < 0 or s.max() > 1:
        msgs.append("ece, ece_gap, brier and their per-group values are NaN: scores outside [0, 1]")
        return families
    for key, value in calibration_point(y_true, s, g, n_groups).items():  # ece_gap NaN exactly when ti_gap is
        (families if registry.REGISTRY[key].per_group else out)[key] = value
    return families


def group_metrics(y_true, y_pred, groups, scores=None, group_names=None, n_groups=None, num_classes=2,
                  class_names=None):
    """All metrics of this module in one call, as a flat dict for one results row.

    Keys, in the order of the metric registry: ``n, accuracy, balanced_accuracy, auc, ap, acc_gap,
    acc_var, worst_group_acc, dp_diff, eo_diff, eopp_diff, ba, kl, ti_gap`` (formulas in the functions of
    the same name; ``ap`` is
    average_precision, ``ba`` is bias_amplification, i.e. BiasAmp attribute -> task only), then
    ``acc[<name>]``, ``n[<name>]``, ``tpr[<name>]``, ``fpr[<name>]``, ``sel[<name>]``,
    ``ap[<name>]`` (group_average_precision) for every group, <name> = group_names[g] or str(g), then
    ``worst_cell_acc``, ``acc[<name>,<class>]`` and ``n[<name>,<class>]`` (per_cell_accuracy) for every
    group and target class, <class> = class_names[c] or str(c), K = num_classes (or the largest label + 1)
    classes; then ``tp[<name>]``, ``fp[<name>]``, ``tn[<name>]``, ``fn[<name>]`` (per_group_confusion),
    ``ppv[<name>]``, ``f1[<name>]`` (precision_f1_by_group), ``dp_ratio``, ``eo_ratio``, ``ece``,
    ``ece[<name>]``, ``ece_gap``, ``brier``, ``brier[<name>]`` (expected_calibration_error,
    calibration_by_group, ece_gap, brier_score); later families come last so the earlier ones keep their
    places.
    ``auc``, ``ap``, ``kl``, ``ti_gap``, ``ap[<name>]`` and the calibration values need ``scores``
    (``kl`` and calibration: probabilities of class 1, in [0, 1]) and are NaN without them; ``ba`` uses
    ``y_pred``, with y_at from the evaluated labels. For a multi-class target (num_classes > 2 or a
    label > 1) the binary-only values (auc, ap, dp_diff, eo_diff, eopp_diff, ba, kl, ti_gap, tpr, fpr, sel,
    ap[<name>], the confusion counts, ppv, f1, the ratios, the calibration values) are NaN with the same
    keys; the per-cell columns exist for every class. All undefined values (also cells without rows)
    are reported in a single FairnessMetricWarning, except a NaN ppv or f1 of a group without rows predicted
    1 and a 0/0 dp_ratio or eo_ratio: outcomes of well-defined predictions, stated in their definitions.
    """
    if n_groups is None and group_names is not None:
        n_groups = len(group_names)
    y_true, y_pred, g, n_groups = _prepare(y_true, y_pred, groups, n_groups)
    names = _names(n_groups, group_names)
    binary = num_classes <= 2 and not (y_true.size and max(y_true.max(), y_pred.max()) > 1)
    k = max(int(num_classes), len(class_names) if class_names is not None else 0)
    counts = _counts(y_true, y_pred, g, n_groups, binary, num_classes=k)
    classes = _class_names(counts.c.shape[2], class_names)
    values = count_metrics(counts)  # every registered count metric (B = 1)
    rates = _first(counts)
    msgs = _undefined(rates, names, tpr=binary, fpr=binary)
    msgs += _nan_reasons(rates, ("acc_gap", "acc_var", "worst_group_acc")
                         + (("dp_diff", "eo_diff", "ba") if binary else ()))
    if y_true.size:
        msgs += _empty_cells(counts, names, classes)
    # not reported here: ppv and f1 of a group without rows predicted 1 and the ratios' 0/0, outcomes of
    # well-defined predictions that their definitions state (precision_f1_by_group, dp_ratio, eo_ratio warn)
    # every family's values in registry order; score metrics NaN until computed
    family = {m.key: values[m.key].reshape(-1) if m.kind == "count"
              else np.full(len(m.columns(names, classes)), np.nan) for m in registry.REGISTRY.values()}
    if binary and scores is not None:
        s = as_scores(scores, y_true.size)
        if y_true.size:
            overall = {}
            family.update(_score_metrics(y_true, s, g, n_groups, overall, msgs))
            for key, value in overall.items():
                family[key] = np.array([value])
    out = {}
    for m in registry.REGISTRY.values():
        for column, value in zip(m.columns(names, classes), np.asarray(family[m.key]).tolist()):
            out[column] = value
    warn_once(msgs[:1] if y_true.size == 0 else msgs)  # "no samples" says it all
    return out
