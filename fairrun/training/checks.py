"""Checks before a run trains: every group x label cell has training rows, and a run directory holds this
run or none (a relaunch with another configuration is refused)."""
from __future__ import annotations

import logging
from pathlib import Path

from fairrun import rundir
from fairrun.config import RunConfig, load_run_config
from fairrun.core.errors import ConfigError
from fairrun.metrics import registry

log = logging.getLogger("fairrun")


def require_every_cell_trained(train, cfg: RunConfig) -> None:
    """Refuse a training split in which a protected group or a target class has no rows.

    Such a run trains, but its numbers describe something else than its config says (a model that never
    saw group B, an imbalance ratio that rounded a group away, a "classifier" of one class with accuracy
    1.0), so it stops before training, naming the empty cells and the cure.
    """
    if len(train) == 0:
        raise ConfigError("The training set is empty after imbalance sampling; check imbalance.* keys.")
    counts = train.counts()
    groups, classes = counts.sum(axis=1), counts.sum(axis=0)
    # imbalance.ratio=1 (or 0) asks for the majority group alone (the imbalance study's first ratio): an
    # explicit choice, recorded as ratio 1 and n_train[<group>] = 0, not a rounding accident.
    excluded_on_purpose = cfg.imbalance.ratio is not None and float(cfg.imbalance.ratio) in (0.0, 1.0)
    empty_groups = [] if excluded_on_purpose else [str(name) for name, n in groups.items() if n == 0]
    empty_classes = [str(name) for name, n in classes.items() if n == 0]
    if not empty_groups and not empty_classes and len(classes) >= 2:
        return
    imb = cfg.imbalance
    problems = []
    if empty_groups:
        problems.append(f"protected group(s) {', '.join(empty_groups)} of {cfg.dataset.protected!r}")
    if empty_classes:
        problems.append(f"class(es) {', '.join(empty_classes)} of target {cfg.dataset.target!r}")
    if len(classes) < 2:
        problems.append(f"all but one class of target {cfg.dataset.target!r} (only {list(classes.index)})")
    cure = ("Raise imbalance.size or move imbalance.ratio away from 0/1 (with "
            f"imbalance.ratio={imb.ratio} and imbalance.size={imb.size} the minority share rounds to zero rows)"
            if imb.ratio is not None else
            "Check the dataset's labels and dataset.value_map, or choose another target/protected attribute")
    raise ConfigError(f"The training split has no rows of {' and '.join(problems)} ({len(train)} training "
                      f"rows; group x label counts: {counts.to_dict(orient='index')}). A model trained on it "
                      f"would report metrics for rows it never learned from. {cure}.")


def selectable_metrics() -> list[str]:
    """The metrics ``trainer.select`` accepts: every registered column of a validation row that has a
    direction (a fairness gap is minimised), in registry order."""
    return [m.name for m in registry.metrics(per_group=False) if m.direction != "none"]


def require_select_metric(trainer) -> None:
    """Raise ConfigError unless ``trainer.select`` names a metric that picks a checkpoint (one paragraph
    listing the accepted names)."""
    accepted = selectable_metrics()
    if trainer.select in accepted:
        return
    found = registry.find(trainer.select) or next(
        (m for m in registry.metrics(per_group=True) if m.name == trainer.select), None)
    if found is None:
        why = "is not a registered metric"
    elif found.direction == "none":
        why = "describes the data and has no better or worse value"
    else:
        why = "is not a validation metric of one column (it is a per-group family)"
    raise ConfigError(f"Invalid value for 'trainer.select': {trainer.select!r} {why}. trainer.select picks "
                      f"the checkpoint that is evaluated (best.pt) by its validation value, better by the "
                      f"metric's direction (a gap is minimised); the accepted names are: "
                      f"{', '.join(accepted)}. GroupDRO and SubpopBench select on worst_group_acc.")


def model_io(train) -> dict:
    """What a checkpoint must record to rebuild and use the model without the training data."""
    return {"class_names": list(train.class_names), "group_names": list(train.group_names),
            "image_shape": list(train.images.shape[1:])}


def check_same_config(cfg: RunConfig, run_dir: Path, held: str = "a finished run") -> None:
    """Raise ConfigError (:class:`~fairrun.rundir.lock.RunDirRefused`: nothing is written into ``run_dir``) when
    ``run_dir`` holds a run (``held``) of a different configuration; the message names the keys that differ."""
    from fairrun.rundir.lock import RunDirRefused, config_differences

    saved = load_run_config(run_dir / rundir.RUN_CONFIG)
    if saved.fingerprint() != cfg.fingerprint():
        raise RunDirRefused(
            f"{run_dir} already holds {held} with a different configuration "
            f"({config_differences(saved, cfg)}), so this launch leaves it untouched. Launch into a new run "
            f"directory (hydra.run.dir=NEW_DIR, or hydra.sweep.dir=NEW_DIR with -m), or pass resume=false to "
            f"train this directory over (its checkpoints and results are deleted)."
        )
