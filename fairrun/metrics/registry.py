"""The metric registry: one entry per results column (or per family of per-group columns).

Every place that names metrics reads them here: :func:`fairrun.metrics.group_metrics` (which columns a
results row has, and their order), the count-metric formulas (:mod:`fairrun.metrics.counts`), the
bootstrap (which columns get ``_lo``/``_median``/``_hi`` intervals), TensorBoard and the checkpoint
choice (``fairrun.training.loop``), the table printed after a run (``fairrun.report.console``), the
report's defaults, labels and fairness gaps (``fairrun.report``), and the table of docs/metrics.md.

An entry is data: a frozen :class:`Metric`. ``REGISTRY`` maps each entry's :attr:`Metric.key` (its
column name, ``name[<group>]`` for a per-group family, or ``name[<group>,<class>]`` for a per-cell one)
to it, in the column order of results.pkl. The lookups (:func:`metric`, :func:`direction`,
:func:`label`, :func:`better`, ...) take any results column: ``accuracy``, a per-group column
``acc[Male]``, a per-cell column ``acc[Male,1]``, or an interval column ``acc[Male]_lo``.

Adding a metric is one entry here plus its formula: for a count metric, a function decorated with
``@formula("<key>")`` in :mod:`fairrun.metrics.counts` (the point estimate and the bootstrap then both
use it); for a score metric, its computation in ``group_metrics`` (and ``score_replicates`` if it
bootstraps). ``tests/unit/test_metric_registry.py`` fails while the code and the registry disagree, and
while the table in docs/metrics.md is stale: ``python -m fairrun.metrics --markdown docs/metrics.md``
rewrites it.
"""
from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

GROUP = "<group>"  #: the placeholder of the group name in a per-group key: ``acc[<group>]``
CLASS = "<class>"  #: the placeholder of the class name in a per-cell key: ``acc[<group>,<class>]``
INTERVAL_SUFFIXES = ("_lo", "_median", "_hi")  #: bootstrap columns ``<column>_lo`` etc.
KINDS = ("count", "score")


@dataclass(frozen=True)
class Metric:
    """What a metric is, how to read it, how it is computed and how it is shown."""

    name: str  #: the column name; for a per-group metric, the prefix of its ``name[<group>]`` columns
    definition: str  #: one line, the formula as the docstring of ``function`` states it
    higher_is_better: bool | None  #: None: descriptive (a count, a selection rate), neither good nor bad
    kind: str  #: "count": a function of the per-group confusion counts; "score": needs the scores
    bootstraps: bool  #: whether results rows carry its ``_lo``, ``_median``, ``_hi`` bootstrap columns
    #: axis and table label; a per-group label has a ``{group}`` field, a per-cell one also ``{cls}``
    label: str
    reference: str = ""  #: where the definition comes from
    per_group: bool = False  #: one column ``name[<group>]`` per group instead of one column ``name``
    binary_only: bool = False  #: NaN for multi-class targets
    gap: bool = False  #: a between-group disparity: 0 at parity, lower is fairer (the report's "--gap")
    format: str = ".4f"  #: format spec of one value
    function: str | None = None  #: the public function of ``fairrun.metrics`` whose docstring defines it
    #: one column ``name[<group>,<class>]`` per (protected group, target class) cell, group by group
    per_cell: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.gap and self.higher_is_better is not False:
            raise ValueError(f"metric {self.name}: a fairness gap is minimised (higher_is_better=False)")
        if self.per_group and self.per_cell:
            raise ValueError(f"metric {self.name}: per group or per cell, not both")
        grouped = self.per_group or self.per_cell
        if grouped != ("{group}" in self.label) or self.per_cell != ("{cls}" in self.label):
            raise ValueError(f"metric {self.name}: a per-group (per-cell) label, and only one, has a "
                             f"{{group}} ({{group}} and {{cls}}) field")

    @property
    def key(self) -> str:
        """The registry key: the column name, ``name[<group>]`` for a per-group family, or
        ``name[<group>,<class>]`` for a per-cell one."""
        if self.per_cell:
            return f"{self.name}[{GROUP},{CLASS}]"
        return f"{self.name}[{GROUP}]" if self.per_group else self.name

    @property
    def direction(self) -> str:
        """``higher``, ``lower`` (better), or ``none``."""
        return {True: "higher", False: "lower", None: "none"}[self.higher_is_better]

    def columns(self, group_names, class_names=()) -> list[str]:
        """Its results columns for groups named ``group_names`` and target classes named ``class_names``
        (the name alone unless per-group or per-cell; a per-cell family group by group, class by class)."""
        if self.per_cell:
            return [f"{self.name}[{g},{c}]" for g in group_names for c in class_names]
        return [f"{self.name}[{g}]" for g in group_names] if self.per_group else [self.name]


def _entries(*metrics: Metric) -> dict[str, Metric]:
    out = {}
    for m in metrics:
        if m.key in out:
            raise ValueError(f"metric {m.key} is registered twice")
        out[m.key] = m
    return out


_HARDT = "Hardt, Price & Srebro, NeurIPS 2016"
_RAMASWAMY = "Ramaswamy, Kim & Russakovsky, CVPR 2021"
_GUO = "Guo, Pleiss, Sun & Weinberger, ICML 2017"
_BRIER = "Brier, Monthly Weather Review 1950; = scikit-learn brier_score_loss"
ECE_BINS = 15  #: equal-width bins on [0, 1] of the top-label confidence for ``ece`` (Guo et al. 2017)

#: Every metric, in the column order of results.pkl: the overall columns, then the per-group families
#: (each family's columns group by group), then the entries added later (issue 18: the per-cell
#: accuracy; then per-group confusion counts, precision, F1, the parity ratios and calibration), appended at
#: the end so that the earlier columns keep their places.
REGISTRY: dict[str, Metric] = _entries(
    Metric("n", "number of evaluated rows", None, "count", False, "number of rows", format="d"),
    Metric("accuracy", "(1/n) sum_i [y_hat_i = y_i]", True, "count", True, "accuracy (fraction correct)",
           function="accuracy"),
    Metric("balanced_accuracy", "mean over classes c present in y_true of recall P(y_hat=c | y=c)", True, "count",
           True, "balanced accuracy (mean recall over classes)", "Brodersen et al., ICPR 2010",
           function="balanced_accuracy"),
    Metric("auc", "Area under the ROC curve of scores (probability of class 1) for binary y_true", True, "score",
           True, "ROC AUC", "Fawcett, Pattern Recognition Letters 2006", binary_only=True, function="auc"),
    Metric("ap", "AP = sum_k (R_k - R_{k-1}) P_k over the distinct score thresholds k in decreasing order, with "
           "recall R_k = TP_k / P and precision P_k = TP_k / (TP_k + FP_k) (no interpolation)", True, "score", True,
           "average precision", "scikit-learn average_precision_score", binary_only=True,
           function="average_precision"),
    Metric("acc_gap", "max_g acc_g - min_g acc_g over non-empty groups", False, "count", True,
           "accuracy gap (max − min group accuracy)", "FairALM's \"DDP\" (Lokhande et al., ECCV 2020)", gap=True,
           function="acc_gap"),
    Metric("acc_var", "Population variance (ddof=0) of per-group accuracies: (1/G') sum_g (acc_g - mean acc)^2",
           False, "count", True, "variance of group accuracies",
           "FairFace's \"unfairness\" (Kärkkäinen & Joo, WACV 2021)", gap=True, function="acc_var"),
    Metric("worst_group_acc", "min_g acc_g over non-empty groups", True, "count", True,
           "worst-group accuracy (min over groups)", "Sagawa et al., ICLR 2020", function="worst_group_acc"),
    Metric("dp_diff", "max_g P(y_hat=1 | g) - min_g P(y_hat=1 | g)", False, "count", True,
           "demographic parity difference (selection-rate gap)",
           "Calders & Verwer, DMKD 2010; Dwork et al., ITCS 2012; = fairlearn", binary_only=True, gap=True,
           function="dp_diff"),
    Metric("eo_diff", "max(TPR gap, FPR gap), gap = max_g - min_g of the rate", False, "count", True,
           "equalized odds difference (max of TPR, FPR gaps)", f"{_HARDT}; = fairlearn (agg='worst_case')",
           binary_only=True, gap=True, function="eo_diff"),
    Metric("eopp_diff", "TPR gap = max_g TPR_g - min_g TPR_g", False, "count", True,
           "equal opportunity difference (TPR gap)", f"{_HARDT}; the DEO of {_RAMASWAMY}", binary_only=True,
           gap=True, function="eopp_diff"),
    Metric("ba", "BiasAmp = 1/(|A| |T|) sum_{a in A, t in T} [ y_at Δ_at + (1 - y_at)(-Δ_at) ] with "
           "y_at = 1[P(A=a, T=t) > P(A=a) P(T=t)] and Δ_at = P(T_hat=t | A=a) - P(T=t | A=a)", False, "count",
           True, "bias amplification A→T", "Wang & Russakovsky, ICML 2021 (A→T)", binary_only=True,
           function="bias_amplification"),
    Metric("kl", "max over pairs of groups i, j of [KL(p_i1 || p_j1) + KL(p_j1 || p_i1) + KL(p_i0 || p_j0) + "
           "KL(p_j0 || p_i0)] / 4, p_gc the smoothed 50-bin histogram of the scores of group g's rows with y = c",
           False, "score", True, "KL divergence of group score distributions", _RAMASWAMY, binary_only=True,
           gap=True, function="kl"),
    Metric("ti_gap", "max over pairs of groups i, j of W1(i, j) = integral |F_i(u) - F_j(u)| du, F_g the "
           "empirical CDF of group g's scores", False, "score", True,
           "threshold-invariant gap (Wasserstein-1 of group scores)", "Chen & Wu, UAI 2020", binary_only=True,
           gap=True, function="ti_gap"),
    Metric("acc", "acc = P(y_hat = y | g)", True, "count", True, "accuracy of group {group}", per_group=True,
           function="per_group_rates"),
    Metric("n", "number of rows of group g", None, "count", False, "rows of group {group}", per_group=True,
           format="d"),
    Metric("tpr", "tpr = TP_g / P_g = P(y_hat=1 | y=1, g)", True, "count", True, "TPR of group {group}",
           per_group=True, binary_only=True, function="per_group_rates"),
    Metric("fpr", "fpr = FP_g / N_g = P(y_hat=1 | y=0, g)", False, "count", True, "FPR of group {group}",
           per_group=True, binary_only=True, function="per_group_rates"),
    Metric("sel", "sel = P(y_hat=1 | g) (selection rate)", None, "count", True,
           "selection rate of group {group}", per_group=True, binary_only=True, function="per_group_rates"),
    Metric("ap", "AP_g = sum_k (R_k - R_{k-1}) P_k over the distinct score thresholds k of group g's rows in "
           "decreasing order, R_k = TP_k / P_g, P_k = TP_k / (TP_k + FP_k)", True, "score", False,
           "average precision of group {group}", _RAMASWAMY, per_group=True, binary_only=True,
           function="group_average_precision"),
    Metric("worst_cell_acc", "min over cells (g, c) with n_gc > 0 of acc_gc = P(y_hat = c | y = c, g)", True,
           "count", True, "worst-cell accuracy (min over group × class cells)",
           "the worst-group accuracy of Sagawa et al., ICLR 2020 (groups = attribute × label)",
           function="worst_cell_acc"),
    Metric("acc", "acc_gc = C[g, c, c] / sum_k C[g, c, k] = P(y_hat = c | y = c, g), the recall of class c "
           "within group g", True, "count", True, "accuracy of group {group} with label {cls}",
           "Sagawa et al., ICLR 2020", per_cell=True, function="per_cell_accuracy"),
    Metric("n", "n_gc = sum_k C[g, c, k], the rows of group g with label c", None, "count", False,
           "rows of group {group} with label {cls}", per_cell=True, format="d", function="per_cell_accuracy"),
    # issue 18, point 1 (continued): per-group confusion counts, precision and F1, the fairlearn ratios, and
    # calibration (ECE with ECE_BINS = 15 bins, Brier score), appended so the earlier columns keep their
    # places
    Metric("tp", "tp = TP_g = #{i in g : y_i = 1, y_hat_i = 1} (true positives)", None, "count", False,
           "true positives of group {group}", per_group=True, binary_only=True, format="d",
           function="per_group_confusion"),
    Metric("fp", "fp = FP_g = #{i in g : y_i = 0, y_hat_i = 1} (false positives)", None, "count", False,
           "false positives of group {group}", per_group=True, binary_only=True, format="d",
           function="per_group_confusion"),
    Metric("tn", "tn = TN_g = #{i in g : y_i = 0, y_hat_i = 0} (true negatives)", None, "count", False,
           "true negatives of group {group}", per_group=True, binary_only=True, format="d",
           function="per_group_confusion"),
    Metric("fn", "fn = FN_g = #{i in g : y_i = 1, y_hat_i = 0} (false negatives)", None, "count", False,
           "false negatives of group {group}", per_group=True, binary_only=True, format="d",
           function="per_group_confusion"),
    Metric("ppv", "ppv = TP_g / (TP_g + FP_g) = P(y=1 | y_hat=1, g) (precision); NaN when group g has no row "
           "with y_hat = 1", True, "count", True, "precision (PPV) of group {group}",
           "scikit-learn precision_score on the group's rows", per_group=True, binary_only=True,
           function="precision_f1_by_group"),
    Metric("f1", "f1 = 2 TP_g / (2 TP_g + FP_g + FN_g), the harmonic mean of precision and TPR; NaN when "
           "2 TP_g + FP_g + FN_g = 0", True, "count", True, "F1 score of group {group}",
           "van Rijsbergen 1979; scikit-learn f1_score on the group's rows", per_group=True, binary_only=True,
           function="precision_f1_by_group"),
    Metric("dp_ratio", "min_g sel_g / max_g sel_g over non-empty groups, sel_g = P(y_hat=1 | g); NaN when "
           "max_g sel_g = 0 (0/0)", True, "count", True,
           "demographic parity ratio (min / max selection rate)",
           "= fairlearn demographic_parity_ratio", binary_only=True, function="dp_ratio"),
    Metric("eo_ratio", "min(TPR ratio, FPR ratio), ratio = min_g / max_g of the rate; a ratio that is 0/0 "
           "(the rate is 0 in every group) is left out of the minimum", True, "count", True,
           "equalized odds ratio (min of TPR, FPR ratios)",
           f"{_HARDT}; = fairlearn equalized_odds_ratio (agg='worst_case')", binary_only=True,
           function="eo_ratio"),
    Metric("ece", f"ECE = sum_b (n_b / n) |acc_b - conf_b| over {ECE_BINS} equal-width bins "
           f"b = (b/{ECE_BINS}, (b+1)/{ECE_BINS}] of the top-label confidence conf_i = max(p_i, 1 - p_i), "
           "acc_b the fraction of bin b's rows with y_i = 1[p_i > 0.5], conf_b their mean confidence", False, "score", True,
           f"expected calibration error ({ECE_BINS} bins)", _GUO, binary_only=True,
           function="expected_calibration_error"),
    Metric("ece", "ece_g = the ECE of group g's rows (n_b, acc_b, conf_b counted within the group)", False,
           "score", True, "expected calibration error of group {group}", _GUO, per_group=True,
           binary_only=True, function="calibration_by_group"),
    Metric("ece_gap", "max_g ece_g - min_g ece_g over non-empty groups", False, "score", True,
           "calibration gap (max − min group ECE)", _GUO, binary_only=True, gap=True, function="ece_gap"),
    Metric("brier", "Brier = (1/n) sum_i (p_i - y_i)^2, p_i the score (probability of class 1)", False,
           "score", True, "Brier score", _BRIER, binary_only=True, function="brier_score"),
    Metric("brier", "brier_g = (1/n_g) sum_{i in g} (p_i - y_i)^2", False, "score", True,
           "Brier score of group {group}", _BRIER, per_group=True, binary_only=True,
           function="calibration_by_group"),
)

#: What each display shows by default, in its order. A per-group key (``acc[<group>]``) stands for the
#: family's columns, group by group.
VIEWS: dict[str, tuple[str, ...]] = {
    # the table printed after `fairrun train` and `fairrun eval` (fairrun.report.console)
    "console": ("n", "accuracy", "balanced_accuracy", "auc", "worst_group_acc", "worst_cell_acc", "acc_gap",
                "acc_var", "dp_diff", "eo_diff", "eopp_diff", f"acc[{GROUP}]"),
    # validation scalars written to TensorBoard after each evaluation: val/<name>, val_group_<name>/<group>
    "tensorboard": ("accuracy", "balanced_accuracy", "worst_group_acc", "worst_cell_acc", "acc_gap",
                    "acc_var", "dp_diff", "eo_diff", "eopp_diff", "auc", f"acc[{GROUP}]"),
    # test metrics of TensorBoard's HParams dashboard: hparam/test_<name>
    "hparams": ("accuracy", "worst_group_acc", "acc_gap", "dp_diff", "eo_diff", "eopp_diff"),
    # the columns of `fairrun report` without --metrics (plus epsilon when a run is private)
    "report": ("accuracy", "worst_group_acc", "acc_gap", "dp_diff", "eo_diff"),
}

_PER_GROUP = re.compile(r"(\w+)\[(.*)\]", re.DOTALL)


def _family(name: str, inside: str) -> tuple[str, str]:
    """(registry key, group or ``group,class``) of a column ``name[inside]``: a per-cell column when
    ``name`` has a per-cell family and ``inside`` holds a comma (group names join values with '/',
    never ','), else a per-group one."""
    cell = f"{name}[{GROUP},{CLASS}]"
    if "," in inside and cell in REGISTRY:
        return cell, inside
    return f"{name}[{GROUP}]", inside


def split_column(column: str) -> tuple[str, str | None, str | None]:
    """``(key, group, suffix)`` of a results column: ``acc[Male]_lo`` -> ``("acc[<group>]", "Male", "_lo")``,
    ``acc[Male,1]`` -> ``("acc[<group>,<class>]", "Male,1", None)``.

    ``key`` is the registry key the column belongs to (the column itself when nothing matches);
    ``group`` the group name of a per-group column (``group,class`` of a per-cell one), ``suffix`` the
    bootstrap suffix, or None.
    """
    column = str(column)
    for suffix in (None, *INTERVAL_SUFFIXES):
        if suffix is None:
            base = column
        elif column.endswith(suffix) and len(column) > len(suffix):
            base = column[:-len(suffix)]
        else:
            continue
        match = _PER_GROUP.fullmatch(base)
        key, group = _family(match.group(1), match.group(2)) if match else (base, None)
        if key in REGISTRY:
            return key, group, suffix
    match = _PER_GROUP.fullmatch(column)
    return (*_family(match.group(1), match.group(2)), None) if match else (column, None, None)


def find(column: str) -> Metric | None:
    """The entry of any results column (overall, per-group, interval), or None for other columns."""
    return REGISTRY.get(split_column(column)[0])


def metric(column: str) -> Metric:
    """The entry of a results column; KeyError naming the registered metrics for anything else."""
    found = find(column)
    if found is None:
        raise KeyError(f"{column!r} is not a registered metric (registered: {', '.join(REGISTRY)})")
    return found


def direction(column: str) -> bool | None:
    """``higher_is_better`` of the column's metric: True, False, or None (descriptive)."""
    return metric(column).higher_is_better


def better(column: str, value: float, than: float) -> bool:
    """Whether ``value`` is strictly better than ``than`` for this metric (False if either is NaN).

    ValueError for a descriptive metric (``n``, ``sel[<group>]``), which has no better.
    """
    higher = _ranked(column)
    return value > than if higher else value < than


def best_index(column: str, values) -> int | None:
    """Position of the best value among ``values`` by the metric's direction (the first of ties);
    None when no value is a number. ValueError for a descriptive metric."""
    higher = _ranked(column)
    values, best = list(values), None
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if best is None or (v > values[best] if higher else v < values[best]):
            best = i
    return best


def _ranked(column: str) -> bool:
    higher = direction(column)
    if higher is None:
        raise ValueError(f"{column!r} describes the data and has no better or worse value; "
                         f"choose a metric with a direction")
    return higher


def label(column: str) -> str:
    """How plots and tables name a column: the registered label, per group with its group, the
    interval columns as the bootstrap ends of it; an unregistered ``x[g]`` is "x of group g"."""
    key, group, suffix = split_column(column)
    entry = REGISTRY.get(key)
    if entry is None:
        match = _PER_GROUP.fullmatch(str(column))
        return f"{match.group(1)} of group {match.group(2)}" if match else str(column)
    if entry.per_cell:
        cell_group, _, cls = group.partition(",")
        text = entry.label.format(group=cell_group, cls=cls)
    else:
        text = entry.label.format(group=group) if entry.per_group else entry.label
    ends = {"_lo": "lower end", "_median": "median", "_hi": "upper end"}
    return f"{text}, bootstrap {ends[suffix]}" if suffix else text


def format_value(column: str, value) -> str:
    """``value`` in the column's registered format (``nan`` for a missing value)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return format(value, metric(column).format)


def view(name: str) -> tuple[Metric, ...]:
    """The metrics a display (a key of ``VIEWS``) shows, in its order."""
    return tuple(REGISTRY[key] for key in VIEWS[name])


def view_columns(name: str, columns) -> list[str]:
    """The columns among ``columns`` that the display ``name`` shows, in the view's order; a per-group
    family brings its columns (not the interval ones) in the order of ``columns``."""
    columns = [str(c) for c in columns]
    out = []
    for m in view(name):
        if m.per_group:
            out += [c for c in columns if split_column(c)[0] == m.key and split_column(c)[2] is None]
        elif m.name in columns:
            out.append(m.name)
    return out


def metrics(kind: str | None = None, per_group: bool | None = None, bootstraps: bool | None = None,
            per_cell: bool | None = None) -> list[Metric]:
    """The entries in registry order, optionally only those of a kind, per-group or not, per-cell or not,
    bootstrapped or not. ``per_group=False`` means the overall columns: neither per-group nor per-cell."""
    return [m for m in REGISTRY.values()
            if (kind is None or m.kind == kind)
            and (per_group is None or m.per_group == per_group and (per_group or not m.per_cell))
            and (per_cell is None or m.per_cell == per_cell)
            and (bootstraps is None or m.bootstraps == bootstraps)]


def gaps() -> tuple[str, ...]:
    """The fairness gaps (0 at parity, lower is fairer), in registry order."""
    return tuple(m.name for m in REGISTRY.values() if m.gap)


# ---------------------------------------------------------------- the table of docs/metrics.md

TABLE_START = "<!-- metric-registry-table:start (python -m fairrun.metrics --markdown docs/metrics.md) -->"
TABLE_END = "<!-- metric-registry-table:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table() -> str:
    """The registry as the Markdown table of docs/metrics.md."""
    arrows = {"higher": "higher", "lower": "lower", "none": "–"}
    lines = ["| column | definition | better | kind | bootstrap interval | reference |",
             "|---|---|---|---|---|---|"]
    for m in REGISTRY.values():
        column = f"`{m.key}`" + (" (binary)" if m.binary_only else "")
        lines.append(f"| {column} | {_cell(m.definition)} | {arrows[m.direction]} | {m.kind} | "
                     f"{'yes' if m.bootstraps else 'no'} | {_cell(m.reference)} |")
    return "\n".join(lines)


def replace_table(text: str) -> str:
    """``text`` (docs/metrics.md) with the block between the table markers replaced by :func:`markdown_table`."""
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"the table markers are missing: {TABLE_START} ... {TABLE_END}")
    return text[:start + len(TABLE_START)] + "\n" + markdown_table() + "\n" + text[end:]


def table_in(text: str) -> str:
    """The block between the table markers of ``text`` (stripped)."""
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"the table markers are missing: {TABLE_START} ... {TABLE_END}")
    return text[start + len(TABLE_START):end].strip()


def main(argv: list[str]) -> int:
    """``python -m fairrun.metrics --markdown [FILE]``: print the table, or rewrite it in FILE."""
    if not argv or argv[0] != "--markdown" or len(argv) > 2:
        print("usage: python -m fairrun.metrics --markdown [docs/metrics.md]", file=sys.stderr)
        return 2
    if len(argv) == 1:
        print(markdown_table())
        return 0
    path = Path(argv[1])
    path.write_text(replace_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote the metric table of {path}")
    return 0

