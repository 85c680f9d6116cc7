"""fairrun: a command-line runner for fairness experiments on image classifiers.

Data flows one way: ``conf/`` (Hydra) -> :mod:`fairrun.config` (validated run config) ->
:mod:`fairrun.data` -> :mod:`fairrun.models` -> :mod:`fairrun.methods` -> :mod:`fairrun.train` ->
:mod:`fairrun.evaluate` -> :mod:`fairrun.rundir`. :mod:`fairrun.metrics` knows nothing of models or Hydra.
"""

__version__ = "0.1.0"
