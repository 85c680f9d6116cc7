"""Open registries: one style for methods, models and datasets, built-in or the user's own.

A registry maps a name to an *entry*: any object with a ``name`` (the YAML ``name:`` key) and a ``Config``
(the dataclass schema of its config section, whose defaults are the defaults). Built-in entries register
themselves on import; a user's entry lives in the user's own module and is selected like a built-in one,
through Hydra's ``_target_`` key in the group's YAML::

    # myconf/method/focal.yaml, used with: fairrun train --config-dir myconf method=focal
    _target_: mypkg.focal.Focal
    name: focal
    gamma: 2.0

When a config section names a ``_target_``, :meth:`Registry.resolve` imports it (from ``PYTHONPATH`` or the
launch directory), checks that it is an entry of the right kind, and registers it under its name, so every
later step (training, ``fairrun eval``, sweeps, reports) finds it like a built-in entry. The ``_target_`` is
saved with the run (``run_config.yaml``), so a run of a user's method can be evaluated and resumed later.

An installed package may instead declare its entries as entry points, in the groups ``fairrun.methods``,
``fairrun.models`` and ``fairrun.datasets`` (name: the registry name; value: ``module:attribute``). A name
that is not registered is looked up there and only that entry point is loaded (:meth:`Registry.load_plugin`),
checked like a ``_target_`` and registered; nothing is imported at start-up. The run saves only the name, so
``fairrun eval`` and resuming find the entry point again. A built-in name always wins over an entry point.
This module imports nothing of fairrun but the bottom layer (errors, validation).
"""
from __future__ import annotations

import dataclasses
import importlib
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Optional

from omegaconf import DictConfig, OmegaConf

from fairrun.core.errors import ConfigError
from fairrun.core.validation import typed_section

TARGET = "_target_"


class Registry(dict):
    """``name -> entry`` of one kind (``method``, ``model``, ``dataset``).

    ``check(entry)`` returns what is wrong with an imported entry (None when it is fine); ``contract`` is the
    sentence that says what an entry of this kind must be, for error messages.
    """

    def __init__(self, kind: str, contract: str, check: Optional[Callable[[Any], Optional[str]]] = None):
        super().__init__()
        self.kind, self.contract, self.check = kind, contract, check
        self.targets: dict[str, str] = {}  # name -> the _target_ a user's entry was imported from
        self.group = f"fairrun.{kind}s"  # the entry-point group of installed packages' entries
        self.plugins: dict[str, str] = {}  # name -> the entry point it was loaded from, described

    def __missing__(self, name):
        """``registry[name]`` of a name not registered yet: its entry point's entry (loaded), or KeyError."""
        entry = self.load_plugin(name) if isinstance(name, str) else None
        if entry is None:
            raise KeyError(name)
        return entry

    def register(self, entry):
        """Register ``entry`` under ``entry.name`` (usable as a class decorator); a name is taken once."""
        problem = _entry_problem(entry, self)
        if problem:
            raise ValueError(f"cannot register {entry!r} as a {self.kind}: {problem}")
        if entry.name in self and self[entry.name] is not entry:
            raise ValueError(f"{self.kind} '{entry.name}' registered twice")
        self[entry.name] = entry
        return entry

    def resolve(self, node: Any):
        """The entry a config section selects: its ``_target_`` (imported and registered) or its ``name``."""
        if not isinstance(node, (dict, DictConfig)):
            raise ConfigError(f"'{self.kind}' must be a mapping of keys with a name, got {node!r}. Available "
                              f"{self.kind}s: {', '.join(self.available())} (choose one with "
                              f"'{self.kind}=<name>').")
        target = node.get(TARGET)
        if target is not None:
            return self.import_target(str(target), node.get("name"))
        name = node.get("name")
        if name in self:
            return self[name]
        entry = self.load_plugin(name) if isinstance(name, str) else None
        if entry is None:
            raise ConfigError(
                f"Unknown {self.kind} '{name}'. Available {self.kind}s: {', '.join(self.available())} "
                f"(choose one with '{self.kind}=<name>'; a {self.kind} of your own is selected by a YAML "
                f"file with _target_: your_module.YourClass in your config dir, or by an installed "
                f"package's entry point in the group {self.group}, see docs/extending.md)."
            )
        return entry

    def plugin_names(self) -> list[str]:
        """The names installed packages declare in this registry's entry-point group (nothing is imported)."""
        return sorted({point.name for point in metadata.entry_points(group=self.group)})

    def available(self) -> list[str]:
        """Every name this registry can select: the registered entries and the installed entry points."""
        return sorted(set(self) | set(self.plugin_names()))

    def load_plugin(self, name: str):
        """The entry that an installed package declares as the entry point ``name`` of :attr:`group`, loaded,
        checked and registered; None when no package declares it. A broken entry point (its import fails, it
        is not an entry of this kind, or its name differs) is a ConfigError naming the distribution, the
        entry point and the cause."""
        points = {point.value: point for point in metadata.entry_points(group=self.group)
                  if point.name == name}
        if not points:
            return None
        if len(points) > 1:
            raise ConfigError(
                f"The {self.kind} '{name}' is declared by several installed entry points in the group "
                f"{self.group}: {'; '.join(_describe(p) for p in points.values())}. Uninstall all but one of "
                f"those distributions (pip uninstall NAME).")
        point = next(iter(points.values()))
        where = f"The {self.kind} '{name}' comes from {_describe(point)}, but"
        cure = (f"Fix or reinstall that package (pip install --force-reinstall {_distribution(point)}), or "
                f"uninstall it.")
        try:
            entry = point.load()
        except Exception as err:  # noqa: BLE001 - the package failed while importing: say which and why
            raise ConfigError(f"{where} loading it failed with {type(err).__name__}: {err}. {cure}") from None
        problem = _entry_problem(entry, self)
        if problem:
            raise ConfigError(f"{where} it is not a {self.kind}: {problem}. {self.contract} {cure}")
        if entry.name != name:
            raise ConfigError(f"{where} it loads the {self.kind} '{entry.name}' (the name attribute of "
                              f"{_qualified(entry)}): an entry point's name must be that name. {cure}")
        self[name] = entry
        self.plugins[name] = _describe(point)
        return entry

    def import_target(self, target: str, name: Any = None):
        """Import ``package.module.Attribute`` and register it; ``name`` (the YAML's) must match its name."""
        where = f"{self.kind}.{TARGET}={target}"
        module_name, _, attribute = target.rpartition(".")
        if not module_name or not attribute:
            raise ConfigError(f"Invalid value for '{where}': expected the import path of a {self.kind}, "
                              f"package.module.Name. {self.contract}")
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.append(str(Path.cwd()))  # packages in the launch directory; last, so nothing is shadowed
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            raise ConfigError(f"Invalid value for '{where}': module '{err.name}' cannot be found (importing "
                              f"{module_name}). Put the package on PYTHONPATH (or pip install it, or launch "
                              f"from the folder that holds it).") from None
        except Exception as err:  # noqa: BLE001 - the user's module failed while importing: say where
            raise ConfigError(f"Invalid value for '{where}': importing {module_name} failed with "
                              f"{type(err).__name__}: {err}.") from None
        entry = getattr(module, attribute, None)
        if entry is None:
            raise ConfigError(f"Invalid value for '{where}': {module_name} has no attribute '{attribute}' "
                              f"(it has: {', '.join(n for n in dir(module) if not n.startswith('_'))}).")
        problem = _entry_problem(entry, self)
        if problem:
            raise ConfigError(f"Invalid value for '{where}': {problem}. {self.contract}")
        if name is not None and name != entry.name:
            raise ConfigError(f"Invalid value for '{self.kind}.name': {name!r}, but {target} is the "
                              f"{self.kind} '{entry.name}'. Use name: {entry.name} in the YAML beside "
                              f"{TARGET}.")
        registered = self.get(entry.name)
        if registered is not None and registered is not entry and self.targets.get(entry.name) != target:
            origin = f" (from {self.plugins[entry.name]})" if entry.name in self.plugins else ""
            raise ConfigError(f"Invalid value for '{where}': its name '{entry.name}' is already the "
                              f"{'built-in ' if self.is_builtin(entry.name) else ''}{self.kind} "
                              f"{_qualified(registered)}{origin}. Give yours another name.")
        self[entry.name] = entry
        self.targets[entry.name] = target
        return entry

    def target_of(self, name: str) -> Optional[str]:
        """The ``_target_`` a user's entry was imported from (None for a built-in one and for one loaded from
        an entry point: those are found again by name)."""
        return self.targets.get(name)

    def is_builtin(self, name: str) -> bool:
        """Whether ``name`` is registered and neither a user's ``_target_`` nor an installed entry point."""
        return name in self and name not in self.targets and name not in self.plugins

    def typed(self, node: Any):
        """Validate a config section against its entry's schema: the dataclass instance (``_target_`` is kept
        out of it and recorded in :attr:`targets`)."""
        entry = self.resolve(node)
        plain = OmegaConf.create(OmegaConf.to_container(node, resolve=True)) if isinstance(node, DictConfig) \
            else OmegaConf.create(dict(node))
        plain.pop(TARGET, None)
        return typed_section(self.kind, entry.Config, plain)


def _qualified(entry) -> str:
    return f"{getattr(entry, '__module__', '?')}.{getattr(entry, '__qualname__', type(entry).__name__)}"


def _distribution(point: metadata.EntryPoint) -> str:
    dist = getattr(point, "dist", None)
    return dist.name if dist is not None else "the package"


def _describe(point: metadata.EntryPoint) -> str:
    """``the entry point focal = mypkg.focal:Focal (group fairrun.methods) of the distribution mypkg 0.1``."""
    dist = getattr(point, "dist", None)
    owner = f"the installed distribution {dist.name} {dist.version}" if dist is not None else \
        "an installed distribution"
    return f"the entry point {point.name} = {point.value} (group {point.group}) of {owner}"


def _entry_problem(entry, registry: Registry) -> Optional[str]:
    name = getattr(entry, "name", None)
    if not isinstance(name, str) or not name:
        return (f"{_qualified(entry)} has no 'name' (a class attribute holding its YAML name, "
                f"e.g. name = \"mine\")")
    config = getattr(entry, "Config", None)
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        return f"{_qualified(entry)} has no 'Config' dataclass (the schema of its config section)"
    if "name" not in {f.name for f in dataclasses.fields(config)}:
        return f"{_qualified(entry)}.Config needs a field name: str = \"{name}\" (the YAML name)"
    return registry.check(entry) if registry.check else None
