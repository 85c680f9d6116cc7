"""A study's own figure (``study.report.figure``): each metric per value of one key (an attribute, a model), one bar
per arm, mean ± 1 std over seeds, as the per-attribute and per-model charts of the studies' original papers and
notebooks. One panel per (split, metric), so a transfer to other datasets sits beside the test split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fairrun.report.plots import DPI, METHOD_COLORS, _EXTRA_COLORS, metric_label
from fairrun.report.table import format_key, value_order

PANEL_WIDTH, PANEL_HEIGHT = 4.2, 3.0  # inches per panel: readable at a paper's full text width for 2-3 panels


def arm_colors(arms) -> dict[str, str]:
    """A colour per arm: its method's fixed colour when the arm is named after a method, else a spare one;
    dpsgd's noise levels get the dpsgd colour at decreasing strength (see :func:`_shade`)."""
    colors, spare = {}, iter(_EXTRA_COLORS * 10)
    ordered = value_order("method", [str(a) for a in arms])
    dpsgd = [a for a in ordered if a.startswith("dpsgd_")]
    for arm in ordered:
        if arm in METHOD_COLORS:
            colors[arm] = METHOD_COLORS[arm]
        elif arm in dpsgd:
            colors[arm] = _shade(METHOD_COLORS["dpsgd"], dpsgd.index(arm), len(dpsgd))
        else:
            colors[arm] = next(spare)
    return colors


def _shade(hex_color: str, i: int, n: int) -> tuple:
    """``hex_color`` mixed with black: the first of ``n`` full strength, the last at 45 %."""
    rgb = np.array([int(hex_color[k:k + 2], 16) / 255 for k in (1, 3, 5)])
    strength = 1.0 - 0.55 * (i / max(n - 1, 1))
    return tuple(rgb * strength)


def plot_bars(rows: pd.DataFrame, x: str, metrics: list[str], splits: list[str], path: Path, title: str,
              hue: str = "arm") -> Path:
    """Grouped bars: for every (split, metric) a panel with the values of ``x`` on the horizontal axis and one bar
    per ``hue`` value (mean over the runs, error bar ±1 std when there are 2 or more). ``rows``: one row per run
    and split (results columns). Returns ``path`` (PNG; a PDF beside it for a paper)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(split, metric) for split in splits for metric in metrics
              if split in set(rows["split"].astype(str)) and metric in rows
              and pd.to_numeric(rows.loc[rows["split"].astype(str) == split, metric], errors="coerce").notna().any()]
    if not panels:
        raise ValueError(f"none of the metrics {metrics} has a value in splits {splits}")
    columns = 2 if len(panels) == 4 else min(len(panels), 3)  # 4 panels as 2 x 2, not 3 + 1
    lines = -(-len(panels) // columns)
    fig = Figure(figsize=(PANEL_WIDTH * columns + 1.6, PANEL_HEIGHT * lines + 0.8))
    FigureCanvasAgg(fig)
    xs = value_order(x, rows[x].dropna().unique()) if x in rows else ["all runs"]
    hues = value_order("method", rows[hue].astype(str).unique())
    colors = arm_colors(hues)
    width = 0.8 / max(len(hues), 1)
    for k, (split, metric) in enumerate(panels):
        ax = fig.add_subplot(lines, columns, k + 1)
        ax.grid(True, axis="y", alpha=0.35)
        ax.set_axisbelow(True)  # grid lines behind the bars
        part = rows[rows["split"].astype(str) == split]
        for j, arm in enumerate(hues):
            means, stds = [], []
            for value in xs:
                chosen = part[(part[hue].astype(str) == arm) & ((part[x] == value) if x in part else True)]
                values = pd.to_numeric(chosen[metric], errors="coerce").dropna()
                means.append(values.mean() if len(values) else np.nan)
                stds.append(values.std(ddof=1) if len(values) > 1 else np.nan)
            same = x == hue  # one bar per value of x, centred
            positions = np.arange(len(xs)) + (0 if same else (j - (len(hues) - 1) / 2) * width)
            spread = stds if np.isfinite(stds).any() else None  # no error bar where one seed makes the bar
            ax.bar(positions, means, 0.6 if same else width * 0.92, yerr=spread, capsize=2, color=colors[arm], label=arm,
                   error_kw={"elinewidth": 0.8, "alpha": 0.8})
        ax.set_xticks(np.arange(len(xs)))
        ax.set_xticklabels([format_key(v) for v in xs], rotation=30 if len(xs) > 4 else 0,
                           ha="right" if len(xs) > 4 else "center", fontsize=8)
        ax.set_title(f"{metric} ({split})", fontsize=10)
        ax.set_ylabel(_short(metric_label(metric)), fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False, fontsize=9,
               title=hue)
    keys = list(dict.fromkeys(c for c in (x, hue, "split") if c in rows))
    spread = "mean ± 1 std over seeds" if rows.groupby(keys).size().max() > 1 \
        else "one seed per bar"
    fig.suptitle(f"{title} ({spread})", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.1)
    fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight", pad_inches=0.1)
    return path


def _short(label: str, limit: int = 42) -> str:
    return label if len(label) <= limit else label[:limit - 1] + "…"
