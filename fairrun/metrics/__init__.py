"""Plain, vectorised fairness metrics for binary (and, where meaningful, multi-class) predictions.

Inputs are 1-D numpy arrays or torch tensors: true labels, predicted labels, integer group ids
0..G-1 and, optionally, scores (probability of class 1). Per-group counts come from one
``np.bincount`` pass, so there are no per-row Python loops. Definitions follow fairlearn:
demographic parity difference, equalized odds difference (worst case of the TPR and FPR gaps),
equal opportunity difference (TPR gap, the DEO of Ramaswamy et al. 2021), plus accuracy gap,
variance ("unfairness" of the FairFace notebook), worst-group accuracy, per-cell (group x class)
accuracy and worst-cell accuracy (the worst-group accuracy of Sagawa et al. 2020), per-group confusion
counts, precision and F1, fairlearn's demographic parity and equalized odds ratios, ROC AUC and average
precision (overall and per group), calibration (expected calibration error with 15 bins, Guo et al. 2017,
overall, per group and its gap; Brier score), directional bias amplification (Wang & Russakovsky 2021),
the smoothed-histogram KL of Ramaswamy et al. 2021, a threshold-invariant gap (Wasserstein-1
between the groups' score distributions) and ABROCA. ``group_metrics`` returns them (all but
ABROCA and BiasAmp task -> attribute) as one flat dict for a results row.

Undefined values (empty groups, groups without positives or negatives, a single class) are NaN
and reported in one ``FairnessMetricWarning`` per call; gaps leave such groups out and are NaN
when fewer than two groups remain (fairlearn would report 0 for a single group). This module
knows nothing of models, training or Hydra configs.
"""

from ._common import FairnessMetricWarning
from .amplification import bias_amplification, bias_amplification_t_to_a
from .calibration import brier_score, calibration_by_group, ece_gap, expected_calibration_error
from .group import (
    acc_gap,
    acc_var,
    accuracy,
    balanced_accuracy,
    dp_diff,
    dp_ratio,
    eo_diff,
    eo_ratio,
    eopp_diff,
    group_metrics,
    per_cell_accuracy,
    per_group_confusion,
    per_group_rates,
    precision_f1_by_group,
    worst_cell_acc,
    worst_group_acc,
)
from .bootstrap import bootstrap_intervals
from .ranking import auc, average_precision
from .scores import abroca, group_average_precision, kl, ti_gap

__all__ = [
    "FairnessMetricWarning",
    "abroca",
    "acc_gap",
    "acc_var",
    "accuracy",
    "auc",
    "average_precision",
    "balanced_accuracy",
    "bias_amplification",
    "bias_amplification_t_to_a",
    "bootstrap_intervals",
    "brier_score",
    "calibration_by_group",
    "dp_diff",
    "dp_ratio",
    "ece_gap",
    "eo_diff",
    "eo_ratio",
    "eopp_diff",
    "expected_calibration_error",
    "group_average_precision",
    "group_metrics",
    "kl",
    "per_cell_accuracy",
    "per_group_confusion",
    "per_group_rates",
    "precision_f1_by_group",
    "ti_gap",
    "worst_cell_acc",
    "worst_group_acc",
]
