"""The report at the end of a study's multirun: :class:`StudyReport`, a Hydra callback (``conf/train.yaml``).

It writes what ``fairrun report SWEEP_DIR`` writes (sweep.pkl, table.csv, comparisons.csv, report.txt, plots/)
into the sweep directory, with the study's own settings (``study.report``: rows, metrics, baseline, gap). A
multirun without a ``study`` node is left alone. A re-run of the same command skips the finished jobs and
rewrites the report over every job.
"""
from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from fairrun.core.errors import FairrunError, paragraph

log = logging.getLogger("fairrun")


def report_options(study: DictConfig) -> dict:
    """The keyword arguments of :func:`fairrun.report.cli.run_report` that ``study.report`` sets."""
    report = OmegaConf.to_container(study.report, resolve=True)
    return {"by": list(report.get("by") or ["arm"]), "metrics": report.get("metrics"),
            "baseline": report.get("baseline"), "gap": report.get("gap"), "split": report.get("split") or "test"}


def write_study_report(study: DictConfig, sweep_dir: Path) -> list[Path]:
    """Write the report of the study's sweep into ``sweep_dir``; returns the paths written."""
    from fairrun.report.cli import run_report

    return run_report([sweep_dir], out=sweep_dir, **report_options(study))


class StudyReport(Callback):
    """At the end of a multirun launched with a study (``+study=NAME``, ``fairrun study NAME``): its report in
    the sweep directory. A report that cannot be written (no finished job, a metric no run has) is a warning
    naming the cure; it never changes the sweep's exit code, which the sweep summary decides."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        study = config.get("study")
        if study is None:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        print(f"fairrun: study {study.name}: writing its report into {sweep_dir}", flush=True)
        try:
            write_study_report(study, sweep_dir)
        except FairrunError as err:
            log.warning(paragraph(f"fairrun: study {study.name}: no report written: {err} Write it later with: "
                                  f"fairrun report {sweep_dir}"))
