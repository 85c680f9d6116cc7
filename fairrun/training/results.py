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


def run_metadata(cfg: RunConfig, run_dir: Path, overrides: list[str] | None = None) -> dict:
    """The columns that identify a run in results.pkl (sweep coordinates). ``arm``: the arm's name (``arm=NAME``,
    conf/arm/), else the method's name, so that a report grouped by arm also groups runs launched without one.
    ``imbalance_splits``: the splits that ``imbalance`` skewed (:func:`fairrun.data.imbalance.skewed_splits`),
    joined with ``+``, or ``none``.

    Then the run's parameters (:func:`parameter_columns`): the method's own keys (``method.lam``) and every
    overridden key (``imbalance.size``, ``trainer.lr``) as ``section.key`` columns, so a sweep's table needs
    no parsing of override strings. ``overrides``: the overrides the run was launched with; by default those
    recorded in ``<run_dir>/.hydra/overrides.yaml`` (:func:`recorded_overrides`; written when a launch's config
    is accepted, so a run finished in-process after a CLI launch has the same columns), else the running
    Hydra job's."""
    from fairrun.data.imbalance import skewed_splits

    if overrides is None and (Path(run_dir) / ".hydra" / "overrides.yaml").is_file():
        overrides = recorded_overrides(run_dir)

    protected = cfg.dataset.protected
    identity = {
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
    return {**identity, **parameter_columns(cfg, overrides)}


# config keys whose value is already an identity column of results.pkl (under the name on the right, maybe in
# another form: imbalance.splits is joined with "+"): run_parameters' column for them is left out
IDENTITY_KEYS = {"seed": "seed", "imbalance.ratio": "imbalance_ratio", "imbalance.splits": "imbalance_splits",
                 "dataset.name": "dataset", "dataset.target": "target", "dataset.protected": "protected",
                 "model.name": "model", "method.name": "method", "arm": "arm", "init_from": "init_from"}


def parameter_columns(cfg: RunConfig, overrides: list[str] | None = None) -> dict:
    """:func:`run_parameters` without the keys that are already identity columns (:data:`IDENTITY_KEYS`:
    ``seed``, ``imbalance.ratio`` is ``imbalance_ratio``, ``dataset.target`` is ``target``, ...)."""
    return {key: value for key, value in run_parameters(cfg, overrides).items() if key not in IDENTITY_KEYS}


def recorded_overrides(run_dir: Path) -> list[str]:
    """The overrides a finished run was launched with (``<run_dir>/.hydra/overrides.yaml``, read with
    ``yaml.safe_load``), or ``[]`` when the file is absent or unreadable (the parameter columns are then the
    method's keys alone)."""
    import yaml

    try:
        items = yaml.safe_load((Path(run_dir) / ".hydra" / "overrides.yaml").read_text()) or []
    except (OSError, yaml.YAMLError):
        return []
    return [str(item) for item in items] if isinstance(items, list) else []


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
