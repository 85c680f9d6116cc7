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


def check_attributes(attribute_values, target: str, protected, where: str = "this dataset") -> None:
    """Raise ConfigError (with the closest valid name) unless ``target`` and every name of ``protected`` are
    attributes among ``attribute_values`` (a mapping attribute -> values, or the list of names) and distinct.
    ``where`` names the dataset in the message (``dataset=celeba``)."""
    from fairrun.core.validation import did_you_mean

    names = list(attribute_values)
    accepted = ", ".join(names)
    if target not in names:
        raise ConfigError(f"Invalid value for 'dataset.target': {target!r}.{did_you_mean(target, names)} "
                          f"Accepted: one attribute of {where}: {accepted}.")
    prot = protected_list(protected)
    if not prot:
        raise ConfigError(f"Invalid value for 'dataset.protected': {protected!r} (empty). Accepted: one "
                          f"attribute of {where} or a list of them: {accepted}.")
    for name in prot:
        if name not in names:
            raise ConfigError(f"Invalid value for 'dataset.protected': {protected!r} ({name!r} is not an "
                              f"attribute of {where}).{did_you_mean(name, names)} Accepted: one attribute "
                              f"or a list of them: {accepted}.")
    if target in prot:
        others = ", ".join(n for n in names if n != target)
        raise ConfigError(f"Invalid value for 'dataset.protected': {protected!r} includes the target "
                          f"attribute {target!r} (dataset.target); the protected attribute must differ "
                          f"from the target. Accepted: {others}.")
    if len(set(prot)) != len(prot):
        raise ConfigError(f"Invalid value for 'dataset.protected': {protected!r} names an attribute "
                          f"twice. Accepted: distinct attributes of {where}: {accepted}.")


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
