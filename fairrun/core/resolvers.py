"""Every OmegaConf resolver of fairrun's YAML, registered when this module is imported.

:mod:`fairrun.cli` imports it first, before Hydra composes anything, so every command (single runs,
``--cfg job --resolve``, each launcher's jobs) sees the same resolvers. That matters for launchers that
run jobs in other processes: hydra-joblib-launcher (``hydra/launcher=local_parallel``) and
hydra-submitit-launcher restore the *launching* process' resolvers (``Singleton.set_state``) before each
job, so a resolver registered only when some module happened to be imported later, inside a job, is gone
by the next job of that worker. :mod:`fairrun.config` imports this module too, for code that composes
configs without the CLI.

Only :mod:`omegaconf` is imported here: the resolvers' work is imported when they are called, so that
start-up stays fast (no torch, Opacus or dataset readers).

* ``${unless_set:${.other},value}``: ``value`` unless the sibling key ``other`` is set, then null. Lets a
  YAML give a default that yields to an alternative key (dpsgd's and dp_fedavg's ``noise_multiplier``
  yields to ``target_epsilon``), while setting both explicitly stays an error.

The sweep's own resolvers (``${fairrun_methods:}``, ``${fairrun_parallel_jobs:<gpus>}``) are registered by
:mod:`fairrun.sweep` through :func:`register_resolvers` when it is imported, which :mod:`fairrun.cli` does at
start-up too: this bottom module imports nothing of fairrun.
"""
from __future__ import annotations

from omegaconf import OmegaConf


def unless_set(other, value):
    """``value`` unless ``other`` is set (not null), then None."""
    return value if other is None else None


RESOLVERS = {"unless_set": unless_set}


def register_resolvers(resolvers: dict | None = None) -> None:
    """Register (again) every resolver of ``resolvers`` (default :data:`RESOLVERS`); harmless to repeat."""
    for name, resolver in (RESOLVERS if resolvers is None else resolvers).items():
        OmegaConf.register_new_resolver(name, resolver, replace=True)


register_resolvers()
