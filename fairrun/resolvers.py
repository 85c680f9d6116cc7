"""Every OmegaConf resolver of fairrun's YAML, registered when this module is imported.

:mod:`fairrun.cli` imports it first, before Hydra composes anything, so every command (single runs,
``--cfg job --resolve``, each launcher's jobs) sees the same resolvers. That matters for launchers that
run jobs in other processes: hydra-joblib-launcher (``hydra/launcher=local_parallel``) and
hydra-submitit-launcher restore the *launching* process' resolvers (``Singleton.set_state``) before each
job, so a resolver registered only when some module happened to be imported later, inside a job, is gone
by the next job of that worker. :mod:`fairrun.config` and :mod:`fairrun.sweep` import this module too, for
code that composes configs without the CLI.

Only :mod:`omegaconf` is imported here: the resolvers' work is imported when they are called, so that
start-up stays fast (no torch, Opacus or dataset readers).

* ``${unless_set:${.other},value}``: ``value`` unless the sibling key ``other`` is set, then null. Lets a
  YAML give a default that yields to an alternative key (dpsgd's and dp_fedavg's ``noise_multiplier``
  yields to ``target_epsilon``), while setting both explicitly stays an error.
* ``${fairrun_methods:}``: the method list of ``+sweep=methods`` (:func:`fairrun.sweep.methods_resolver`).
* ``${fairrun_parallel_jobs:<gpus>}``: ``local_parallel``'s default ``n_jobs``
  (:func:`fairrun.sweep.parallel_jobs`).
"""
from __future__ import annotations

from omegaconf import OmegaConf


def unless_set(other, value):
    """``value`` unless ``other`` is set (not null), then None."""
    return value if other is None else None


def fairrun_methods(*, _root_):
    """``${fairrun_methods:}``: the comma-separated methods that suit the composed config."""
    from fairrun.sweep import methods_resolver

    return methods_resolver(_root_)


def fairrun_parallel_jobs(gpus=None):
    """``${fairrun_parallel_jobs:<gpus>}``: one job per selected GPU, or 2 without GPUs."""
    from fairrun.sweep import parallel_jobs

    return parallel_jobs(gpus)


RESOLVERS = {
    "unless_set": unless_set,
    "fairrun_methods": fairrun_methods,
    "fairrun_parallel_jobs": fairrun_parallel_jobs,
}


def register_resolvers() -> None:
    """Register (again) every resolver of :data:`RESOLVERS`; harmless to call more than once."""
    for name, resolver in RESOLVERS.items():
        OmegaConf.register_new_resolver(name, resolver, replace=True)


register_resolvers()
