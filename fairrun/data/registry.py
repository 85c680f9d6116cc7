"""Dataset registry: YAML name -> (config dataclass, reader).

Every dataset config has the common keys ``name``, ``target``, ``protected`` (one attribute name or
a list for intersectional groups), ``image_size`` and ``root`` (for on-disk datasets).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from fairrun.data.base import LabeledSplit, SplitData
from fairrun.data.groups import check_attributes, label_split
from fairrun.data.synthetic import SyntheticConfig, make_synthetic, validate_synthetic
from fairrun.errors import ConfigError

SPLITS = ("train", "val", "test")


@dataclass
class SyntheticDatasetConfig(SyntheticConfig):
    """``dataset=synthetic``: procedurally drawn faces generated in memory (no files)."""

    name: str = "synthetic"
    target: str = "smiling"
    protected: Any = "group"
    root: Optional[str] = None


@dataclass
class DatasetEntry:
    schema: type
    read: Callable[[Any], dict[str, SplitData]]
    validate: Callable[[Any], None]


DATASETS: dict[str, DatasetEntry] = {
    "synthetic": DatasetEntry(SyntheticDatasetConfig, make_synthetic, validate_synthetic),
}
DATASET_SCHEMAS = {name: entry.schema for name, entry in DATASETS.items()}


def validate_dataset_config(cfg) -> None:
    """Range checks of a dataset config; raises ConfigError naming the key."""
    protected = cfg.protected
    if not (isinstance(protected, str) or
            (isinstance(protected, (list, tuple)) and all(isinstance(p, str) for p in protected))):
        raise ConfigError(f"Invalid value for 'dataset.protected': {protected!r}. Expected an attribute "
                          f"name or a list of attribute names (intersectional groups).")
    try:
        DATASETS[cfg.name].validate(cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def load_dataset(cfg) -> dict[str, LabeledSplit]:
    """Read the dataset and label every split for ``cfg.target`` and ``cfg.protected``."""
    raw = DATASETS[cfg.name].read(cfg)
    check_attributes(raw["train"].attribute_values, cfg.target, cfg.protected)
    return {name: label_split(name, raw[name], cfg.target, cfg.protected) for name in SPLITS}
