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


# config groups whose choice (``method=groupdro``) is already a results column (``method``, ``model``, ...) or
# a label of the launch rather than a setting of the run
GROUP_CHOICES = ("dataset", "model", "method", "imbalance", "gpu", "trainer", "postprocess", "arm", "study",
                 "sweep", "eval")


def job_overrides() -> list[str]:
    """The command-line overrides of the running Hydra job (a multirun job's own values of the swept keys
    included), or ``[]`` outside a Hydra app."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def _scalar(value):
    """A value a DataFrame cell and TensorBoard's HParams can hold: numbers, strings, booleans and None as
    they are, anything else (a list, a dict) as its text."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def run_parameters(cfg: RunConfig, overrides: list[str] | None = None) -> dict:
    """The settings that tell runs of a sweep apart, as flat ``section.key`` columns: every key of the method's
    own section (``method.lam``, ``method.scheme``; not its ``name``, already the ``method`` column) and every
    key set by an override (``imbalance.size``, ``trainer.lr``), with the value of the validated config.
    ``overrides`` defaults to the running Hydra job's (:func:`job_overrides`); a config-group choice
    (``method=groupdro``) and Hydra's own keys are left out."""
    plain = cfg.to_dict()
    params = {f"method.{key}": _scalar(value) for key, value in plain["method"].items()
              if key not in ("name", "_target_")}
    for override in job_overrides() if overrides is None else overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if "/" in key or key.startswith("hydra") or key in GROUP_CHOICES or "=" not in override:
            continue
        node = plain
        for part in key.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is not _MISSING:
            params[key] = _scalar(node)
    return params


_MISSING = object()
