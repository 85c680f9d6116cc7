"""Train (or resume, or find finished) one run in a run directory: :func:`run_training`, and the sub-runs a
staged method may start (:class:`SubRuns`)."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import torch
import yaml
from torch.utils.tensorboard import SummaryWriter

from fairrun import rundir
from fairrun.config import RunConfig
from fairrun.core.environment import differences, environment, results_columns
from fairrun.report.console import print_results
from fairrun.evaluation.trained import load_trained
from fairrun.training.checks import check_same_config
from fairrun.training.init_from import resolve_source
from fairrun.training import tensorboard
from fairrun.training.loop import Trainer
from fairrun.training.signals import StopFlag

log = logging.getLogger("fairrun")


class SubRuns:
    """What a staged method may do with other runs (gan_debias' baseline classifiers), handed to it by
    :meth:`Method.bind <fairrun.methods.base.Method.bind>`, so that methods never import the training loop."""

    def __init__(self, device: torch.device | None = None):
        self.device = device  # set by the Trainer of the run that hands these out

    def train(self, cfg: RunConfig, run_dir: Path) -> pd.DataFrame:
        """Train (or resume, or find finished) the run ``cfg`` in ``run_dir``: :func:`run_training`."""
        return run_training(cfg, run_dir)

    def load(self, run_dir: Path):
        """A finished run's best classifier on this run's device (:func:`fairrun.evaluation.trained.load_trained`)."""
        return load_trained(run_dir, self.device)


def run_training(cfg: RunConfig, run_dir: Path, on_accept=None) -> pd.DataFrame:
    """Train, evaluate on val and test, and write the run directory; returns the results DataFrame.

    Resumes from ``checkpoints/last.pt`` when ``cfg.resume`` and the checkpoint's config matches;
    a finished run (``done`` marker) is not trained again. Holds the run directory's lock
    (:mod:`fairrun.rundir.lock`) throughout; nothing is written into the directory before the config is
    accepted (a run of another configuration there is refused first); ``on_accept()`` is called then.
    """
    from fairrun.rundir.lock import hold, run_dir_cure

    run_dir = Path(run_dir)
    with hold(run_dir, "run", run_dir_cure(run_dir)):
        return _run_training_locked(cfg, run_dir, on_accept)


def _run_training_locked(cfg: RunConfig, run_dir: Path, on_accept) -> pd.DataFrame:
    finished = cfg.resume and rundir.is_done(run_dir)
    if finished:  # a run of another configuration is refused before anything is written (run_config.yaml!)
        check_same_config(cfg, run_dir)
    elif cfg.resume and (run_dir / rundir.LAST).is_file() and (run_dir / rundir.RUN_CONFIG).is_file():
        check_same_config(cfg, run_dir, "an unfinished run (checkpoints/last.pt)")
    resuming = cfg.resume and (run_dir / rundir.LAST).is_file()  # a resumed run continues from last.pt
    init = None if finished or resuming else resolve_source(cfg, run_dir)  # init_from: checked before data
    # accepted: from here on this launch writes into run_dir
    (run_dir / "error.txt").unlink(missing_ok=True)  # a failure of an earlier attempt of this run
    rundir.remove_orphaned_temporaries(run_dir)
    if on_accept is not None and not finished:
        on_accept()
    if finished:
        results = rundir.read_results(run_dir / rundir.RESULTS)  # checksummed results.json: never unpickled
        log.info("%s already finished; showing its results (resume=false to train again)", run_dir)
        print_results(results)
        return results
    if not cfg.resume:
        for stale in (rundir.DONE, rundir.RESULTS, rundir.RESULTS_SAFE, rundir.PREDICTIONS,
                      rundir.ENVIRONMENT, "checkpoints", "tb"):
            path = run_dir / stale
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            rundir.checksum_path(path).unlink(missing_ok=True)
    trainer = Trainer(cfg, run_dir, runs=SubRuns(), init=init)
    run_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), run_dir / rundir.RUN_CONFIG)
    counts = trainer.train_raw.counts()
    counts.to_csv(run_dir / rundir.TRAIN_COUNTS)
    log.info("training set (group x label):%s", counts_text(counts))
    purge_step, threads = None, torch.get_num_threads()
    if cfg.resume and (run_dir / rundir.LAST).is_file():
        trainer.restore(rundir.load_checkpoint(run_dir / rundir.LAST))
        purge_step = trainer.state.global_step + 1
        if trainer.state.epoch >= trainer.epochs:
            log.info("%s: all %d epochs were trained before it stopped; evaluating", run_dir, trainer.epochs)
        else:
            log.info("resuming %s from epoch %d/%d, step %d", run_dir, trainer.state.epoch + 1, trainer.epochs,
                     trainer.state.step)
    segments = record_environment(run_dir, trainer.device, resumed=purge_step is not None)
    trainer.environment_columns = results_columns(segments[-1])
    writer = SummaryWriter(str(tensorboard.log_dir(run_dir, purge_step is not None)), purge_step=purge_step)
    try:
        with StopFlag().installed() as stop:
            trainer.fit(writer, stop)
        results = trainer.finish(writer)
    finally:
        writer.close()
        torch.set_num_threads(threads)  # a resumed run may have switched to its own count (Trainer.restore)
        if trainer.device.type == "cuda":
            torch.cuda.empty_cache()
    print_results(results)
    return results


def counts_text(counts) -> str:
    """The training set's group x label counts as a table on lines of their own; in a job of a multirun on the
    same line (``A: not_smiling 190, smiling 190; B: ...``), so that a sweep's output stays short."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return " " + "; ".join(f"{group}: " + ", ".join(f"{label} {int(n)}" for label, n in row.items())
                               for group, row in counts.iterrows())
    return "\n" + counts.to_string()


def record_environment(run_dir: Path, device: torch.device, resumed: bool) -> list[dict]:
    """Write ``environment.json``: the environment of every segment of the run (a resumed run adds one), so
    a run trained partly under other software or hardware says so (and the log warns)."""
    segments = []
    path = run_dir / rundir.ENVIRONMENT
    if resumed and path.is_file():
        try:
            segments = list(json.loads(rundir.read_text(path))["segments"])
        except (rundir.IntegrityError, ValueError, KeyError, TypeError) as err:
            log.warning("%s: the environment of the earlier segments is unreadable (%s); recording this "
                        "one only", path, " ".join(str(err).split())[:200])
    current = environment(device)
    if segments and differences(segments[-1], current):
        log.warning("%s was trained so far under another environment (%s): its results mix both", run_dir,
                    "; ".join(differences(segments[-1], current)))
    segments.append(current)
    rundir.write_text(json.dumps({"segments": segments}, indent=2) + "\n", path)
    return segments
