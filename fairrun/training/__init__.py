"""Training: the one loop and what surrounds it, one module per job.

* :mod:`fairrun.training.run`: :func:`run_training` (train, resume or find finished one run in its directory)
  and :class:`SubRuns` (the sub-runs a staged method may start);
* :mod:`fairrun.training.loop`: the :class:`Trainer` (device, AMP, progress, TensorBoard, checkpoints,
  resume, results);
* :mod:`fairrun.training.checks`: every group x label cell has training rows; one run per directory;
* :mod:`fairrun.training.optimizers`: ``trainer.optimizer`` and ``trainer.scheduler``;
* :mod:`fairrun.training.signals`: Ctrl-C / SIGTERM save ``last.pt`` between steps;
* :mod:`fairrun.training.results`: the columns that identify a run in its results rows.
"""
from fairrun.training.loop import Trainer
from fairrun.training.run import SubRuns, run_training

__all__ = ["SubRuns", "Trainer", "run_training"]
