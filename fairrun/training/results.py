"""What identifies a run in its results rows (sweep coordinates, the privacy columns every row has)."""
from __future__ import annotations

import logging
from pathlib import Path

from fairrun.config import RunConfig

log = logging.getLogger("fairrun")


EVAL_SPLITS = ("val", "test")
# Every results row has the privacy columns, NaN for non-private runs, so sweeps mixing private and
# non-private runs form one table; private methods fill them through ``extra_results``.
PRIVACY_COLUMNS = {"epsilon": float("nan"), "delta": float("nan"), "noise_multiplier": float("nan"),
                   "max_grad_norm": float("nan")}


def run_metadata(cfg: RunConfig, run_dir: Path) -> dict:
    """The columns that identify a run in results.pkl (sweep coordinates). ``arm``: the arm's name (``arm=NAME``,
    conf/arm/), else the method's name, so that a report grouped by arm also groups runs launched without one.
    ``imbalance_splits``: the splits that ``imbalance`` skewed (:func:`fairrun.data.imbalance.skewed_splits`),
    joined with ``+``, or ``none``."""
    from fairrun.data.imbalance import skewed_splits

    protected = cfg.dataset.protected
    return {
        "run_dir": str(run_dir),
        "split": None,  # filled per evaluated split; keeps the column second
        "dataset": cfg.dataset.name,
        "target": cfg.dataset.target,
        "protected": protected if isinstance(protected, str) else "+".join(protected),
        "model": cfg.model.name,
        "method": cfg.method.name,
        "arm": cfg.arm if cfg.arm is not None else cfg.method.name,
        "imbalance_ratio": float("nan") if cfg.imbalance.ratio is None else float(cfg.imbalance.ratio),
        # the splits imbalance sampling changed, joined with + ("train", "train+val+test"); "none" when unset
        "imbalance_splits": "+".join(skewed_splits(cfg.imbalance)) or "none",
        "seed": cfg.seed,
        "init_from": None if cfg.init_from is None else str(Path(cfg.init_from).expanduser().resolve()),
    }


def selection_columns(select: str, value: float) -> dict:
    """The columns that say how the evaluated checkpoint was chosen: ``selected_by`` (``trainer.select``) and
    ``selected_value`` (its validation value at ``best_epoch``)."""
    return {"selected_by": select, "selected_value": float(value)}
