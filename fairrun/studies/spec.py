"""The ``study`` node of a study's config (``conf/study/<name>.yaml``): what it reproduces, its miniature, its report.

These dataclasses are the schema of the node (``TrainSchema.study``), so a key misspelled in a study's YAML
fails when Hydra composes it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class StudyFigureConfig:
    """The study's own figure (fairrun/studies/figures.py): each metric per value of ``x``, one bar per arm."""

    x: Optional[str] = None  # the key on the horizontal axis (e.g. target, model); null = no figure of its own
    metrics: List[str] = field(default_factory=list)  # one panel per metric and split
    splits: List[str] = field(default_factory=lambda: ["test"])  # e.g. [test, utkface, imdb_wiki]: transfer panels
    title: str = ""


@dataclass
class StudyReportConfig:
    """The report written into the sweep directory when the study's multirun ends (``fairrun report``'s
    options: ``--by``, ``--metrics``, ``--baseline``, ``--gap``, ``--split``)."""

    by: List[str] = field(default_factory=lambda: ["arm"])  # the table's rows: results columns or swept keys
    metrics: Optional[List[str]] = None  # table columns and charted metrics; null = fairrun report's defaults
    baseline: Optional[str] = None  # KEY=VALUE: the rows the others are compared with; null = the report's rule
    gap: Optional[str] = None  # the fairness gap of the accuracy-vs-gap and ε-vs-gap charts
    split: str = "test"  # the evaluated split the table shows
    figure: StudyFigureConfig = field(default_factory=StudyFigureConfig)


@dataclass
class StudyConfig:
    """One study: its name, what it reproduces, how to run it in miniature, and its report."""

    name: str = "???"  # the option's name in conf/study/ (fairrun study NAME)
    reproduces: str = ""  # the published study or codebase it reproduces, one line (fairrun study --list)
    # keys a full-size launch must set (the study's data is not built in), e.g. [dataset.root]; --tiny needs none
    needs: List[str] = field(default_factory=lambda: ["dataset.root"])
    # the study's own inputs, read by its config through ${study.params.NAME} (e.g. a generator file, the root of
    # a second dataset); given on the command line as study.params.NAME=VALUE
    params: Dict[str, Any] = field(default_factory=dict)
    # overrides that --tiny appends: the built-in synthetic data, fewer values per axis, fewer epochs
    tiny: List[str] = field(default_factory=list)
    report: StudyReportConfig = field(default_factory=StudyReportConfig)
