"""``fairrun report PATH [PATH ...] [options]``: argparse front end and the report's steps in order.

collect runs -> job statuses -> sweep.pkl -> comparisons (paired bootstrap) -> table with marks -> plots. User
mistakes raise FairrunError, which :func:`report_main` prints as one paragraph (exit code 2).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import pandas as pd
from fairrun.core.errors import FairrunError, paragraph
from fairrun.core.validation import did_you_mean
from fairrun.report import noise, paired, plots
from fairrun.report.collect import Collection, collect, override_columns, status_counts
from fairrun.report.table import (
    DEFAULT_BY,
    DEFAULT_METRICS,
    aggregate,
    default_metrics,
    format_table,
    has_private_runs,
    latex_table,
    markdown_table,
    metric_columns,
)

DESCRIPTION = """\
Gather every run under PATH (a sweep directory, a folder of run directories, or one run) into one
table: each metric as mean ± std over the runs of a group of --by keys, marked against a baseline
row by the 95% interval of the difference from a paired bootstrap over test rows and seeds (▲/▼
above/below 0, ≈ holds 0); job statuses (finished, failed, unfinished, missing); and charts."""
EPILOG = """\
examples:
  fairrun report multirun/2026-01-01/12-00-00
  fairrun report sweep/ --metrics accuracy worst_group_acc eopp_diff --by method imbalance_ratio
  fairrun report sweep/ --baseline imbalance_ratio=0.5 --gap dp_diff --out report/
  fairrun report outputs/ --by model method --split val --run 2026-01-01/12-00-00
  fairrun report sweep/ --format pdf,png --size one-column     # figures for a paper

writes into --out (default: the first PATH): sweep.pkl, sweep.csv, jobs.csv, report.txt, table.csv,
table.tex (booktabs), table.md (GitHub markdown), comparisons.csv and plots/*.png (and/or .pdf, .svg)."""
_LIST_LIMIT = 10


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own mistakes become one paragraph too
        flags = [o for action in self._actions for o in action.option_strings]
        wrong = re.search(r"unrecognized arguments: (--?[\w-]+)", message)
        hint = did_you_mean(wrong.group(1), flags) if wrong else ""
        raise FairrunError(f"{message}.{hint} Usage: fairrun report PATH [PATH ...] [--metrics M ...] [--by K ...] "
                           f"[--split SPLIT] [--out DIR] [--baseline KEY=VALUE] [--run RUN] [--gap METRIC] "
                           f"[--format png,pdf,svg] [--size {'|'.join(plots.SIZES)}] "
                           f"(fairrun report --help for details).")


def build_parser() -> argparse.ArgumentParser:
    """The ``fairrun report`` argument parser."""
    parser = _Parser(prog="fairrun report", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", metavar="PATH", type=Path,
                        help="a sweep directory, a folder of run directories, or one run directory")
    parser.add_argument("--metrics", nargs="+", metavar="M",
                        help=f"table columns and charted metrics (default: {' '.join(DEFAULT_METRICS)}, plus "
                             f"epsilon when any run is private)")
    parser.add_argument("--by", nargs="+", metavar="K", default=list(DEFAULT_BY),
                        help="keys whose value combinations are the table rows: results columns or swept "
                             "override keys (default: method imbalance_ratio)")
    parser.add_argument("--split", default="test", help="which evaluated split the table shows (default: test)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="output directory (default: the first PATH)")
    parser.add_argument("--baseline", metavar="KEY=VALUE",
                        help="the rows every other row is compared with, matched on the other --by keys "
                             "(default: method=erm, else the first value of the first --by key)")
    parser.add_argument("--run", metavar="RUN",
                        help="run for the per-group accuracy chart: a job name or run directory "
                             "(default: the run with the largest acc_gap)")
    parser.add_argument("--gap", metavar="METRIC",
                        help="fairness gap of the accuracy-vs-gap and ε-vs-gap charts (default: the first "
                             "fairness gap among --metrics, else acc_gap)")
    parser.add_argument("--format", default="png", metavar="FMT[,FMT]",
                        help=f"file formats of the charts, comma-separated: {', '.join(plots.FORMATS)} (pdf and "
                             f"svg are vector, for a paper; default: png)")
    parser.add_argument("--size", default="screen", metavar="SIZE",
                        help="chart size: screen (default; legend beside the axes), one-column (3.3 in wide) or "
                             "two-column (6.9 in wide), the last two with fonts legible at that print size and the "
                             "legend below the axes")
    return parser


def _echo(text: str = "", file=None) -> None:
    """Print, falling back to ASCII marks where the terminal cannot encode ± ≈ ▲ ▼ –.

    A closed pipe (``fairrun report … | head``) silences further output but never stops the report
    from writing its files.
    """
    file = file or sys.stdout
    try:
        try:
            print(text, file=file)
        except UnicodeEncodeError:
            for a, b in (("±", "+/-"), ("≈", "~"), ("▲", "^"), ("▼", "v"), ("–", "-"), ("→", "->"), ("ε", "eps")):
                text = text.replace(a, b)
            print(text.encode("ascii", "replace").decode("ascii"), file=file)
        file.flush()
    except BrokenPipeError:
        # Point the stream's descriptor at /dev/null, so that later writes and the exit flush are silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, file.fileno())
        os.close(devnull)


def report_main(argv: list[str]) -> int:
    """Entry point of ``fairrun report``: returns the exit code (0, or 2 after a one-paragraph error)."""
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exit_:  # --help
            return int(exit_.code or 0)
        run_report(args.paths, metrics=args.metrics, by=args.by, split=args.split, out=args.out,
                   baseline=args.baseline, run=args.run, gap=args.gap, formats=args.format, size=args.size)
    except FairrunError as err:
        _echo(paragraph(f"fairrun report: error: {err}"), file=sys.stderr)
        return 2
    return 0


def _names(values, limit: int = 60) -> str:
    values = [str(v) for v in values]
    shown = ", ".join(values[:limit])
    return shown + (f", … ({len(values) - limit} more)" if len(values) > limit else "")


def _by_choices(results: pd.DataFrame, overrides: pd.DataFrame) -> list[str]:
    ids = ["dataset", "target", "protected", "model", "method", "imbalance_ratio", "seed", "epochs", "epsilon",
           "delta", "noise_multiplier", "max_grad_norm", "threshold", "job"]
    other = [c for c in results.columns if c not in ids and not pd.api.types.is_numeric_dtype(results[c])
             and c not in ("run_dir", "overrides", "split")]
    return [c for c in ids if c in results] + other + [c for c in overrides.columns if c not in results]


def resolve_by(results: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``results`` with a column for every --by key, taken from the jobs' overrides where results.pkl
    lacks it (e.g. ``trainer.lr``); FairrunError naming an unknown key and listing the accepted ones."""
    overrides = override_columns(results)
    for key in by:
        if key in results:
            continue
        if key in overrides:
            results = results.assign(**{key: overrides[key]})
            continue
        raise FairrunError(f"unknown --by key {key!r}: it is neither a results column nor a swept override key. "
                           f"Accepted keys: {_names(_by_choices(results, overrides))}.")
    return results


def check_metrics(results: pd.DataFrame, metrics: list[str], what: str = "metric") -> None:
    """FairrunError naming the first metric that is not a numeric results column, listing those that are."""
    accepted = metric_columns(results)
    numeric = set(metric_columns(results, intervals=True))
    for m in metrics:
        if m not in numeric:
            kind = "is not numeric" if m in results else "is not a column of results.pkl"
            raise FairrunError(f"unknown {what} {m!r}: it {kind}.{did_you_mean(m, accepted)} Available metric "
                               f"columns: {_names(accepted, 200)}.")


def choose_gap(metrics: list[str], gap: str | None, results: pd.DataFrame) -> str | None:
    """The charts' fairness gap: ``--gap``, else the first fairness gap among ``metrics``, else acc_gap."""
    if gap is not None:
        check_metrics(results, [gap], "--gap metric")
        return gap
    chosen = [m for m in metrics if m in plots.FAIRNESS_GAPS]
    if chosen:
        return chosen[0]
    return "acc_gap" if "acc_gap" in results else None


def choose_run(rows: pd.DataFrame, run: str | None, jobs: pd.DataFrame, gap: str | None) -> tuple[pd.Series, str]:
    """The run of the per-group chart and why it was chosen: ``--run`` (a job name or run directory),
    else the run with the largest acc_gap (or ``gap``). ``rows``: one row per finished run."""
    if run is not None:
        match = rows[rows["job"] == run]
        if match.empty:
            target = Path(run).expanduser().resolve()
            paths = jobs.set_index("job")["path"]
            names = [j for j, p in paths.items() if p and Path(p).resolve() == target]
            match = rows[rows["job"].isin(names)]
        if match.empty:
            raise FairrunError(f"unknown --run {run!r}: no finished run with that job name or directory has a "
                               f"row for this split. Finished jobs: {_names(rows['job'], 30)}.")
        return match.iloc[0], "chosen with --run"
    by = "acc_gap" if "acc_gap" in rows else gap
    if by is None or pd.to_numeric(rows[by], errors="coerce").isna().all():
        return rows.iloc[0], "the first run"
    i = pd.to_numeric(rows[by], errors="coerce").idxmax()
    return rows.loc[i], f"the run with the largest {by}, {float(rows.at[i, by]):.3f}"


def status_lines(coll: Collection) -> list[str]:
    """The job-status lines: counts, then the failed jobs (overrides and error), missing and unfinished ones."""
    counts = status_counts(coll.jobs)
    lines = [", ".join(f"{status} {n}" for status, n in counts.items())]
    for status in ("failed", "missing", "unfinished"):
        jobs = coll.jobs[coll.jobs["status"] == status]
        if jobs.empty:
            continue
        lines.append(f"{status} jobs:")
        limit = len(jobs) if status == "failed" else _LIST_LIMIT
        for job in jobs.head(limit).itertuples():
            text = f"  {job.job}: {job.overrides or '(no overrides)'}"
            if status == "failed":
                text += f"\n      error: {job.error or '(empty error.txt)'}"
            lines.append(text)
        if len(jobs) > limit:
            lines.append(f"  … {len(jobs) - limit} more (see jobs.csv)")
    lines += [f"note: {note}" for note in coll.notes]
    return lines


def _out_hint(paths: list[Path]) -> str:
    suggestion = Path.home() / "fairrun-reports" / (Path(paths[0]).resolve().name or "report")
    return (f"Choose a writable output directory with --out DIR (default: the first PATH), e.g. fairrun "
            f"report {' '.join(map(str, paths))} --out {suggestion}")


def write_error(err: OSError, path: Path, paths: list[Path]) -> FairrunError:
    """A one-paragraph FairrunError for an OSError met writing the report's file ``path``."""
    import errno

    if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        what = "no space left on the device"
    elif err.errno == errno.EFBIG:
        what = "the file-size limit (ulimit -f) was reached"
    else:
        what = f"cannot write: {err.strerror or err}"
    return FairrunError(f"{what} writing {path}; the report is incomplete. {_out_hint(paths)}.")


def check_writable(out: Path, paths: list[Path]) -> None:
    """Create ``out`` and a probe file in it before anything is written: a read-only location is one
    paragraph naming it (and how to choose --out), not a PermissionError halfway through the report."""
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".fairrun-report-", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or str(err)
        raise FairrunError(f"cannot write the report into {out}: {reason} (the report writes jobs.csv, "
                           f"sweep.pkl, sweep.csv, report.txt, table.csv, table.tex, table.md, comparisons.csv "
                           f"and plots/ there). "
                           f"{_out_hint(paths)}.") from err


def run_report(paths: list[Path], metrics: list[str] | None = None, by: list[str] | None = None,
               split: str = "test", out: Path | None = None, baseline: str | None = None,
               run: str | None = None, gap: str | None = None, formats: str | tuple = "png",
               size: str = "screen") -> list[Path]:
    """Run the whole report (see the module docstring) and return the paths it wrote.

    ``formats``: the charts' file formats (``"pdf,png"`` or a tuple); ``size``: one of
    :data:`fairrun.report.plots.SIZES`. Every user input is checked before anything is written; a mistake
    raises FairrunError.
    """
    paths = [Path(p) for p in paths]
    output = plots.Output(plots.parse_formats(formats if isinstance(formats, str) else ",".join(formats)),
                          plots.check_size(size))
    by = list(by or DEFAULT_BY)
    coll = collect(paths)
    out = Path(out) if out is not None else paths[0]
    status = status_lines(coll)
    results = coll.results
    if results.empty:
        for line in status:
            _echo(line)
        counts = status_counts(coll.jobs)
        raise FairrunError(f"no finished run under {', '.join(map(str, paths))} (a finished run has results.pkl "
                           f"and the done marker): {', '.join(f'{s} {n}' for s, n in counts.items())}. "
                           f"Wait for the jobs to finish, or run them again.")
    if len(set(by)) != len(by):
        raise FairrunError(f"--by lists a key twice: {' '.join(by)}.")
    results_by = resolve_by(results, by)
    splits = list(pd.unique(results_by["split"].astype(str)))
    if split not in splits:
        raise FairrunError(f"unknown --split {split!r}: no finished run has a row for it. Available splits: "
                           f"{_names(splits)}.")
    metrics = list(metrics) if metrics else default_metrics(results)
    check_metrics(results, metrics)
    gap = choose_gap(metrics, gap, results)
    rows = results_by[results_by["split"].astype(str) == split].reset_index(drop=True)
    table = aggregate(rows, by, metrics)
    base = noise.parse_baseline(baseline, table, by)
    group_run, why = choose_run(rows, run, coll.jobs, gap)

    check_writable(out, paths)
    for line in status:
        _echo(line)
    written = []

    def save(path: Path, write) -> None:
        try:
            write(path)
        except OSError as err:
            raise write_error(err, path, paths) from err
        written.append(path)

    jobs_out = coll.jobs[["job", "status", "overrides", "error"]]
    save(out / "jobs.csv", lambda p: jobs_out.to_csv(p, index=False))
    save(out / "sweep.pkl", results.to_pickle)
    save(out / "sweep.csv", lambda p: results.to_csv(p, index=False))

    paths_of = coll.jobs.set_index("job")["path"].to_dict()
    run_dirs = [paths_of.get(job, "") for job in rows["job"]]
    comparisons, notes = paired.compare(table, rows, by, metrics, base, run_dirs, split)
    text = format_table(table, by, metrics, paired.marks(comparisons))
    legend = "\n".join([paired.legend(base, by, comparisons), *(f"note: {n}" for n in notes)])
    _echo()
    _echo(f"{split} split, mean ± std over runs:")
    _echo(text)
    _echo(legend)
    report_text = "\n".join([f"fairrun report {' '.join(map(str, paths))}", *status, "",
                             f"{split} split, mean ± std over runs:", text, legend, ""])
    save(out / "report.txt", lambda p: p.write_text(report_text, encoding="utf-8"))
    save(out / "table.csv", lambda p: table.to_csv(p, index=False))
    table_marks = paired.marks(comparisons)
    tex = latex_table(table, by, metrics, table_marks, split)
    save(out / "table.tex", lambda p: p.write_text(tex, encoding="utf-8"))
    save(out / "table.md", lambda p: p.write_text(markdown_table(table, by, metrics, table_marks), encoding="utf-8"))
    save(out / "comparisons.csv",
         lambda p: comparisons.drop(columns=["row", "baseline_row"]).to_csv(p, index=False))

    try:
        written += write_plots(rows, out / "plots", by=by, metrics=metrics, gap=gap, split=split,
                               group_run=group_run, why=why, output=output)
    except OSError as err:
        raise write_error(err, Path(err.filename) if err.filename else out / "plots", paths) from err
    _echo()
    _echo("wrote:")
    for path in written:
        _echo(f"  {path}")
    return written


def write_plots(rows: pd.DataFrame, plot_dir: Path, by: list[str], metrics: list[str], gap: str | None,
                split: str, group_run: pd.Series, why: str, output: plots.Output = plots.SCREEN) -> list[Path]:
    """Every chart that the data supports, each in every format of ``output``; returns the files written.
    ``rows``: one row per run (one split)."""
    colors = plots.method_colors(rows["method"].astype(str).unique() if "method" in rows else [])
    written = []
    ratios = pd.to_numeric(rows.get("imbalance_ratio", pd.Series(dtype=float)), errors="coerce").dropna().unique()
    if len(ratios) >= 2:
        series = [k for k in by if k != "imbalance_ratio"]
        for m in metrics:
            if pd.to_numeric(rows[m], errors="coerce").notna().any():
                written.append(plots.plot_metric_vs_ratio(rows, m, series, colors,
                                                          plot_dir / f"{plots.safe_name(m)}_vs_ratio.png", split,
                                                          output))
    if gap is not None and "accuracy" in rows and pd.to_numeric(rows[gap], errors="coerce").notna().any():
        written.append(plots.plot_accuracy_vs_gap(rows, gap, colors,
                                                  plot_dir / f"accuracy_vs_{plots.safe_name(gap)}.png", split,
                                                  output))
    if any(str(c).startswith("acc[") and str(c).endswith("]") for c in rows.columns):
        job = str(group_run["job"])
        title = group_chart_title(group_run, by, split, why, output.paper)
        written.append(plots.plot_groups(group_run, plot_dir / f"groups_{plots.safe_name(job)}.png", title, output))
    if gap is not None and has_private_runs(rows):
        written.append(plots.plot_epsilon_vs_gap(rows, gap, colors,
                                                 plot_dir / f"epsilon_vs_{plots.safe_name(gap)}.png", split,
                                                 output))
    return [file for path in written for file in output.files(path)]


GROUP_TITLE_KEYS = {"imbalance_ratio": "ratio"}  # short names in the per-group chart's title


def group_chart_title(run: pd.Series, by: list[str], split: str, why: str, paper: bool = False) -> str:
    """The per-group chart's title: the run's settings, ``method=groupdro, ratio=0.9, seed=1`` (the --by keys,
    method, imbalance ratio and seed, as far as the run has them), its split and, on screen, why this run
    was chosen. A run without any of those keys is named by its job."""
    keys = list(dict.fromkeys([*by, "method", "imbalance_ratio", "seed"]))
    settings = ", ".join(f"{GROUP_TITLE_KEYS.get(k, k)}={plots.format_key(run[k])}" for k in keys if k in run.index)
    settings = settings or f"job {run.get('job', '?')}"
    title = f"Per-group accuracy: {settings} ({split} split)"
    return title if paper else f"{title}\n{why}"
