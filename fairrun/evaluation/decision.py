"""From scores to decisions: the decision threshold (``eval.threshold``) and threshold post-processing.

Binary targets only; multi-class targets always predict the arg-max class.

* ``eval.threshold``: ``0.5`` (default; ŷ = 1[P(y=1) > 0.5], the arg-max), any number in (0, 1),
  ``calibrated`` (chosen on validation so that the number of predicted positives equals the number
  of true positives, as Ramaswamy et al., CVPR 2021 evaluate) or ``f1`` (the validation-F1-optimal
  threshold). The threshold chosen on validation is reused unchanged on test and on other datasets,
  and recorded in results.pkl (``threshold``) and in best.pt.
* ``postprocess=threshold``: group-specific (randomised) thresholds fitted on the validation set with
  fairlearn's ``ThresholdOptimizer`` (Hardt, Price & Srebro, "Equality of Opportunity in Supervised
  Learning", NeurIPS 2016) under ``postprocess.constraint``, applied to test.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fairrun.core.errors import ConfigError

log = logging.getLogger("fairrun")

THRESHOLD_RULES = ("calibrated", "f1")
CONSTRAINTS = ("demographic_parity", "equalized_odds", "true_positive_rate_parity",
               "false_positive_rate_parity")
OBJECTIVES = ("accuracy_score", "balanced_accuracy_score")


@dataclass
class EvalConfig:
    """``eval.*``: how scores become decisions for the label-based metrics."""

    threshold: Any = 0.5  # a number in (0, 1), calibrated, or f1
    bootstrap: int = 1000  # bootstrap replicates for the <metric>_lo/_median/_hi columns; 0 = none
    confidence: float = 0.95  # level of the percentile-bootstrap intervals
    bootstrap_scores: Any = "auto"  # intervals of auc/ap/kl/ti_gap too: true, false, or auto (N x B <= 5e7)

    def validate(self) -> None:
        if isinstance(self.bootstrap, bool) or not isinstance(self.bootstrap, int) or self.bootstrap < 0:
            raise ConfigError(f"Invalid value for 'eval.bootstrap': {self.bootstrap!r}. Accepted: the number "
                              f"of bootstrap replicates, an integer >= 0 (default 1000; 0 = no intervals).")
        if not (isinstance(self.confidence, (int, float)) and not isinstance(self.confidence, bool)
                and 0 < self.confidence < 1):
            raise ConfigError(f"Invalid value for 'eval.confidence': {self.confidence!r}. Accepted: a number "
                              f"in (0, 1), e.g. 0.95 for 95% intervals.")
        if self.bootstrap_scores not in (True, False, "auto"):
            raise ConfigError(f"Invalid value for 'eval.bootstrap_scores': {self.bootstrap_scores!r}. Accepted: "
                              f"true, false or auto (when test rows x replicates <= 50 million).")
        t = self.threshold
        ok = t in THRESHOLD_RULES or (isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t < 1)
        if not ok:
            raise ConfigError(f"Invalid value for 'eval.threshold': {t!r}. Accepted: a number in (0, 1) "
                              f"(default 0.5), calibrated (predicted positives = true positives on validation) "
                              f"or f1 (the validation-F1-optimal threshold).")


@dataclass
class PostprocessConfig:
    """``postprocess=none|threshold``: fairlearn ThresholdOptimizer fitted on validation."""

    name: str = "none"
    # demographic_parity | equalized_odds | true_positive_rate_parity | false_positive_rate_parity
    constraint: str = "demographic_parity"
    # accuracy_score | balanced_accuracy_score (maximised under the constraint)
    objective: str = "accuracy_score"
    grid_size: int = 1000  # thresholds searched per group

    def validate(self) -> None:
        if self.name not in ("none", "threshold"):
            raise ConfigError(f"Invalid value for 'postprocess': {self.name!r}. Accepted: none or threshold.")
        if self.constraint not in CONSTRAINTS:
            raise ConfigError(f"Invalid value for 'postprocess.constraint': {self.constraint!r}. Accepted: "
                              f"{', '.join(CONSTRAINTS)}.")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"Invalid value for 'postprocess.objective': {self.objective!r}. Accepted: "
                              f"{', '.join(OBJECTIVES)}.")
        if self.grid_size < 2:
            raise ConfigError(f"Invalid value for 'postprocess.grid_size': {self.grid_size}. Accepted: an "
                              f"integer >= 2.")


def threshold_for_top_k(scores: np.ndarray, k: int) -> float:
    """A threshold t with exactly the k highest scores above it (t midway between the k-th and k+1-th)."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if k <= 0:
        return float(np.nextafter(ordered[0], np.inf)) if len(ordered) else 0.5
    if k >= len(ordered):
        return float(np.nextafter(ordered[-1], -np.inf))
    return float((ordered[k - 1] + ordered[k]) / 2)


def calibrated_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The threshold that predicts as many positives as there are true positives (on validation)."""
    return threshold_for_top_k(scores, int(np.sum(np.asarray(y_true) == 1)))


def f1_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The threshold maximising F1 = 2·TP / (predicted positives + positives) over top-k cut-offs."""
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(y_true[order] == 1)
    k = np.arange(1, len(scores) + 1)
    f1 = 2 * tp / (k + max(int(np.sum(y_true == 1)), 1))
    distinct = np.r_[scores[order][1:] != scores[order][:-1], True]  # cut only between distinct scores
    f1 = np.where(distinct, f1, -1)
    return threshold_for_top_k(scores, int(k[np.argmax(f1)]))


def choose_threshold(setting: Any, val: pd.DataFrame) -> float:
    """The decision threshold for ``eval.threshold`` from the validation predictions (``y_true``, ``y_score``)."""
    if setting == "calibrated":
        return calibrated_threshold(val["y_true"].to_numpy(), val["y_score"].to_numpy())
    if setting == "f1":
        return f1_threshold(val["y_true"].to_numpy(), val["y_score"].to_numpy())
    return float(setting)


def apply_threshold(pred: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Binary predictions with ŷ = 1[y_score > threshold]."""
    return pred.assign(y_pred=(pred["y_score"].to_numpy() > threshold).astype(np.int64))


def score_passthrough():
    """A fitted scikit-learn binary classifier whose P(y=1) is the first column of X.

    Lets fairlearn's ThresholdOptimizer (``prefit=True``) post-process the scores fairrun already
    has. Built on first use, so importing fairrun does not import scikit-learn.
    """
    from sklearn.base import BaseEstimator, ClassifierMixin

    class ScorePassthrough(ClassifierMixin, BaseEstimator):
        def fit(self, X, y=None, **kwargs):
            self.classes_ = np.array([0, 1])
            return self

        def predict_proba(self, X) -> np.ndarray:
            s = np.asarray(X, dtype=np.float64)[:, 0]
            return np.stack([1 - s, s], axis=1)

        def predict(self, X) -> np.ndarray:
            return (np.asarray(X, dtype=np.float64)[:, 0] > 0.5).astype(np.int64)

    return ScorePassthrough().fit(None)


def fit_threshold_optimizer(cfg: PostprocessConfig, val: pd.DataFrame):
    """fairlearn ThresholdOptimizer fitted on validation scores, labels and groups."""
    try:
        from fairlearn.postprocessing import ThresholdOptimizer
    except ImportError:  # pragma: no cover - fairlearn is a dependency
        raise ConfigError("postprocess=threshold needs fairlearn: pip install fairlearn") from None
    optimizer = ThresholdOptimizer(estimator=score_passthrough(), constraints=cfg.constraint,
                                   objective=cfg.objective, grid_size=cfg.grid_size, prefit=True,
                                   predict_method="predict_proba")
    optimizer.fit(val[["y_score"]].to_numpy(), val["y_true"].to_numpy(),
                  sensitive_features=val["group"].astype(str).to_numpy())
    return optimizer


def postprocessed(optimizer, pred: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Predictions with ŷ from the fitted ThresholdOptimizer (randomised between thresholds, seeded)."""
    y_pred = optimizer.predict(pred[["y_score"]].to_numpy(), sensitive_features=pred["group"].astype(str).to_numpy(),
                               random_state=seed)
    return pred.assign(y_pred=np.asarray(y_pred, dtype=np.int64))
