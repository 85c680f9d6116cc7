"""Studies: a published experiment as one command (``fairrun study NAME``, ``fairrun train -m +study=NAME``).

A study is a Hydra config (``conf/study/<name>.yaml``, ``@package _global_``) that sets the dataset and trainer,
sweeps arms (``conf/arm/``), ratios, seeds or attributes through ``hydra.sweeper.params``, and carries its
description, its ``--tiny`` overrides and its report settings in the ``study`` node (:class:`StudyConfig`).
At the end of the multirun :class:`~fairrun.studies.report.StudyReport` writes the report into the sweep directory.
"""
