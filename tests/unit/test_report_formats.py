"""`fairrun report --format/--size` and the paper tables (issue 20): PDF/SVG/PNG files at a paper's width,
table.tex (booktabs) and table.md against an independent groupby, marker shape by imbalance ratio in the
accuracy-vs-gap chart, and the chart titles. Built from a hand-made results frame: no training."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fairrun.core.errors import FairrunError
from fairrun.report import plots
from fairrun.report.cli import group_chart_title, write_plots
from fairrun.report.data_report import frequency_title
from fairrun.report.table import aggregate, latex_table, markdown_table

BY = ["method", "imbalance_ratio"]
METRICS = ["accuracy", "worst_group_acc", "acc_gap"]


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """One test-split row per run: 2 methods (one with an underscore) x ratios 0.5, 0.95 x 3 seeds."""
    rng = np.random.default_rng(7)
    out = []
    for job, (method, ratio, seed) in enumerate((m, r, s) for m in ("erm", "fair_reg") for r in (0.5, 0.95)
                                                for s in (0, 1, 2)):
        acc_a, acc_b = 0.9 + 0.01 * rng.standard_normal(), 0.9 - 0.6 * (ratio - 0.5) + 0.02 * rng.standard_normal()
        out.append({"job": str(job), "split": "test", "method": method, "imbalance_ratio": ratio, "seed": seed,
                    "accuracy": (acc_a + acc_b) / 2, "worst_group_acc": min(acc_a, acc_b),
                    "acc_gap": abs(acc_a - acc_b), "acc[A]": acc_a, "acc[B]": acc_b,
                    "n_train[A]": int(600 * ratio), "n_train[B]": 600 - int(600 * ratio), "n[A]": 100, "n[B]": 100})
    return pd.DataFrame(out)


def _expected(rows: pd.DataFrame) -> pd.DataFrame:
    """mean/std per (method, ratio) straight from pandas, in the table's order (erm first, ratio descending)."""
    stats = rows.groupby(BY)[METRICS].agg(["mean", "std"])
    return stats.sort_index(level=[0, 1], ascending=[True, False])


def _tex_body(tex: str) -> list[str]:
    lines = tex.splitlines()
    return lines[lines.index("\\midrule") + 1:lines.index("\\bottomrule")]


def test_latex_table_is_booktabs_with_one_row_per_group(rows):
    table = aggregate(rows, BY, METRICS)
    marks = {(2, "accuracy"): "▲", (3, "acc_gap"): "▼", (2, "acc_gap"): "≈"}
    tex = latex_table(table, BY, METRICS, marks)
    for rule in ("\\toprule", "\\midrule", "\\bottomrule", "\\begin{tabular}{llrrrr}", "\\end{tabular}"):
        assert rule in tex.splitlines()
    assert "method & imbalance\\_ratio & $n$ & accuracy & worst\\_group\\_acc & acc\\_gap \\\\" in tex
    assert "$$" not in tex and not set("▲▼≈±") & set(tex)  # marks and ± as LaTeX, never raw Unicode
    body = _tex_body(tex)
    expected = _expected(rows)
    assert len(body) == len(expected) == 4
    for line, ((method, ratio), want) in zip(body, expected.iterrows()):
        cells = line.removesuffix(" \\\\").split(" & ")
        assert cells[:3] == [method.replace("_", "\\_"), f"{ratio:g}", "3"]
        for cell, m in zip(cells[3:], METRICS):
            mean, std = re.fullmatch(r"\$(\S+) \\pm (\S+?)(\\,\{\}\^\{\\\w+\})?\$", cell).group(1, 2)
            assert (mean, std) == (f"{want[(m, 'mean')]:.3f}", f"{want[(m, 'std')]:.3f}")
    assert body[2].split(" & ")[3].endswith("\\,{}^{\\uparrow}$")
    assert body[3].split(" & ")[5].endswith("\\,{}^{\\downarrow}$ \\\\")
    assert body[2].split(" & ")[5].endswith("\\,{}^{\\approx}$ \\\\")
    assert "uparrow" not in body[0] + body[1]


def test_markdown_table_has_the_same_cells(rows):
    table = aggregate(rows, BY, METRICS)
    marks = {(2, "accuracy"): "▲"}
    md = markdown_table(table, BY, METRICS, marks).splitlines()
    assert md[0] == "| method | imbalance_ratio | n | accuracy | worst_group_acc | acc_gap |"
    assert md[1] == "|:---|:---|---:|---:|---:|---:|"
    tex_rows = [line.removesuffix(" \\\\").split(" & ") for line in _tex_body(latex_table(table, BY, METRICS, marks))]
    assert len(md) == 2 + len(tex_rows)
    for line, tex in zip(md[2:], tex_rows):
        cells = line.strip("| ").split(" | ")
        as_md = [c.replace("\\_", "_").replace(" \\pm ", " ± ").replace("\\,{}^{\\uparrow}", " ▲").strip("$")
                 for c in tex]
        assert cells == as_md
    assert md[4].split(" | ")[3].endswith(" ▲")


def _capture(monkeypatch) -> list:
    """Record every figure the charts save, still writing the files."""
    figures, save = [], plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path, output=plots.SCREEN: figures.append(fig) or
                        save(fig, path, output))
    return figures


def test_pdf_svg_png_at_one_column_width(rows, tmp_path, monkeypatch):
    figures = _capture(monkeypatch)
    output = plots.Output(("pdf", "svg", "png"), "one-column")
    run = rows.iloc[4]
    files = write_plots(rows, tmp_path, BY, [], "acc_gap", "test", run, "chosen", output)  # 2 charts x 3 formats
    stems = ["accuracy_vs_acc_gap", "groups_4"]
    assert files == [tmp_path / f"{s}.{f}" for s in stems for f in ("pdf", "svg", "png")]
    for stem in stems:
        pdf = (tmp_path / f"{stem}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF-") and len(re.findall(rb"/Type /Page\b", pdf)) == 1
        width = float(re.search(rb"/MediaBox \[ ?0 0 ([\d.]+) ", pdf).group(1))
        assert width == pytest.approx(3.3 * 72)  # exactly the column's width: no tight-bbox growth
        svg = ET.parse(tmp_path / f"{stem}.svg").getroot()
        assert svg.get("width") == "237.6pt"
        assert len(svg.findall(".//{http://www.w3.org/2000/svg}path")) > 10
        with Image.open(tmp_path / f"{stem}.png") as image:
            assert image.size[0] == round(3.3 * plots.PAPER_DPI)
    for fig in figures:  # every piece of text legible at 3.3 in: at least 6 pt
        texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
                 if t.get_visible() and t.get_text().strip()]
        assert texts and min(t.get_fontsize() for t in texts) >= 6
        assert tuple(fig.get_size_inches()) == pytest.approx((3.3, 2.6))


def test_markers_differ_by_ratio_and_colours_by_method(rows, tmp_path, monkeypatch):
    figures = _capture(monkeypatch)
    plots.plot_accuracy_vs_gap(rows, "acc_gap", plots.method_colors(["erm", "fair_reg"]), tmp_path / "g.png")
    ax = figures[0].axes[0]
    style = {}  # (x, y) of each single run -> (marker path vertices, face colour)
    for coll in ax.collections:
        if len(coll.get_offsets()) and len(coll.get_paths()) and len(coll.get_facecolors()):
            for x, y in coll.get_offsets():
                style.setdefault((round(x, 9), round(y, 9)), (coll.get_paths()[0].vertices.round(6).tobytes(),
                                                              tuple(coll.get_facecolors()[0][:3].round(4))))
    marker, colour = {}, {}
    for r in rows.itertuples():
        shape, face = style[(round(r.acc_gap, 9), round(r.accuracy, 9))]
        marker.setdefault(r.imbalance_ratio, set()).add(shape)
        colour.setdefault(r.method, set()).add(face)
    assert all(len(v) == 1 for v in (*marker.values(), *colour.values()))  # one shape per ratio, colour per method
    assert marker[0.5] != marker[0.95] and colour["erm"] != colour["fair_reg"]
    labels = [t.get_text() for t in figures[0].legends[0].get_texts()] if figures[0].legends else \
        [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"erm", "fair_reg", "ratio 0.5", "ratio 0.95"} <= set(labels)


def test_group_chart_is_titled_by_the_runs_settings(rows, tmp_path, monkeypatch):
    run = rows.iloc[10]  # fair_reg, ratio 0.95, seed 1
    assert group_chart_title(run, BY, "test", "chosen with --run") == \
        "Per-group accuracy: method=fair_reg, ratio=0.95, seed=1 (test split)\nchosen with --run"
    assert group_chart_title(run, BY, "val", "x", paper=True) == \
        "Per-group accuracy: method=fair_reg, ratio=0.95, seed=1 (val split)"
    figures = _capture(monkeypatch)
    write_plots(rows, tmp_path, BY, [], None, "test", run, "chosen with --run")
    assert figures[0].axes[0].get_title().startswith("Per-group accuracy: method=fair_reg, ratio=0.95, seed=1")
    assert "run 10" not in figures[0].axes[0].get_title()


def test_data_report_title_never_doubles_a_word():
    assert frequency_title("group") == "Frequency of each group"
    assert frequency_title("age_group") == "Frequency of each age_group"
    assert frequency_title("race") == "Frequency of each race group"
    assert frequency_title("race+gender") == "Frequency of each race+gender group"


def test_format_and_size_options_are_checked():
    assert plots.parse_formats("pdf, svg,png,pdf") == ("pdf", "svg", "png")
    assert plots.parse_formats(".PNG") == ("png",)
    with pytest.raises(FairrunError, match=r"unknown --format 'pdf,eps' \(eps\): give one or more of png, pdf, svg"):
        plots.parse_formats("pdf,eps")
    with pytest.raises(FairrunError, match="unknown --format ','"):
        plots.parse_formats(",")
    assert plots.check_size("two-column") == "two-column"
    with pytest.raises(FairrunError, match="unknown --size 'a4': give one of screen, one-column, two-column"):
        plots.check_size("a4")
