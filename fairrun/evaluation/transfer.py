"""Cross-dataset evaluation: a trained model scored on another dataset's test split.

The FairFace notebook trained gender classifiers on FairFace and measured them on IMDB; fairrun
does this for any pair of datasets. The other dataset's target values are matched to the model's
classes *by name* (every reader calls gender ``Female``/``Male``; other names can be mapped with
``dataset.value_map``, e.g. FairFace's 7 races merged into UTKFace's 5 with
``dataset.race_groups=5``), groups are the other dataset's own protected groups, and images are
decoded at the model's input size. Rows are appended to results.pkl with ``split=<dataset>:test``.
"""
from __future__ import annotations

import logging
import dataclasses
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from fairrun import rundir
from fairrun.core.validation import typed_section
from fairrun.data.base import LabeledSplit
from fairrun.data.groups import label_split
from fairrun.data.registry import DATASETS, read_splits, validate_dataset_config
from fairrun.core.errors import ConfigError, FairrunError
from fairrun.evaluation.predictions import DecisionRule, measure, raw_predictions

log = logging.getLogger("fairrun")


def dataset_defaults(name: str) -> dict:
    """The keys of ``dataset=<name>`` with their defaults (its schema, as ``dataset=<name>`` composes)."""
    if name not in DATASETS:
        raise ConfigError(f"Unknown dataset {name!r} in eval_datasets. Available datasets: "
                          f"{', '.join(sorted(DATASETS))}.")
    return dataclasses.asdict(DATASETS[name].Config())


def entry_dict(entry: Any) -> dict:
    """An ``eval_datasets`` entry as a dict: a dataset name, or a mapping with ``name`` and keys."""
    if isinstance(entry, str):
        return {"name": entry}
    if isinstance(entry, DictConfig):
        entry = OmegaConf.to_container(entry, resolve=True)
    if not isinstance(entry, dict) or "name" not in entry:
        raise ConfigError(f"Invalid eval_datasets entry {entry!r}. Expected a dataset name or a mapping "
                          f"with 'name' and dataset keys, e.g. eval_datasets=[{{name:utkface,root:/data/UTKFace}}].")
    return dict(entry)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _leave_room_for_test(merged: dict, given: dict) -> None:
    """Cross-dataset evaluation reads the test split only, so no val split is needed: where
    ``val_fraction + test_fraction`` would exceed 1 (``test_fraction=1.0``: every image is a test image),
    ``val_fraction`` shrinks to what is left (0 for 1.0) instead of failing the check a training run needs.
    Where the two fit, nothing changes, so the carved test split is the same as with the dataset's YAML."""
    val, test = merged.get("val_fraction"), merged.get("test_fraction")
    if not (_number(val) and _number(test) and 0 <= test <= 1 and 0 <= val < 1) or val + test <= 1:
        return  # fits, or out of range: the dataset's own check names the bad value
    merged["val_fraction"] = round(1 - test, 12)
    if "val_fraction" in given:
        log.warning("%s: dataset.val_fraction=%s ignored for cross-dataset evaluation (only the test split, "
                    "dataset.test_fraction=%s, is read): val_fraction=%s", given["name"], val, test,
                    merged["val_fraction"])


def eval_dataset_config(entry: Any, run_dataset) -> Any:
    """The validated dataset config to evaluate a model trained with ``run_dataset`` on.

    Keys not given in ``entry`` come from the dataset's YAML, except: ``target`` and ``protected``
    default to the training run's when the other dataset has attributes of those names (checked
    when read), ``image_size`` is always the model's input size, and ``val_fraction`` gives way to
    ``test_fraction`` (only the test split is read; ``test_fraction=1.0`` needs no ``val_fraction=0``).
    """
    given = entry_dict(entry)
    merged = {**dataset_defaults(given["name"]), **given}
    for key in ("target", "protected"):
        if key not in given:
            merged[key] = getattr(run_dataset, key)
    if "image_size" in given and given["image_size"] != run_dataset.image_size:
        log.warning("dataset.image_size=%s ignored for cross-dataset evaluation: the model takes %spx images",
                    given["image_size"], run_dataset.image_size)
    merged["image_size"] = run_dataset.image_size
    _leave_room_for_test(merged, given)
    cfg = typed_section("dataset", DATASETS[given["name"]].Config, merged)
    validate_dataset_config(cfg)
    return cfg


def match_classes(split: LabeledSplit, model_classes: list[str], dataset: str) -> LabeledSplit:
    """Relabel ``split`` so that label k means the model's class ``model_classes[k]`` (matched by name)."""
    unknown = [name for name in split.class_names if name not in model_classes]
    if unknown:
        raise FairrunError(
            f"Cannot evaluate on {dataset}: its target values {split.class_names} include {unknown}, which the "
            f"model does not predict (its classes: {model_classes}). Map them onto the model's class names "
            f"with dataset.value_map, e.g. dataset.value_map={{<target>: {{{unknown[0]!r}: {model_classes[0]!r}}}}}."
        )
    recode = torch.tensor([model_classes.index(name) for name in split.class_names], dtype=torch.int64)
    return replace(split, y=recode[split.y], class_names=list(model_classes))


def split_label(cfg, split: str = "test") -> str:
    """The ``split`` column value of a cross-dataset row: ``<dataset>:<split>``."""
    return f"{cfg.name}:{split}"


def evaluate_on_dataset(model, method, ds_cfg, model_classes: list[str], batch_size: int,
                        device: torch.device, amp: str = "off", workers: int = 0,
                        split: str = "test", threshold: float | None = None) -> tuple[dict, pd.DataFrame]:
    """Metrics and predictions of the model on ``split`` of another dataset (labels matched by name).

    Binary decisions use the run's own ``threshold`` (chosen on its validation set); group-specific
    post-processing is not transferred, since the other dataset's groups differ.
    """
    raw = read_splits(ds_cfg, workers)
    labelled = label_split(split, raw[split], ds_cfg.target, ds_cfg.protected)
    if len(labelled) == 0:
        raise FairrunError(f"The {split} split of dataset={ds_cfg.name} is empty; set dataset.test_fraction "
                           f"(e.g. 1.0 to evaluate on every image).")
    labelled = match_classes(labelled, model_classes, ds_cfg.name)
    name = split_label(ds_cfg, split)
    rule = DecisionRule(threshold if labelled.num_classes == 2 else None)
    pred = raw_predictions(model, method, labelled, name, batch_size, device, amp)
    [(_, metrics, pred)] = measure(pred, rule, name, labelled.group_names, labelled.num_classes)
    log.info("%s: accuracy %.4f, worst-group %.4f over %d images", name, metrics["accuracy"],
             metrics["worst_group_acc"], len(labelled))
    return {"split": name, "eval_target": ds_cfg.target,
            "eval_protected": ds_cfg.protected if isinstance(ds_cfg.protected, str) else "+".join(ds_cfg.protected),
            **metrics}, pred


def append_rows(run_dir: Path, base: dict, rows: Iterable[dict], preds: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Add cross-dataset rows to results.pkl, replacing earlier rows of the same split.

    Each dataset's predictions go to ``predictions_<dataset>.pkl`` (its groups differ from the
    training dataset's, so they do not share predictions.pkl's categorical group column).
    """
    new = pd.DataFrame([{**base, **row} for row in rows])
    results_path = run_dir / rundir.RESULTS
    old = rundir.read_results(results_path) if results_path.is_file() else pd.DataFrame()  # never unpickled
    if len(old):
        old = old[~old["split"].isin(set(new["split"]))]
    results = pd.concat([old, new], ignore_index=True)
    rundir.write_pickle(results, results_path)
    for pred in preds:
        dataset = str(pred["split"].iloc[0]).split(":")[0] if len(pred) else "empty"
        rundir.write_pickle(pred, run_dir / f"predictions_{dataset}.pkl")
    return results
