"""The report's charts (matplotlib, Agg): metric vs imbalance ratio, the accuracy / fairness Pareto front,
one run's per-group (or, for a binary target, per-cell) accuracies, and ε vs a fairness gap for private runs.

Every chart draws on a fresh :class:`matplotlib.figure.Figure` (no pyplot state, no GUI backend) and
colours each method the same way in every chart. :class:`Output` says which files a chart becomes (PNG
at 150 dpi, and/or vector PDF and SVG) and at which size: ``screen`` (today's sizes, legend beside the
axes) or a paper's ``one-column`` (3.3 in) / ``two-column`` (6.9 in) width, with font sizes meant for
that print size (7-9 pt) and the legend below the axes so the figure is exactly that wide.
"""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fairrun.core.errors import FairrunError
from fairrun.metrics import registry
from fairrun.report.table import format_key, sort_rows, value_order

DPI = 150
PAPER_DPI = 300  # a PNG at a paper size is printed at its width: 300 dpi, as journals ask for line art in PNG
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10,
         "xtick.labelsize": 10, "ytick.labelsize": 10}
# Fixed colours for fairrun's methods, so a method looks the same in every report.
METHOD_COLORS = {
    "erm": "#333333", "reweight": "#1f77b4", "resample": "#ff7f0e", "groupdro": "#2ca02c",
    "fair_reg": "#d62728", "fair_mask": "#9467bd", "adversarial": "#8c564b",
    "domain_independent": "#e377c2", "fairalm": "#bcbd22", "dpsgd": "#17becf", "dp_fedavg": "#7f7f7f",
    "dbvae": "#aec7e8", "gan_debias": "#ffbb78", "minority_gan": "#98df8a",
}
_EXTRA_COLORS = ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p", "d"]
LINESTYLES = ["-", "--", ":", "-."]
# Labels of the columns that are not metrics; a metric's label is its registry label.
COLUMN_LABELS = {"epsilon": "privacy budget ε (lower is more private)"}
FAIRNESS_GAPS = registry.gaps()  # acc_gap, acc_var, dp_diff, eo_diff, eopp_diff, kl, ti_gap
FORMATS = ("png", "pdf", "svg")
# Paper sizes: (width, height) in inches and font sizes in points at that print size. 3.3 in and 6.9 in are
# about the column and text widths of the two-column templates (ACM 3.33 / 7.0 in, CVPR 3.25 / 6.88 in).
PAPER_SIZES = {
    "one-column": {"width": 3.3, "height": 2.6, "style": {
        "font.size": 7, "axes.titlesize": 7.5, "axes.labelsize": 7, "legend.fontsize": 6.5,
        "legend.title_fontsize": 6.5, "xtick.labelsize": 6.5, "ytick.labelsize": 6.5, "lines.markersize": 4,
        "lines.linewidth": 1.2}},
    "two-column": {"width": 6.9, "height": 3.4, "style": {
        "font.size": 8.5, "axes.titlesize": 9, "axes.labelsize": 8.5, "legend.fontsize": 8,
        "legend.title_fontsize": 8, "xtick.labelsize": 8, "ytick.labelsize": 8, "lines.markersize": 5,
        "lines.linewidth": 1.4}},
}
SIZES = ("screen", *PAPER_SIZES)


@dataclass(frozen=True)
class Output:
    """Which files a chart is written as (``formats``: png, pdf, svg) and at which ``size`` (:data:`SIZES`)."""

    formats: tuple = ("png",)
    size: str = "screen"

    @property
    def paper(self) -> bool:
        """True for a paper size (fixed width, legend below the axes)."""
        return self.size in PAPER_SIZES

    def files(self, path: Path) -> list[Path]:
        """The files a chart saved as ``path`` becomes: ``path`` with each format's suffix."""
        return [Path(path).with_suffix(f".{fmt}") for fmt in self.formats]


SCREEN = Output()


def parse_formats(text: str) -> tuple:
    """``--format`` (comma-separated png, pdf, svg; e.g. ``pdf,svg,png``) as a tuple without repeats; FairrunError
    naming an unknown or missing format."""
    formats = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in str(text).split(",") if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise FairrunError(f"unknown --format {text!r}" + (f" ({', '.join(unknown)})" if unknown else "") +
                           f": give one or more of {', '.join(FORMATS)}, separated by commas, e.g. "
                           f"--format pdf,png.")
    return formats


def check_size(size: str) -> str:
    """``--size`` itself, or FairrunError naming it and the accepted sizes."""
    if size not in SIZES:
        raise FairrunError(f"unknown --size {size!r}: give one of {', '.join(SIZES)} (screen: the report's own "
                           f"sizes; one-column: 3.3 in wide; two-column: 6.9 in wide, fonts legible at that "
                           f"print size).")
    return size


def metric_label(metric: str) -> str:
    """Axis label of a column: its name and meaning (all metrics but ε are fractions in [0, 1])."""
    return COLUMN_LABELS.get(metric) or registry.label(metric)


def method_colors(methods) -> dict[str, str]:
    """A colour per method: fixed for fairrun's methods, the next spare colour for any other name."""
    colors, spare = {}, iter(_EXTRA_COLORS * 10)
    for method in value_order("method", [str(m) for m in methods]):
        colors[method] = METHOD_COLORS.get(method) or next(spare)
    return colors


def pareto_mask(accuracy, gap) -> np.ndarray:
    """Which points are Pareto-optimal for high accuracy and low gap.

    A point is dominated when another has accuracy >= and gap <= with at least one strict; points
    with a NaN coordinate are never optimal. Identical points do not dominate each other.
    """
    acc, gap = np.asarray(accuracy, dtype=float), np.asarray(gap, dtype=float)
    valid = np.isfinite(acc) & np.isfinite(gap)
    optimal = valid.copy()
    a, g = acc[valid], gap[valid]
    idx = np.flatnonzero(valid)
    for start in range(0, len(a), 512):
        ai, gi = a[start:start + 512, None], g[start:start + 512, None]
        dominated = ((a[None] >= ai) & (g[None] <= gi) & ((a[None] > ai) | (g[None] < gi))).any(axis=1)
        optimal[idx[start:start + 512]] = ~dominated
    return optimal


def _style(output: Output) -> dict:
    return PAPER_SIZES[output.size]["style"] if output.paper else STYLE


def _figure(width=8.0, height=5.0, output: Output = SCREEN):
    """A figure of ``width`` x ``height`` inches on screen; at a paper size its width and height, laid out
    with constrained layout so that the saved file is exactly that size."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if output.paper:
        size = PAPER_SIZES[output.size]
        fig = Figure(figsize=(size["width"], size["height"]), layout="constrained")
    else:
        fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.grid(True, alpha=0.35, linewidth=0.6 if output.paper else 0.8)
    return fig, ax


def _save(fig, path: Path, output: Output = SCREEN) -> Path:
    """Write the figure as ``output.files(path)`` and return the first of them (vector text stays text:
    TrueType fonts in PDF, ``<text>`` elements in SVG)."""
    import matplotlib

    files = output.files(path)
    files[0].parent.mkdir(parents=True, exist_ok=True)
    extra = {} if output.paper else {"bbox_inches": "tight", "pad_inches": 0.15}
    dpi = PAPER_DPI if output.paper else DPI
    with matplotlib.rc_context({"pdf.fonttype": 42, "svg.fonttype": "none"}):
        for file in files:
            fig.savefig(file, dpi=dpi, metadata=_metadata(file.suffix), **extra)
    return files[0]


def _metadata(suffix: str) -> dict:
    # No creation date: the same report writes the same PDF/SVG bytes, so figures diff cleanly in a paper's repo.
    return {".pdf": {"CreationDate": None}, ".svg": {"Date": None}}.get(suffix, {})


def _outside_legend(ax, output: Output = SCREEN, handles=None, **kwargs):
    """The legend beside the axes on screen, below them (in columns) at a paper size."""
    if handles is None:
        handles, _ = ax.get_legend_handles_labels()
    if not handles:
        return None
    if output.paper:
        ncol = kwargs.pop("ncol", None) or (2 if output.size == "one-column" else 4)
        return ax.figure.legend(handles=handles, loc="outside lower center", ncol=min(ncol, len(handles)),
                                frameon=False, columnspacing=1.0, handletextpad=0.4, **kwargs)
    kwargs.pop("ncol", None)
    return ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                     frameon=False, **kwargs)


def _column_legend(ax, output: Output, columns: list[list], **kwargs):
    """A legend whose ``columns`` (lists of handles: method colours, ratio shapes, keys) stay apart: below the
    axes each list is one legend column (padded with blank entries); beside them on screen, one after another."""
    from matplotlib.lines import Line2D

    columns = [c for c in columns if c]
    if not output.paper:
        return _outside_legend(ax, output, handles=[h for c in columns for h in c], **kwargs)
    rows = max(len(c) for c in columns)
    blank = [Line2D([], [], linestyle="", label=" ") for _ in range(rows)]
    handles = [h for c in columns for h in [*c, *blank[:rows - len(c)]]]
    return _outside_legend(ax, output, handles=handles, ncol=len(columns), **kwargs)


def _wrap(text: str, output: Output, fontsize_key: str = "axes.titlesize", vertical: bool = False) -> str:
    """``text`` wrapped to the axes' width (``vertical``: height) at a paper size; unchanged on screen.

    The axes take about 85 % of the figure's width (70 % of its height, below them the legend) and a
    character of DejaVu Sans about 0.6 em on average."""
    if not output.paper:
        return text
    size = PAPER_SIZES[output.size]
    points = float(_style(output)[fontsize_key])
    inches = size["height"] * 0.7 if vertical else size["width"] * 0.85
    chars = max(16, int(inches * 72 / (0.6 * points)))
    # a no-break space (U+00A0) keeps "→ less fair" on one line: textwrap breaks at ASCII whitespace only
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def _series_label(keys: list[str], values: tuple) -> str:
    if not keys:
        return "all runs"
    if keys == ["method"]:
        return str(values[0])
    return ", ".join(f"{k}={format_key(v)}" if k != "method" else str(v) for k, v in zip(keys, values))


def plot_metric_vs_ratio(runs: pd.DataFrame, metric: str, series_keys: list[str], colors: dict[str, str],
                         path: Path, split: str = "test", output: Output = SCREEN) -> Path:
    """``metric`` against the imbalance ratio: one line per ``series_keys`` group (colour = method),
    mean over its runs with a shaded ±1 std band.

    Ratios sit at evenly spaced categorical positions from the most balanced (0.5) on the left to 1
    (minority absent) on the right, labelled with their values; each line is shifted by a small offset
    (at most ±0.1 of the spacing) so that coinciding means and their error bars stay apart. ``runs``: one
    row per run.
    """
    import matplotlib

    runs = runs[runs["imbalance_ratio"].notna()]
    ratios = sorted(runs["imbalance_ratio"].unique())
    position = {r: i for i, r in enumerate(ratios)}
    with matplotlib.rc_context(_style(output)):
        fig, ax = _figure(max(7.0, 0.6 * len(ratios) + 4), 5.0, output)
        if series_keys:
            combos = sort_rows(runs[series_keys].drop_duplicates(), series_keys)
            order = [(tuple(c), runs[np.logical_and.reduce([[_eq(v, c[j]) for v in runs[k]]
                                                            for j, k in enumerate(series_keys)])])
                     for c in combos.itertuples(index=False)]
        else:
            order = [((), runs)]
        style_of_method: dict[str, int] = {}
        dodge = _dodges(len(order))
        for n, (values, frame) in enumerate(order):
            method = str(values[series_keys.index("method")]) if "method" in series_keys else None
            if method is not None:
                color = colors.get(method, "C0")
                ls = LINESTYLES[style_of_method.setdefault(method, 0) % len(LINESTYLES)]
                style_of_method[method] += 1
            else:
                color, ls = f"C{n % 10}", "-"
            values_ = pd.to_numeric(frame[metric], errors="coerce")
            if values_.isna().all():  # e.g. epsilon of a non-private method: no line, no legend entry
                continue
            stats = values_.groupby(frame["imbalance_ratio"]).agg(["mean", "std"])
            stats = stats.sort_index()
            x = np.array([position[r] for r in stats.index], dtype=float) + dodge[n]
            mean, std = stats["mean"].to_numpy(float), stats["std"].to_numpy(float)
            ax.plot(x, mean, ls, color=color, marker=MARKERS[n % len(MARKERS)],
                    markersize=3.5 if output.paper else 5, linewidth=1.2 if output.paper else 1.8,
                    label=_series_label(series_keys, values))
            band = np.isfinite(std) & np.isfinite(mean)
            if band.any():
                low, high = _clip_band(mean - std, mean + std, values_, fraction=metric not in COLUMN_LABELS)
                ax.fill_between(x, np.where(band, low, np.nan), np.where(band, high, np.nan),
                                color=color, alpha=0.18, linewidth=0)
                # A band needs two neighbouring points; an isolated one gets an error bar instead.
                left, right = np.r_[False, band[:-1]], np.r_[band[1:], False]
                alone = band & ~left & ~right
                if alone.any():
                    ax.errorbar(x[alone], mean[alone], yerr=std[alone], fmt="none", ecolor=color, alpha=0.6,
                                capsize=4, linewidth=1.2)
        ax.set_xticks(range(len(ratios)))
        ax.set_xticklabels([f"{r:g}" for r in ratios], rotation=45 if len(ratios) > 8 else 0)
        ax.set_xlim(-0.4, len(ratios) - 0.6)
        if output.paper:
            ax.set_xlabel(_wrap("imbalance ratio (majority group's share of the training set; 0.5 = balanced)",
                                output, "axes.labelsize"))
        else:
            ax.set_xlabel("imbalance ratio (majority group's share of training set)\n"
                          "0.5 = balanced  →  1 = minority absent (evenly spaced, not to scale)")
        ax.set_ylabel(_wrap(metric_label(metric), output, "axes.labelsize", vertical=True))
        ax.set_title(_wrap(f"{metric} vs imbalance ratio ({split} split; mean ± 1 std over runs)", output))
        _outside_legend(ax, output, title=None if output.paper else "line = mean\nband = ±1 std")
        return _save(fig, path, output)


def _clip_band(low: np.ndarray, high: np.ndarray, values: pd.Series,
               fraction: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The ±1 std band kept inside the metric's range: not below 0 when no value is negative (accuracies,
    gaps, ε), not above 1 for a ``fraction`` whose values lie in [0, 1] (every metric but ε)."""
    finite = values[np.isfinite(values)]
    if len(finite) and finite.min() >= 0:
        low = np.maximum(low, 0.0)
    if fraction and len(finite) and finite.min() >= 0 and finite.max() <= 1:
        high = np.minimum(high, 1.0)
    return low, high


def _dodges(n: int, spread: float = 0.2) -> np.ndarray:
    """``n`` x offsets centred on 0, ``spread / n`` apart (at most ±``spread / 2``), so that series at the same
    categorical position do not hide each other's markers and error bars."""
    if n <= 1:
        return np.zeros(max(n, 1))
    return (np.arange(n) - (n - 1) / 2) * (spread / n)


def plot_accuracy_vs_gap(runs: pd.DataFrame, gap: str, colors: dict[str, str], path: Path,
                         split: str = "test", output: Output = SCREEN) -> Path:
    """Accuracy (y) against ``gap`` (x, lower is fairer): colour = method, marker shape = imbalance ratio.

    Each run is a small faint point; each (method, ratio) setting with several runs adds its mean with
    ±1 std error bars in both directions (semi-transparent, so overlapping settings stay readable). The
    Pareto-optimal runs (:func:`pareto_mask`) are ringed and joined by a step line: the best accuracy
    reachable at each gap. The legend is split into method colours and ratio shapes.
    """
    import matplotlib

    acc = pd.to_numeric(runs["accuracy"], errors="coerce").to_numpy(float)
    gaps = pd.to_numeric(runs[gap], errors="coerce").to_numpy(float)
    optimal = pareto_mask(acc, gaps)
    methods = runs["method"].astype(str) if "method" in runs else pd.Series("all runs", index=runs.index)
    ratios = runs["imbalance_ratio"] if "imbalance_ratio" in runs else pd.Series(np.nan, index=runs.index)
    ratio_values = value_order("imbalance_ratio", ratios.unique())
    shape = {format_key(r): MARKERS[k % len(MARKERS)] for k, r in enumerate(ratio_values)}
    method_values = value_order("method", methods.unique())
    small = output.paper
    with matplotlib.rc_context(_style(output)):
        fig, ax = _figure(8.0, 5.5, output)
        for method in method_values:
            for ratio in ratio_values:
                sel = (methods == method).to_numpy() & np.array([_eq(r, ratio) for r in ratios])
                if sel.any():
                    _setting_points(ax, gaps[sel], acc[sel], colors.get(method, "C0"), shape[format_key(ratio)],
                                    small)
        if optimal.any():
            order = np.argsort(gaps[optimal], kind="stable")
            fx, fy = gaps[optimal][order], acc[optimal][order]
            ax.plot(fx, fy, drawstyle="steps-post", color="black", linewidth=0.8 if small else 1.1, zorder=2,
                    linestyle="--")
            ax.scatter(fx, fy, s=45 if small else 110, facecolors="none", edgecolors="black",
                       linewidths=0.8 if small else 1.2, zorder=5)
        ax.set_xlabel(_wrap(f"{metric_label(gap)}  →\u00a0less\u00a0fair", output, "axes.labelsize"))
        ax.set_ylabel(_wrap(f"{metric_label('accuracy')}  →\u00a0better", output, "axes.labelsize", vertical=True))
        n = int((np.isfinite(acc) & np.isfinite(gaps)).sum())
        ax.set_title(_wrap(f"Accuracy vs {gap}: {n} runs ({split} split)", output))
        columns = _gap_legend(method_values, ratio_values, shape, colors, int(optimal.sum()), output)
        _column_legend(ax, output, columns)
        return _save(fig, path, output)


def _setting_points(ax, x: np.ndarray, y: np.ndarray, color: str, marker: str, small: bool) -> None:
    """One setting's runs as faint points, and with two or more finite runs their mean ± 1 std (both axes)."""
    ax.scatter(x, y, s=10 if small else 22, color=color, marker=marker, alpha=0.35, linewidths=0, zorder=3)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return
    mx, my = x[ok].mean(), y[ok].mean()
    ax.errorbar([mx], [my], xerr=[x[ok].std(ddof=1)], yerr=[y[ok].std(ddof=1)], fmt="none", ecolor=color,
                alpha=0.55, elinewidth=0.8 if small else 1.1, capsize=1.5 if small else 3, zorder=3)
    ax.scatter([mx], [my], s=22 if small else 60, color=color, marker=marker, edgecolors="white",
               linewidths=0.5, zorder=4)


def _gap_legend(methods: list, ratios: list, shape: dict, colors: dict, n_optimal: int, output: Output) -> list:
    """Legend proxies in three columns: a colour square per method, a grey shape per imbalance ratio, and the
    mean ± std and Pareto-front keys."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    columns = [[Patch(color=colors.get(m, "C0"), label=str(m)) for m in methods], [], []]
    if len(ratios) > 1 or not all(map(_is_missing, ratios)):
        columns[1] = [Line2D([], [], linestyle="", marker=shape[format_key(r)], color="#555555",
                             label=f"ratio {format_key(r)}") for r in ratios]
    handles = columns[2]
    key = "mean ± 1 std" if output.paper else "mean ± 1 std of a setting\n(faint: single runs)"
    handles.append(_errorbar_handle(key))
    handles.append(Line2D([], [], color="black", linestyle="--", marker="o", markerfacecolor="none",
                          label=f"Pareto front ({n_optimal} runs)"))
    return columns


def _errorbar_handle(label: str):
    """A legend entry drawn as a grey point with error bars (a container of an empty errorbar)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scratch = Figure()
    FigureCanvasAgg(scratch)
    return scratch.add_subplot().errorbar([np.nan], [np.nan], xerr=[1.0], yerr=[1.0], fmt="o", color="#555555",
                                          capsize=2, label=label)


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _group_columns(run: pd.Series) -> tuple[list[str], list[tuple[str, str]]]:
    """(groups of the ``acc[<group>]`` columns, (group, class) of the ``acc[<group>,<class>]`` columns),
    in column order."""
    groups, cells = [], []
    for column in run.index:
        key, inside, suffix = registry.split_column(str(column))
        if suffix is None and key == f"acc[{registry.GROUP}]":
            groups.append(inside)
        elif suffix is None and key == f"acc[{registry.GROUP},{registry.CLASS}]":
            cells.append(tuple(inside.split(",", 1)))
    return groups, cells


def plot_groups(run: pd.Series, path: Path, title: str, output: Output = SCREEN) -> Path:
    """Per-group accuracy bars (``acc[<group>]``) of one run, with 95 % bootstrap error bars when
    ``acc[<group>]_lo``/``_hi`` exist, the group's training count ``n_train[<group>]`` written above
    each bar, and a dashed line at the run's overall accuracy.

    For a binary target with per-cell columns (``acc[<group>,<class>]``, the cells of Sagawa et al.,
    ICLR 2020) it draws one bar per cell instead, grouped by protected group and coloured by class, with
    the cells' intervals and test counts ``n[<group>,<class>]`` (:func:`plot_cells`)."""
    import matplotlib

    groups, cells = _group_columns(run)
    if cells and len({c for _, c in cells}) == 2:
        return plot_cells(run, path, title, groups, cells, output)
    values = np.array([_num(run.get(f"acc[{g}]")) for g in groups])
    lo = np.array([_num(run.get(f"acc[{g}]_lo")) for g in groups])
    hi = np.array([_num(run.get(f"acc[{g}]_hi")) for g in groups])
    has_bars = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(values)
    with matplotlib.rc_context(_style(output)):
        fig, ax = _figure(max(6.5, 0.8 * len(groups) + 3.5), 5.0, output)
        x = np.arange(len(groups))
        ax.bar(x, np.nan_to_num(values), width=0.6, color="#4c72b0", label="group accuracy", zorder=2)
        if has_bars.any():
            err = np.vstack([np.where(has_bars, values - lo, 0), np.where(has_bars, hi - values, 0)])
            ax.errorbar(x[has_bars], values[has_bars], yerr=err[:, has_bars], fmt="none", ecolor="black",
                        capsize=5, linewidth=1.2, zorder=3, label="95% bootstrap interval")
        top = np.where(has_bars, hi, values)
        for i, g in enumerate(groups):
            n_train = _num(run.get(f"n_train[{g}]"))
            n_test = _num(run.get(f"n[{g}]"))
            text = [f"n_train={int(n_train):,}" if np.isfinite(n_train) else None,
                    f"n_{run.get('split', 'test')}={int(n_test):,}" if np.isfinite(n_test) else None]
            text = "\n".join(t for t in text if t)
            if not np.isfinite(values[i]):
                text = "no members\n" + text
            y = top[i] if np.isfinite(top[i]) else 0.0
            if text:
                ax.annotate(text, (x[i], y), xytext=(0, 2 if output.paper else 4), textcoords="offset points",
                            ha="center", va="bottom", fontsize=max(6.0, _style(output)["font.size"] - 1.5),
                            bbox=LABEL_BOX, zorder=6)
        _finish_groups(ax, run, groups, title, "accuracy within the group (fraction correct)", output=output)
        return _save(fig, path, output)


CELL_COLORS = ("#4c72b0", "#dd8452")  # the two classes of a binary target
# Behind the counts written above the bars: a dashed accuracy line through a label leaves it legible.
LABEL_BOX = {"boxstyle": "square,pad=0.08", "facecolor": "white", "edgecolor": "none", "alpha": 0.8}


def plot_cells(run: pd.Series, path: Path, title: str, groups: list[str],
               cells: list[tuple[str, str]], output: Output = SCREEN) -> Path:
    """One bar per (protected group, class) cell: ``acc[<group>,<class>]`` (the recall of the class within
    the group), grouped by group and coloured by class, with the cells' 95 % bootstrap intervals
    (``_lo``/``_hi``), each cell's count ``n[<group>,<class>]`` above its bar, the group's training count
    below the group's name, and dashed lines at the overall and the worst-cell accuracy (the worst-group
    accuracy of Sagawa et al., ICLR 2020)."""
    import matplotlib

    groups = groups or list(dict.fromkeys(g for g, _ in cells))
    classes = list(dict.fromkeys(c for _, c in cells))
    width = 0.8 / len(classes)
    split = run.get("split", "test")
    with matplotlib.rc_context(_style(output)):
        fig, ax = _figure(max(6.5, 1.1 * len(groups) + 3.5), 5.0, output)
        x = np.arange(len(groups))
        for j, cls in enumerate(classes):
            cols = [f"acc[{g},{cls}]" for g in groups]
            values = np.array([_num(run.get(c)) for c in cols])
            lo = np.array([_num(run.get(f"{c}_lo")) for c in cols])
            hi = np.array([_num(run.get(f"{c}_hi")) for c in cols])
            xs = x + (j - (len(classes) - 1) / 2) * width
            ax.bar(xs, np.nan_to_num(values), width=width * 0.92, color=CELL_COLORS[j % len(CELL_COLORS)],
                   label=f"label {cls}", zorder=2)
            has_bars = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(values)
            if has_bars.any():
                err = np.vstack([values - lo, hi - values])[:, has_bars]
                ax.errorbar(xs[has_bars], values[has_bars], yerr=err, fmt="none", ecolor="black", capsize=4,
                            linewidth=1.1, zorder=3, label="95% bootstrap interval" if j == 0 else None)
            top = np.where(has_bars, hi, values)
            for i, g in enumerate(groups):
                n_cell = _num(run.get(f"n[{g},{cls}]"))
                text = f"n={int(n_cell):,}" if np.isfinite(n_cell) else ""
                if not np.isfinite(values[i]):
                    text = "no rows\n" + text
                if text:
                    ax.annotate(text, (xs[i], top[i] if np.isfinite(top[i]) else 0.0), xytext=(0, 2),
                                textcoords="offset points", ha="center", va="bottom",
                                fontsize=max(6.0, _style(output)["font.size"] - 2), bbox=LABEL_BOX, zorder=6)
        worst = _num(run.get("worst_cell_acc"))
        if np.isfinite(worst):
            ax.axhline(worst, color="#55a868", linestyle=":", linewidth=1.5, zorder=4,
                       label=f"worst-cell accuracy {worst:.3f}")
        ylabel = f"cell accuracy (recall of the label), {split}"
        _finish_groups(ax, run, groups, title, ylabel, cells=True, output=output)
        return _save(fig, path, output)


def _finish_groups(ax, run: pd.Series, groups: list[str], title: str, ylabel: str, cells: bool = False,
                   output: Output = SCREEN):
    """The overall-accuracy line, axes, ticks (with the training counts under the cell groups) and legend."""
    overall = _num(run.get("accuracy"))
    if np.isfinite(overall):
        ax.axhline(overall, color="#c44e52", linestyle="--", linewidth=1.5, zorder=4,
                   label=f"overall accuracy {overall:.3f}")
    x = np.arange(len(groups))
    labels = list(groups)
    if cells:
        n_train = [_num(run.get(f"n_train[{g}]")) for g in groups]
        labels = [f"{g}\nn_train={int(n):,}" if np.isfinite(n) else g for g, n in zip(groups, n_train)]
    ax.set_xticks(x)
    many = len(groups) > 6
    ax.set_xticklabels(labels, rotation=30 if many else 0, ha="right" if many else "center")
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylim(0, 1.18)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel("protected group")
    ax.set_ylabel(_wrap(ylabel, output, "axes.labelsize", vertical=True))
    ax.set_title(_wrap(title, output))
    _outside_legend(ax, output)


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def plot_epsilon_vs_gap(runs: pd.DataFrame, gap: str, colors: dict[str, str], path: Path,
                        split: str = "test", output: Output = SCREEN) -> Path:
    """ε (x; log scale when the values span more than 10×) against ``gap`` for the private runs
    (finite ε), coloured by method, with one marker shape per imbalance ratio when there are several."""
    import matplotlib

    eps = pd.to_numeric(runs["epsilon"], errors="coerce")
    runs = runs[np.isfinite(eps)]
    eps = eps[runs.index].to_numpy(float)
    gaps = pd.to_numeric(runs[gap], errors="coerce").to_numpy(float)
    methods = runs["method"].astype(str) if "method" in runs else pd.Series("all runs", index=runs.index)
    ratios = runs["imbalance_ratio"] if "imbalance_ratio" in runs else pd.Series(np.nan, index=runs.index)
    ratio_values = value_order("imbalance_ratio", ratios.unique())
    several = len(ratio_values) > 1
    with matplotlib.rc_context(_style(output)):
        fig, ax = _figure(8.0, 5.5, output)
        for method in value_order("method", methods.unique()):
            for k, ratio in enumerate(ratio_values):
                sel = (methods == method).to_numpy() & np.array([_eq(r, ratio) for r in ratios])
                if not sel.any():
                    continue
                # Hollow markers: runs at the same point (same ε and gap) stay visible as distinct shapes.
                ax.scatter(eps[sel], gaps[sel], s=20 if output.paper else 55, facecolors="none",
                           edgecolors=colors.get(method, "C0"),
                           marker=MARKERS[k % len(MARKERS)] if several else "o", linewidths=1.6, zorder=3)
        # Legend: colours = methods, shapes = ratios (proxy artists, so neither repeats).
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], linestyle="", marker="o", markerfacecolor="none", markeredgewidth=1.6,
                          color=colors.get(m, "C0"), label=m) for m in value_order("method", methods.unique())]
        shapes = []
        if several:
            shapes = [Line2D([], [], linestyle="", marker=MARKERS[k % len(MARKERS)], markerfacecolor="none",
                             markeredgewidth=1.6, color="#555555", label=f"ratio {format_key(r)}")
                      for k, r in enumerate(ratio_values)]
        _column_legend(ax, output, [handles, shapes], title=None if output.paper else "method")
        finite = eps[np.isfinite(eps) & (eps > 0)]
        if len(finite) and finite.max() > 10 * finite.min():
            from matplotlib.ticker import FuncFormatter, LogLocator

            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xlabel("privacy budget ε (lower = more private)" + (", log scale" if ax.get_xscale() == "log" else ""))
        ax.set_ylabel(_wrap(f"{metric_label(gap)}  →\u00a0less\u00a0fair", output, "axes.labelsize", vertical=True))
        ax.set_title(_wrap(f"ε vs {gap}: {len(runs)} private runs ({split} split)", output))
        return _save(fig, path, output)


def _eq(a, b) -> bool:
    a_nan = a is None or (isinstance(a, float) and np.isnan(a))
    b_nan = b is None or (isinstance(b, float) and np.isnan(b))
    return (a_nan and b_nan) or (not a_nan and not b_nan and a == b)


def safe_name(text: str) -> str:
    """A file-name-safe form of a job name (``2026-01-01/12-00-00`` -> ``2026-01-01_12-00-00``)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", str(text)).strip("_") or "run"
