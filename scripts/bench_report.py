"""Time `fairrun report` with the paired bootstrap against the old overlap verdicts, on a synthetic sweep.

Builds a sweep of --rows methods x --seeds seeds (default 13 x 3 = 39 runs) with --n-test test rows per
run in the real run-directory format (predictions.pkl and results.pkl through fairrun.rundir's checksummed
writers, results computed by fairrun's own evaluation with per-run bootstrap intervals: see
fairrun.report.simulate.write_sweep), then runs the real ``fairrun report`` path twice on it:

* new: as shipped, comparisons by the paired hierarchical bootstrap (fairrun.report.paired.compare);
* old: the same report with the comparison step replaced by the previous overlap rule
  (fairrun.report.noise.compare: [mean of the runs' _lo, mean of their _hi] against the baseline's).

It prints the wall time of each whole report, of the comparison step alone, and their ratios, plus the
verdicts of the two rules side by side. Usage::

    python scripts/bench_report.py [--rows 13] [--seeds 3] [--n-test 20000] [--repeat 2]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fairrun.report import cli, noise, paired, simulate


def old_compare(table, rows, by, metrics, baseline, run_dirs, split, **_):
    """The previous comparison step (interval overlap), in the shape the report now expects."""
    out = noise.compare(table, by, metrics, baseline)
    out["verdict"] = [noise.MARKS.get(v, v) for v in out["verdict"]]
    out = out.assign(diff=out["value"] - out["baseline_value"], diff_lo=np.nan, diff_hi=np.nan,
                     n_seeds=[int(table.at[r, "n"]) for r in out["row"]],
                     baseline_n_seeds=[int(table.at[r, "n"]) if r >= 0 else 0 for r in out["baseline_row"]],
                     interval="overlap of the rows' intervals", paired="")
    return out, []


def timed_report(root: Path, out: Path, compare) -> tuple[float, float]:
    """(wall seconds of the whole report, of its comparison step) with ``compare`` as the comparison step."""
    spent = []

    def timed(*args, **kwargs):
        start = time.perf_counter()
        result = compare(*args, **kwargs)
        spent.append(time.perf_counter() - start)
        return result

    original = cli.paired.compare
    cli.paired.compare = timed
    try:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = cli.report_main([str(root), "--out", str(out)])
        total = time.perf_counter() - start
    finally:
        cli.paired.compare = original
    if code != 0:
        raise SystemExit(f"fairrun report exited with {code}")
    return total, spent[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=13, help="methods (table rows), the first is erm")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n-test", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=2, help="timed reports of each kind (the best is kept)")
    args = parser.parse_args()
    shifts = np.linspace(-0.1, 0.2, args.rows - 1)
    methods = {"erm": 0.0, **{f"m{k:02d}": float(s) for k, s in enumerate(shifts)}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "sweep"
        start = time.perf_counter()
        runs = simulate.write_sweep(root, methods, range(args.seeds), n_test=args.n_test, bootstrap=1000)
        print(f"wrote {len(runs)} runs ({args.rows} rows x {args.seeds} seeds, {args.n_test} test rows each) "
              f"in {time.perf_counter() - start:.1f} s")
        times = {"old": [], "new": []}
        for _ in range(args.repeat):
            for kind, compare in (("old", old_compare), ("new", paired.compare)):
                times[kind].append(timed_report(root, Path(tmp) / kind, compare))
        best = {kind: min(values) for kind, values in times.items()}
        print(f"paired bootstrap: {paired.REPLICATES} replicates; best of {args.repeat}")
        for kind in ("old", "new"):
            total, step = best[kind]
            print(f"  {kind}: whole report {total:6.2f} s, comparison step {step:6.3f} s")
        print(f"  ratio new / old: whole report {best['new'][0] / best['old'][0]:.2f}x, "
              f"comparison step {best['new'][1] / best['old'][1]:.0f}x")
        old = pd.read_csv(Path(tmp) / "old" / "comparisons.csv")
        new = pd.read_csv(Path(tmp) / "new" / "comparisons.csv")
        both = pd.crosstab(old["verdict"].rename("old verdict"), new["verdict"].rename("new verdict"))
        print(both.to_string())


if __name__ == "__main__":
    main()
