"""`fairrun train`: one run, or one job of a multirun, into a run directory that it holds the lock of."""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from fairrun.commands.common import discard_refused_launch, launched_fresh, mark_started, user_errors
from fairrun.core.errors import FairrunError, paragraph


@hydra.main(version_base="1.3", config_path="pkg://fairrun.conf", config_name="train")
def train_app(cfg: DictConfig) -> None:
    """`fairrun train`: validate the composed config, then train and evaluate.

    In a multirun each job keeps its failure to itself (``<job dir>/error.txt``) so the other jobs run;
    a single run exits with code 2 on a user error, 130 on Ctrl-C and 143 on SIGTERM. A refused single run
    whose directory this launch made, and that holds nothing but the job log and error.txt, leaves no
    directory behind (:func:`~fairrun.commands.common.discard_refused_launch`).

    The run directory's lock (:mod:`fairrun.rundir.lock`) is held before anything is written there (error.txt
    included) and released on every way out; a directory in use is refused (exit code 2; in a multirun, that
    job) and left untouched.
    """
    from fairrun.rundir.lock import DirBusy, hold, run_dir_cure
    from fairrun.sweep import run_sweep_job

    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        mark_started()
        try:
            with hold(run_dir, "run", run_dir_cure(run_dir)):
                run_sweep_job(lambda: train_into(cfg, run_dir), run_dir, hydra_cfg.job.num,
                              Path(hydra_cfg.sweep.dir))
        except DirBusy as err:  # not logged: the job's log file is the other process' train.log
            print(paragraph(f"fairrun: error: job {hydra_cfg.job.num} not run: {err}"), file=sys.stderr)
        return
    fresh = launched_fresh(run_dir)  # made by this launch: removed again if the config is refused
    # a directory in use: nothing is written there
    with user_errors(), discard_refused_launch(run_dir, fresh):
        with hold(run_dir, "run", run_dir_cure(run_dir)), user_errors(run_dir):
            params = hydra_cfg.sweeper.get("params") or {}
            if params:
                raise FairrunError(f"The sweep preset sets hydra.sweeper.params ({', '.join(params)}), "
                                   f"which only a multirun uses: add -m (fairrun train -m ...) to launch the "
                                   f"sweep, or leave the +sweep=... preset out for a single run.")
            train_into(cfg, run_dir)


def train_into(cfg: DictConfig, run_dir: Path):
    """Validate ``cfg`` and train into ``run_dir`` (whose lock the caller holds).

    ``hydra.output_subdir`` is null in conf/train.yaml, so Hydra writes nothing into the run directory: its
    ``.hydra/`` files are written here once :func:`~fairrun.training.run.run_training` accepts the config (not into a
    run of another configuration, nor into a finished run). A failure before that, in a directory that already
    holds a run, is not recorded there (error.txt) either: the message goes to the terminal only.
    """
    from fairrun.config import validate_run_config
    from fairrun.rundir.lock import holds_a_run
    from fairrun.training import run_training

    accepted, had_run = [], holds_a_run(run_dir)

    def accept() -> None:
        accepted.append(True)
        write_hydra_files(cfg, run_dir)

    try:
        return run_training(validate_run_config(cfg), run_dir, on_accept=accept)
    except Exception as err:
        if had_run and not accepted:
            err.record_in_run_dir = False
        raise


def write_hydra_files(task_cfg: DictConfig, run_dir: Path) -> None:
    """``<run dir>/.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml``: what Hydra itself writes there
    (with ``hydra.output_subdir: .hydra``), from the running job's HydraConfig. fairrun report reads
    ``overrides.yaml`` (its ``--by`` columns, a sweep's jobs) and ``hydra.yaml`` (the job name)."""
    import copy

    from omegaconf import OmegaConf, open_dict, read_write

    from fairrun import rundir

    hydra_root = copy.deepcopy(HydraConfig.instance().cfg)
    with read_write(hydra_root.hydra), open_dict(hydra_root.hydra):
        hydra_root.hydra.output_subdir = ".hydra"
    folder = Path(run_dir) / ".hydra"
    rundir.write_text(OmegaConf.to_yaml(task_cfg), folder / "config.yaml")
    rundir.write_text(OmegaConf.to_yaml(hydra_root), folder / "hydra.yaml")
    rundir.write_text(OmegaConf.to_yaml(hydra_root.hydra.overrides.task), folder / "overrides.yaml")
