"""Results from Python: :func:`load_run`, :func:`load_sweep` and the long format :func:`tidy`.

``import fairrun; fairrun.load_sweep("outputs/multirun/2026-01-01/12-00-00")`` is the table ``fairrun report``
writes to sweep.pkl (one row per run and evaluated split, plus ``job`` and ``overrides``), read the same way:
every results table through its checksummed ``results.json`` (:func:`fairrun.rundir.read_results`), never by
unpickling a file fairrun cannot vouch for. ``fairrun.tidy(df)`` turns such a table into one row per
(run, split, group, metric), the layout seaborn plots directly. No torch is imported here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fairrun.core.errors import FairrunError

TIDY_COLUMNS = ("run", "split", "group", "metric", "value", "lo", "hi")
ALL_GROUPS = "all"  #: the ``group`` of an overall metric in :func:`tidy`
# per-group families named after their overall metric in tidy's ``metric`` (acc[g] is the accuracy of g)
_FAMILY_METRIC = {"acc": "accuracy"}


def load_run(path) -> pd.DataFrame:
    """One run directory's results (results.pkl's table: one row per evaluated split), read from its
    checksummed results.json (:func:`fairrun.rundir.read_results`).

    FairrunError naming ``path`` when it is not a directory, holds no results (an unfinished or failed run,
    or not a run directory at all), or its results do not read back (damaged, or a results.pkl without
    fairrun's checksum record)."""
    from fairrun import rundir
    from fairrun.report.collect import RESULTS, find_run_dirs

    run_dir = Path(path).expanduser()
    if not run_dir.is_dir():
        what = "does not exist" if not run_dir.exists() else "is a file, not a directory"
        raise FairrunError(f"fairrun.load_run: {str(path)!r} {what}. Give the directory of one finished run "
                           f"(the folder holding results.pkl, results.json and done, e.g. outputs/2026-01-01/"
                           f"12-00-00 or one job folder of a multirun); for a whole sweep use "
                           f"fairrun.load_sweep.")
    if not (run_dir / RESULTS).is_file() and not (run_dir / rundir.RESULTS_SAFE).is_file():
        runs, _ = find_run_dirs(run_dir)
        if runs and runs != [run_dir]:
            hint = (f"it holds {len(runs)} run directories: read them all with "
                    f"fairrun.load_sweep({str(path)!r})")
        else:
            hint = "the run has not finished, failed, or this is not a fairrun run directory"
        raise FairrunError(f"fairrun.load_run: {str(path)!r} holds no results.pkl: {hint}. Give the "
                           f"directory of one finished run (results.pkl, results.json and done).")
    return rundir.read_results(run_dir / RESULTS)


def load_sweep(path, tidy: bool = False) -> pd.DataFrame:
    """Every finished run under ``path`` (a sweep directory, a folder of run directories, or one run) as one
    table: the one ``fairrun report`` writes to sweep.pkl (:func:`fairrun.report.collect.collect`), one row
    per run and evaluated split, with ``job`` (the run directory relative to ``path``) and ``overrides`` in
    front. Failed, unfinished and missing jobs have no rows (``fairrun report`` lists them).

    ``tidy=True`` returns :func:`tidy` of that table instead. FairrunError naming ``path`` when it does not
    exist, is a file, holds no run directory, or holds no finished run."""
    from fairrun.report.collect import collect, status_counts

    try:
        coll = collect([Path(path).expanduser()])
    except FairrunError as err:
        raise FairrunError(f"fairrun.load_sweep: {err}") from err
    if coll.results.empty:
        counts = ", ".join(f"{status} {n}" for status, n in status_counts(coll.jobs).items())
        raise FairrunError(f"fairrun.load_sweep: {str(path)!r} holds no finished run ({counts}); a "
                           f"finished run has results.pkl and the done marker. Wait for the jobs to finish, "
                           f"or give the sweep directory of finished runs (fairrun report {path} lists why "
                           f"each job is not).")
    return tidy_frame(coll.results) if tidy else coll.results


def _metric_of(column: str) -> tuple[str, str] | None:
    """``(metric, group)`` of a registered metric column (no interval suffix), or None for any other column:
    ``accuracy`` -> ``("accuracy", "all")``, ``acc[Male]`` -> ``("accuracy", "Male")``, ``tpr[Male]`` ->
    ``("tpr", "Male")``, a per-cell ``acc[Male,1]`` -> ``("acc_cell", "Male,1")``."""
    from fairrun.metrics import registry

    key, group, suffix = registry.split_column(column)
    entry = registry.REGISTRY.get(key)
    if entry is None or suffix is not None:
        return None
    if entry.per_cell:
        return f"{entry.name}_cell", group
    if entry.per_group:
        return _FAMILY_METRIC.get(entry.name, entry.name), group
    return entry.name, ALL_GROUPS


def tidy_frame(df: pd.DataFrame, keep=()) -> pd.DataFrame:
    """The long ("tidy") form of a results table: one row per (run, split, group, metric), with columns
    ``run, split, group, metric, value, lo, hi`` (then the columns named in ``keep``, e.g. ``["method",
    "method.lam"]``, copied from each row).

    Every registered metric column (:mod:`fairrun.metrics.registry`) gives one row per results row: an overall
    metric ``accuracy`` with ``group="all"``; a per-group column ``acc[g]`` with ``group=g`` and ``metric``
    its overall metric's name (``accuracy``: so overall and per-group accuracy share one metric), other
    per-group families under their own name (``tpr``, ``sel``, ...); a per-cell column ``acc[g,c]`` as
    ``acc_cell`` with ``group="g,c"``. ``lo``/``hi`` are the bootstrap interval's ends (the
    ``<column>_lo``/``<column>_hi`` columns, :data:`fairrun.metrics.registry.INTERVAL_SUFFIXES`), NaN where
    the run has none. ``run`` is the ``job`` column (:func:`load_sweep`), else ``run_dir``. Rows whose value
    is NaN are dropped (a metric undefined for that run, or a column another run of the table has). Non-metric
    columns are left out unless named in ``keep``; FairrunError names a ``keep`` column the table lacks."""
    if not isinstance(df, pd.DataFrame):
        raise FairrunError(f"fairrun.tidy: expected a results DataFrame (from fairrun.load_run or "
                           f"fairrun.load_sweep), got {type(df).__name__}.")
    keep = [keep] if isinstance(keep, str) else list(keep)
    missing = [c for c in keep if c not in df]
    if missing:
        raise FairrunError(f"fairrun.tidy: keep={missing!r} are not columns of the table. Accepted: any of "
                           f"its columns, e.g. {', '.join(map(str, list(df.columns)[:12]))}.")
    run = df["job"] if "job" in df else df.get("run_dir", pd.Series(np.arange(len(df)), index=df.index))
    split = df["split"] if "split" in df else pd.Series([None] * len(df), index=df.index)
    parts = []
    for column in df.columns:
        found = _metric_of(str(column))
        if found is None or not pd.api.types.is_numeric_dtype(df[column]):
            continue
        metric, group = found
        bounds = {end: pd.to_numeric(df[f"{column}{end}"], errors="coerce") if f"{column}{end}" in df
                  else pd.Series(np.nan, index=df.index) for end in ("_lo", "_hi")}
        part = pd.DataFrame({"run": run.astype(str), "split": split, "group": group, "metric": metric,
                             "value": pd.to_numeric(df[column], errors="coerce").astype(float),
                             "lo": bounds["_lo"].astype(float), "hi": bounds["_hi"].astype(float),
                             **{c: df[c] for c in keep}}, index=df.index)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=[*TIDY_COLUMNS, *keep])
    long = pd.concat(parts, ignore_index=True)
    return long[long["value"].notna()].reset_index(drop=True)


def tidy(df: pd.DataFrame, keep=()) -> pd.DataFrame:
    """:func:`tidy_frame`: ``fairrun.tidy(fairrun.load_sweep(path))`` is one row per (run, split, group,
    metric) with ``value, lo, hi``, e.g. for ``sns.barplot(data=long[long.metric == "accuracy"], x="group",
    y="value", hue="run")``."""
    return tidy_frame(df, keep)
