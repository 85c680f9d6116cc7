"""The report's table: one row per group of ``--by`` keys, each metric as mean ± std over its runs."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fairrun.metrics import registry

DEFAULT_BY = ("method", "imbalance_ratio")
DEFAULT_METRICS = registry.VIEWS["report"]  # accuracy, worst_group_acc, acc_gap, dp_diff, eo_diff
DASH = "–"


def has_private_runs(results: pd.DataFrame) -> bool:
    """True when any run is private (a finite ``epsilon``)."""
    return "epsilon" in results and bool(np.isfinite(pd.to_numeric(results["epsilon"], errors="coerce")).any())


def default_metrics(results: pd.DataFrame) -> list[str]:
    """The registry's ``report`` view (accuracy, worst_group_acc, acc_gap, dp_diff, eo_diff) as far as present,
    plus epsilon when any run is private."""
    metrics = [m for m in DEFAULT_METRICS if m in results]
    if has_private_runs(results):
        metrics.append("epsilon")
    return metrics


def metric_columns(results: pd.DataFrame, intervals: bool = False) -> list[str]:
    """The numeric columns a table can show; the interval columns (``_lo``, ``_hi``, ``_median``) only
    with ``intervals=True``."""
    return [c for c in results.columns
            if c != "seed" and not str(c).startswith(PARAMETER_PREFIXES)
            and pd.api.types.is_numeric_dtype(results[c]) and not pd.api.types.is_bool_dtype(results[c])
            and (intervals or not str(c).endswith(registry.INTERVAL_SUFFIXES))]


# results.pkl's parameter columns (``method.lam``, ``imbalance.size``: fairrun.training.results.run_parameters):
# settings of the run, not metrics
PARAMETER_PREFIXES = tuple(f"{section}." for section in ("dataset", "model", "method", "imbalance", "gpu",
                                                         "trainer", "eval", "postprocess"))


def value_order(key: str, values) -> list:
    """The display order of one ``--by`` key's values.

    ``imbalance_ratio`` descending (1 first), ``method`` alphabetically with ``erm`` first, anything
    else ascending (numbers numerically); a missing value (NaN) last.
    """
    values = list(pd.unique(pd.Series(list(values), dtype=object)))
    present = [v for v in values if not _isnan(v)]
    missing = [v for v in values if _isnan(v)][:1]
    if key == "imbalance_ratio":
        present.sort(key=lambda v: -float(v))
    elif key == "method":
        present.sort(key=lambda v: (str(v) != "erm", str(v)))
    else:
        present.sort(key=lambda v: (0, float(v), "") if _is_number(v) else (1, 0.0, str(v)))
    return present + missing


def _isnan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def sort_rows(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Rows ordered by the ``--by`` keys, first key first, each in :func:`value_order`."""
    if frame.empty:
        return frame
    ranks = pd.DataFrame(index=frame.index)
    for key in by:
        order = value_order(key, frame[key])
        position = {("nan" if _isnan(v) else repr(v)): i for i, v in enumerate(order)}
        ranks[key] = [position["nan" if _isnan(v) else repr(v)] for v in frame[key]]
    return frame.loc[ranks.sort_values(list(by), kind="stable").index]


def has_interval(results: pd.DataFrame, metric: str) -> bool:
    """True when results carry a bootstrap interval for ``metric`` (columns ``metric_lo`` and ``metric_hi``)."""
    return f"{metric}_lo" in results and f"{metric}_hi" in results


def aggregate(rows: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per group of ``by`` keys: ``n`` (runs) and per metric ``<m>_mean``, ``<m>_std``, ``<m>_lo``, ``<m>_hi``.

    ``rows`` holds one row per run (already one split). Mean and std (ddof 1; NaN for one run) skip
    NaN values. The row's interval is [mean of the runs' ``m_lo``, mean of their ``m_hi``], and NaN
    unless every run of the group has both ends. Groups are sorted with :func:`sort_rows`.
    """
    work = rows[list(by)].copy()
    spec = {"n": (by[0], "size")}
    for i, m in enumerate(metrics):
        work[f"v{i}"] = pd.to_numeric(rows[m], errors="coerce")
        spec[f"{m}_mean"], spec[f"{m}_std"] = (f"v{i}", "mean"), (f"v{i}", "std")
        for end in ("lo", "hi"):
            ends = pd.to_numeric(rows[f"{m}_{end}"], errors="coerce") if has_interval(rows, m) else \
                pd.Series(np.nan, index=rows.index)
            work[f"{end}{i}"], work[f"{end}{i}_ok"] = ends, ends.notna()
            spec[f"{m}_{end}"], spec[f"{m}_{end}_ok"] = (f"{end}{i}", "mean"), (f"{end}{i}_ok", "all")
    out = work.groupby(list(by), dropna=False, sort=False).agg(**spec).reset_index()
    for m in metrics:
        complete = out.pop(f"{m}_lo_ok") & out.pop(f"{m}_hi_ok")
        out[f"{m}_lo"] = out[f"{m}_lo"].where(complete)
        out[f"{m}_hi"] = out[f"{m}_hi"].where(complete)
    return sort_rows(out, list(by)).reset_index(drop=True)


def _decimals(value: float) -> int:
    if not np.isfinite(value):
        return 4
    magnitude = abs(value)
    return 4 if magnitude < 10 else 2 if magnitude < 1000 else 0


def format_cell(mean: float, std: float) -> str:
    """``mean ± std`` with matching decimals; ``± –`` when std is undefined (one run), ``–`` when no value."""
    if not np.isfinite(mean):
        return DASH
    d = _decimals(mean)
    spread = f"{std:.{d}f}" if np.isfinite(std) else DASH
    return f"{mean:.{d}f} ± {spread}"


def format_key(value) -> str:
    """A ``--by`` value as shown in the table (NaN: ``none``; floats without trailing zeros)."""
    if _isnan(value):
        return "none"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def format_table(table: pd.DataFrame, by: list[str], metrics: list[str],
                 marks: dict[tuple[int, str], str] | None = None) -> str:
    """Fixed-width text: the ``by`` keys, ``n`` and one ``mean ± std`` cell per metric, then its mark.

    ``table`` is :func:`aggregate`'s output; ``marks`` maps (row position, metric) to a one-character
    verdict mark (≈ ▲ ▼) written after the cell. Keys are left-aligned, numbers right-aligned.
    """
    marks = marks or {}
    table = table.reset_index(drop=True)
    keys = [[format_key(v) for v in table[k]] for k in by]
    columns = [(k, vals, "<") for k, vals in zip(by, keys)]
    columns.append(("n", [str(int(v)) for v in table["n"]], ">"))
    for m in metrics:
        cells = [format_cell(table.at[i, f"{m}_mean"], table.at[i, f"{m}_std"]) for i in range(len(table))]
        width = max([len(c) for c in cells], default=0)
        if any(k[1] == m for k in marks):
            cells = [c.rjust(width) + " " + (marks.get((i, m)) or " ") for i, c in enumerate(cells)]
        columns.append((m, cells, ">"))
    widths = [max([len(name)] + [len(c) for c in cells]) for name, cells, _ in columns]

    def line(items):
        return "  ".join(f"{text:{align}{w}}" for text, (_, _, align), w in zip(items, columns, widths)).rstrip()

    lines = [line([name for name, _, _ in columns]), "  ".join("-" * w for w in widths)]
    lines += [line([cells[i] for _, cells, _ in columns]) for i in range(len(table))]
    return "\n".join(lines)


# The comparison marks in LaTeX (base LaTeX math, no extra package) and their meaning, for table.tex's legend.
LATEX_MARKS = {"▲": r"{}^{\uparrow}", "▼": r"{}^{\downarrow}", "≈": r"{}^{\approx}"}
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (``fair_reg`` -> ``fair\\_reg``)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def paper_cell(mean: float, std: float, latex: bool = False) -> str:
    """``mean ± std`` at 3 decimals (2 from 10, 0 from 1000), as in a paper's table: ``0.912 ± 0.004``, or in
    LaTeX math ``$0.912 \\pm 0.004$``; the mean alone when std is undefined (one run), ``–`` when no value."""
    if not np.isfinite(mean):
        return "--" if latex else DASH
    magnitude = abs(mean)
    d = 3 if magnitude < 10 else 2 if magnitude < 1000 else 0
    text = f"{mean:.{d}f}" + (f" \\pm {std:.{d}f}" if latex and np.isfinite(std) else
                              f" ± {std:.{d}f}" if np.isfinite(std) else "")
    return f"${text}$" if latex else text


def _paper_rows(table: pd.DataFrame, by: list[str], metrics: list[str], marks: dict, latex: bool) -> list[list[str]]:
    table = table.reset_index(drop=True)
    escape = latex_escape if latex else _markdown_escape
    rows = []
    for i in range(len(table)):
        cells = [escape(format_key(table.at[i, k])) for k in by] + [str(int(table.at[i, "n"]))]
        for m in metrics:
            cell = paper_cell(table.at[i, f"{m}_mean"], table.at[i, f"{m}_std"], latex)
            mark = marks.get((i, m), "")
            cells.append(_latex_marked(cell, mark) if latex else cell + (f" {mark}" if mark else ""))
        rows.append(cells)
    return rows


def _latex_marked(cell: str, mark: str) -> str:
    r"""A LaTeX cell with its mark inside the same math (``$0.912 \pm 0.004\,{}^{\uparrow}$``): never ``$$``."""
    symbol = LATEX_MARKS.get(mark)
    if not symbol:
        return cell
    if cell.startswith("$") and cell.endswith("$"):
        return f"{cell[:-1]}\\,{symbol}$"
    return f"{cell}${symbol}$"


def latex_table(table: pd.DataFrame, by: list[str], metrics: list[str], marks: dict | None = None,
                split: str = "test") -> str:
    """A booktabs ``tabular`` (``\\toprule``/``\\midrule``/``\\bottomrule``; needs ``\\usepackage{booktabs}``) of
    :func:`aggregate`'s ``table``: the ``by`` keys, ``n`` and one ``$mean \\pm std$`` cell per metric
    (:func:`paper_cell`), underscores and other special characters escaped, and the comparison marks
    ▲ ▼ ≈ (:func:`fairrun.report.paired.marks`) as superscript ``\\uparrow``, ``\\downarrow``, ``\\approx``
    inside the cell's math.
    Meant for ``\\input{table.tex}`` inside the paper's own ``table`` environment and caption."""
    marks = marks or {}
    head = [latex_escape(k) for k in by] + ["$n$"] + [latex_escape(m) for m in metrics]
    lines = [f"% fairrun report: {split} split, mean $\\pm$ std over runs; needs \\usepackage{{booktabs}}.",
             "% Marks against the baseline (95% paired-bootstrap interval of the difference): "
             "$^{\\uparrow}$ above 0, $^{\\downarrow}$ below 0, $^{\\approx}$ holds 0.",
             "\\begin{tabular}{" + "l" * len(by) + "r" * (1 + len(metrics)) + "}", "\\toprule",
             " & ".join(head) + " \\\\", "\\midrule"]
    lines += [" & ".join(cells) + " \\\\" for cells in _paper_rows(table, by, metrics, marks, latex=True)]
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def _markdown_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def markdown_table(table: pd.DataFrame, by: list[str], metrics: list[str], marks: dict | None = None) -> str:
    """A GitHub-markdown table of :func:`aggregate`'s ``table``: the same cells as :func:`latex_table`
    (``0.912 ± 0.004 ▲``), keys left-aligned, numbers right-aligned, ``|`` escaped."""
    marks = marks or {}
    head = [*by, "n", *metrics]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join([":---"] * len(by) + ["---:"] * (1 + len(metrics))) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in _paper_rows(table, by, metrics, marks, latex=False)]
    return "\n".join(lines) + "\n"
