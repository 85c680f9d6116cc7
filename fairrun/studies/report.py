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
    report.pop("figure", None)
    return {"by": list(report.get("by") or ["arm"]), "metrics": report.get("metrics"),
            "baseline": report.get("baseline"), "gap": report.get("gap"), "split": report.get("split") or "test"}


def write_study_report(study: DictConfig, sweep_dir: Path) -> list[Path]:
    """Write the report of the study's sweep into ``sweep_dir`` (what ``fairrun report`` writes, and the study's
    own figure, ``plots/study_<name>.png`` and ``.pdf``); returns the paths written."""
    from fairrun.report.cli import run_report

    written = run_report([sweep_dir], out=sweep_dir, **report_options(study))
    figure = study.report.figure
    if figure.x is not None:
        written.append(write_figure(study, sweep_dir))
    return written


def write_figure(study: DictConfig, sweep_dir: Path) -> Path:
    """The study's own figure from the sweep.pkl just written (:func:`fairrun.studies.figures.plot_bars`)."""
    import pandas as pd

    from fairrun.report.cli import resolve_by
    from fairrun.studies.figures import plot_bars

    figure = study.report.figure
    rows = resolve_by(pd.read_pickle(sweep_dir / "sweep.pkl"), [str(figure.x), "arm"])
    path = sweep_dir / "plots" / f"study_{study.name}.png"
    try:
        return plot_bars(rows, str(figure.x), [str(m) for m in figure.metrics], [str(s) for s in figure.splits],
                         path, str(figure.title or study.name))
    except ValueError as err:
        raise FairrunError(f"the study's figure cannot be drawn: {err}") from None


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
            written = write_study_report(study, sweep_dir)
            if study.report.figure.x is not None:
                print(f"  {written[-1]} (the study's figure)", flush=True)
        except FairrunError as err:
            log.warning(paragraph(f"fairrun: study {study.name}: no report written: {err} Write it later with: "
                                  f"fairrun report {sweep_dir}"))
