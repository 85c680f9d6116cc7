"""Dataset registry: YAML name -> dataset entry (config dataclass, reader, validator), open to a user's own.

Every dataset config has the common keys ``name``, ``target``, ``protected`` (one attribute name or
a list for intersectional groups), ``image_size`` and ``root`` (for on-disk datasets). On-disk
datasets share the keys of :class:`~fairrun.data.table.ImageDatasetConfig` and the path
table -> splits -> decoded-image cache of :mod:`fairrun.data.files`; each one adds one module with
``<Name>Config``, ``read_table(cfg)`` and ``validate(cfg)``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, ClassVar, Optional

from fairrun.data import celeba, csv_table, fairface, imdb_wiki, utkface
from fairrun.data.base import LabeledSplit, SplitData
from fairrun.data.files import load_image_dataset, validate_image_dataset
from fairrun.data.groups import check_attributes, label_split
from fairrun.data.synthetic import SyntheticConfig, make_synthetic, validate_synthetic
from fairrun.data.synthetic import attribute_names as synthetic_names
from fairrun.core.errors import ConfigError
from fairrun.core.registry import Registry

SPLITS = ("train", "val", "test")


@dataclass
class SyntheticDatasetConfig(SyntheticConfig):
    """``dataset=synthetic``: procedurally drawn faces generated in memory (no files)."""

    name: str = "synthetic"
    target: str = "smiling"  # the attribute to predict: smiling, group or glasses
    protected: Any = "group"  # an attribute name, or a list for intersectional groups: [group, glasses]
    root: Optional[str] = None  # unused: generated in memory


class Dataset:
    """A dataset entry: ``name`` (the YAML name), ``Config`` (its dataclass schema, with at least ``name``,
    ``target`` and ``protected``), :meth:`read` and :meth:`validate`.

    A user's dataset subclasses this in the user's own module and is selected by ``_target_`` in a YAML of the
    user's config dir (docs/extending.md); the built-in ones below are registered the same way.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    read_table: ClassVar[Optional[Callable]] = None  # on-disk datasets: the metadata reader (cache, fairrun data)

    @staticmethod
    def read(cfg, workers: int = 0) -> dict[str, SplitData]:
        """The ``train``, ``val`` and ``test`` splits: uint8 images (N, C, H, W) and one int64 column per
        attribute (:class:`~fairrun.data.base.SplitData`)."""
        raise NotImplementedError

    @staticmethod
    def validate(cfg) -> None:
        """Range checks of the config (raise ValueError or ConfigError naming the key); default: none."""

    @staticmethod
    def attribute_names(cfg) -> Optional[list[str]]:
        """The names ``dataset.target`` and ``dataset.protected`` may take, known without reading image data
        (checked before any work starts), or None when they are only known from the data (default)."""
        return None


def _check(entry) -> Optional[str]:
    if not callable(getattr(entry, "read", None)):
        return f"{entry!r} has no read(cfg, workers=0) returning the train/val/test splits"
    fields = {f.name for f in dataclasses.fields(entry.Config)}
    missing = [key for key in ("target", "protected") if key not in fields]
    if missing:
        return f"{entry.Config.__qualname__} lacks the field(s) {', '.join(missing)} every dataset config has"
    return None


DATASETS = Registry(
    "dataset",
    "A dataset is a subclass of fairrun.Dataset with name = \"mine\", Config = a dataclass holding name: str = "
    "\"mine\", target and protected, and a static read(cfg, workers=0) returning {'train', 'val', 'test'} "
    "fairrun.SplitData (docs/extending.md).",
    _check,
)


def _builtin(name: str, config: type, read: Callable, validate: Callable, read_table=None,
             attribute_names: Optional[Callable] = None) -> type:
    return DATASETS.register(type(name, (Dataset,), {
        "name": name, "Config": config, "read": staticmethod(read), "validate": staticmethod(validate),
        "read_table": staticmethod(read_table) if read_table is not None else None,
        "attribute_names": staticmethod(attribute_names or Dataset.attribute_names), "__module__": __name__}))


def _file_dataset(name: str, schema: type, module) -> type:
    def validate(cfg) -> None:
        validate_image_dataset(cfg)
        module.validate(cfg)

    return _builtin(name, schema, partial(load_image_dataset, read_table=module.read_table), validate,
                    module.read_table, module.attribute_names)


def _read_synthetic(cfg, workers: int = 0) -> dict[str, SplitData]:
    return make_synthetic(cfg)


_builtin("synthetic", SyntheticDatasetConfig, _read_synthetic, validate_synthetic,
         attribute_names=synthetic_names)
_file_dataset("celeba", celeba.CelebAConfig, celeba)
_file_dataset("fairface", fairface.FairFaceConfig, fairface)
_file_dataset("utkface", utkface.UTKFaceConfig, utkface)
_file_dataset("imdb_wiki", imdb_wiki.IMDBWikiConfig, imdb_wiki)
_file_dataset("csv", csv_table.CSVConfig, csv_table)


def validate_dataset_section(node: Any) -> Any:
    """Validate a ``dataset`` section alone (for commands that only read data): the typed dataclass."""
    dataset = DATASETS.typed(node)
    validate_dataset_config(dataset)
    return dataset


def validate_dataset_config(cfg) -> None:
    """Range checks of a dataset config; raises ConfigError naming the key."""
    protected = cfg.protected
    if not (isinstance(protected, str) or
            (isinstance(protected, (list, tuple)) and all(isinstance(p, str) for p in protected))):
        raise ConfigError(f"Invalid value for 'dataset.protected': {protected!r}. Expected an attribute "
                          f"name or a list of attribute names (intersectional groups).")
    entry = DATASETS[cfg.name]
    check_attribute_names(cfg, entry.attribute_names(cfg))
    try:
        entry.validate(cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def check_attribute_names(cfg, names: Optional[list[str]]) -> None:
    """Raise ConfigError (with the closest valid name) unless ``dataset.target`` and every name of
    ``dataset.protected`` are among ``names`` and distinct: the checks of
    :func:`~fairrun.data.groups.check_attributes` made before any data is generated or read. ``names`` None
    (a dataset whose attributes are only known from its data): nothing is checked here."""
    if names:
        check_attributes(names, cfg.target, cfg.protected, f"dataset={cfg.name}")


def read_splits(cfg, workers: int = 0) -> dict[str, SplitData]:
    """The raw train/val/test splits of a dataset (decoded images + all attributes)."""
    raw = DATASETS[cfg.name].read(cfg, workers=workers)
    check_attributes(raw["train"].attribute_values, cfg.target, cfg.protected)
    return raw


def load_dataset(cfg, workers: int = 0) -> dict[str, LabeledSplit]:
    """Read the dataset and label every split for ``cfg.target`` and ``cfg.protected``.

    ``workers``: image-decoding processes if the decoded-image cache must be built (0 = one per core).
    """
    raw = read_splits(cfg, workers)
    return {name: label_split(name, raw[name], cfg.target, cfg.protected) for name in SPLITS}
