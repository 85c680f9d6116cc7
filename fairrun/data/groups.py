"""Target labels and (intersectional) group ids from a split's attributes."""
from __future__ import annotations

import itertools

import numpy as np
import torch

from fairrun.data.base import LabeledSplit, SplitData
from fairrun.core.errors import ConfigError


def protected_list(protected) -> list[str]:
    """``dataset.protected`` as a list of attribute names (a single name or a list)."""
    return [protected] if isinstance(protected, str) else list(protected)


def check_attributes(attribute_values: dict, target: str, protected) -> None:
    """Raise ConfigError unless target and protected name known, distinct attributes."""
    names = list(attribute_values)
    prot = protected_list(protected)
    if target not in attribute_values:
        raise ConfigError(f"Unknown target attribute dataset.target={target!r}. "
                          f"This dataset's attributes are: {', '.join(names)}.")
    if not prot:
        raise ConfigError(f"dataset.protected is empty. Name one attribute or a list of them from: "
                          f"{', '.join(names)}.")
    for p in prot:
        if p not in attribute_values:
            raise ConfigError(f"Unknown protected attribute {p!r} in dataset.protected={protected!r}. "
                              f"This dataset's attributes are: {', '.join(names)}.")
    if target in prot:
        raise ConfigError(f"dataset.protected={protected!r} includes the target attribute {target!r}; "
                          f"the protected attribute must differ from the target. Choose among: "
                          f"{', '.join(n for n in names if n != target)}.")
    if len(set(prot)) != len(prot):
        raise ConfigError(f"dataset.protected={protected!r} names an attribute twice.")


def group_names(attribute_values: dict, protected) -> list[str]:
    """Readable group names; intersectional groups join value names with '/' (e.g. 'B/glasses')."""
    prot = protected_list(protected)
    return ["/".join(combo) for combo in itertools.product(*(attribute_values[p] for p in prot))]


def label_split(name: str, split: SplitData, target: str, protected) -> LabeledSplit:
    """Encode a split: y = target codes; g = mixed-radix index of the protected attributes' codes."""
    prot = protected_list(protected)
    g = np.zeros(len(split.attributes), dtype=np.int64)
    for p in prot:
        g = g * len(split.attribute_values[p]) + split.attributes[p].to_numpy(dtype=np.int64)
    y = split.attributes[target].to_numpy(dtype=np.int64, copy=True)
    return LabeledSplit(
        name=name,
        images=split.images,
        y=torch.from_numpy(y),
        g=torch.from_numpy(g),
        group_names=group_names(split.attribute_values, prot),
        class_names=list(split.attribute_values[target]),
    )
