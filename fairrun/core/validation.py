"""Bottom-layer validation helpers: turn a config node into a typed dataclass and check values.

Every problem becomes a :class:`~fairrun.core.errors.ConfigError` that names the full key, the value and what
is accepted. Imported by every layer that owns a config section (datasets, models, methods, privacy,
generative models), so this module imports nothing of fairrun but :mod:`fairrun.core.errors`.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Iterable, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from fairrun.core.errors import ConfigError


def typed_section(section: str, schema: type, node: Any) -> Any:
    """Merge ``node`` into the dataclass ``schema`` and return an instance, or raise ConfigError.

    Catches unknown keys and wrong types (OmegaConf structured-config checks) and rephrases them as
    one sentence naming the full key (``section.key``), the offending value and what is accepted.
    """
    if node is None:
        node = {}
    if not isinstance(node, (dict, DictConfig)):
        raise ConfigError(f"'{section}' must be a mapping of keys, got {node!r}.")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), node))
    except ConfigKeyError as err:
        names = [f.name for f in dataclasses.fields(schema)]
        hint = did_you_mean(str(err.key), names, section + ".")
        raise ConfigError(f"Unknown key '{section}.{err.key}'.{hint} The keys accepted in '{section}' are: {', '.join(names)}.") from None
    except OmegaConfBaseException as err:
        full_key = str(getattr(err, "full_key", None) or err.key)
        top = full_key.split("[")[0].split(".")[0]
        value = OmegaConf.select(OmegaConf.create(node), full_key, default="?")
        declared = {f.name: f.type for f in dataclasses.fields(schema)}.get(top, "the declared type")
        raise ConfigError(f"Invalid value for '{section}.{full_key}': {value!r}. Expected "
                          f"{getattr(declared, '__name__', declared)}.") from None


def require(ok: bool, key: str, value: Any, accepted: str) -> None:
    """Raise ConfigError("Invalid value for 'key': value. Accepted: ...") unless ``ok``."""
    if not ok:
        raise ConfigError(f"Invalid value for '{key}': {value!r}. Accepted: {accepted}.")


def require_choice(key: str, value: Any, choices: tuple) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    require(value in choices, key, value, "one of " + ", ".join(map(str, choices)))


def closest(word: str, choices: Iterable[str]) -> Optional[str]:
    """The entry of ``choices`` most similar to ``word`` (``difflib.get_close_matches``, ratio >= 0.6,
    compared without case so ``smilling`` finds ``Smiling``), or None when none is that close."""
    choices = [str(c) for c in choices]
    by_lower = {c.lower(): c for c in reversed(choices)}
    found = difflib.get_close_matches(str(word).lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[found[0]] if found else None


def did_you_mean(word: str, choices: Iterable[str], prefix: str = "") -> str:
    """`` Did you mean 'PREFIX<closest>'?`` (with a leading space) for the closest of ``choices``, or ''."""
    match = closest(word, choices)
    return f" Did you mean '{prefix}{match}'?" if match is not None and match != word else ""
