"""Sweeps: what a multirun adds to a run, one module per job.

* :mod:`fairrun.sweep.methods`: the ``+sweep=methods`` method list (the ``${fairrun_methods:}`` resolver);
* :mod:`fairrun.sweep.jobs`: one job of a multirun (its failure stays in its ``error.txt``);
* :mod:`fairrun.sweep.summary`: the jobs of a sweep, the sweep directory's lock, the end-of-sweep summary;
* :mod:`fairrun.sweep.resources`: each job's CPU threads and GPU (``local_parallel`` slots).

Importing the package registers the sweep's resolvers (``${fairrun_methods:}``, ``${fairrun_parallel_jobs:}``);
:mod:`fairrun.cli` does at start-up of every command (see :mod:`fairrun.core.resolvers`).
"""
from fairrun.core.resolvers import register_resolvers
from fairrun.sweep.jobs import ERROR, failure_text, run_sweep_job
from fairrun.sweep.methods import methods_for, methods_resolver, suitable_methods
from fairrun.sweep.resources import (JobResources, parallel_jobs, parallel_share, selected_gpus, slot_dir_name,
                                     take_slot)
from fairrun.sweep.summary import SweepSummary, check_same_sweep, job_status, summarize, sweep_jobs

def _fairrun_methods(*, _root_):
    """``${fairrun_methods:}``: the comma-separated methods that suit the composed config."""
    return methods_resolver(_root_)

def _fairrun_config_groups(*groups):
    """``${fairrun_config_groups:dataset,model,...}``: --help's list of those groups and their options."""
    from fairrun.config.store import config_groups_text

    return config_groups_text([str(g) for g in groups])


register_resolvers({"fairrun_methods": _fairrun_methods, "fairrun_parallel_jobs": parallel_jobs,
                    "fairrun_config_groups": _fairrun_config_groups})

__all__ = ["ERROR", "JobResources", "SweepSummary", "check_same_sweep", "failure_text", "job_status", "methods_for",
           "methods_resolver", "parallel_jobs", "parallel_share", "run_sweep_job", "selected_gpus", "slot_dir_name",
           "suitable_methods", "summarize", "sweep_jobs", "take_slot"]
