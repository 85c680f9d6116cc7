"""Bootstrap intervals: fairrun's vectorised bootstrap against a plain resampling loop, in one run.

The baseline is what one would write first: for each of B replicates, draw every group's rows with
replacement (``numpy.random.Generator.choice`` per group) and call ``group_metrics`` on the drawn rows.
It is timed on ``--loop-reps`` replicates and scaled to B (its cost is linear in B); the ratio is
baseline time / fairrun time for the same B.

    python scripts/bench_bootstrap.py                          # 1M predictions, 7 groups, B=1000
    python scripts/bench_bootstrap.py --rows 20000 --scores    # a CelebA-sized test set, score metrics too
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

from fairrun.metrics import group_metrics
from fairrun.metrics.bootstrap import bootstrap_intervals

warnings.filterwarnings("ignore")


def make_predictions(n: int, n_groups: int, seed: int = 0):
    """Labels, decisions, group ids (geometric group sizes) and scores of a fake classifier."""
    rng = np.random.default_rng(seed)
    share = 0.5 ** np.arange(n_groups)
    g = rng.choice(n_groups, n, p=share / share.sum())
    y = rng.integers(0, 2, n)
    s = np.clip(0.35 * y + 0.65 * rng.random(n) - 0.03 * g, 0, 1)
    return y, (s > 0.5).astype(int), g, s


def loop_bootstrap(y, y_pred, g, s, n_groups, reps, rng):
    """The plain baseline: resample row indices within each group, recompute every metric."""
    members = [np.flatnonzero(g == k) for k in range(n_groups)]
    out = []
    for _ in range(reps):
        idx = np.concatenate([rng.choice(m, m.size) for m in members if m.size])
        out.append(group_metrics(y[idx], y_pred[idx], g[idx], scores=None if s is None else s[idx],
                                 n_groups=n_groups))
    return out


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=7)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--loop-reps", type=int, default=10, help="replicates of the baseline loop actually run")
    parser.add_argument("--repeats", type=int, default=3, help="timings of fairrun's bootstrap (median kept)")
    parser.add_argument("--scores", action="store_true",
                        help="also bootstrap auc/ap/kl/ti_gap (O(rows x B): meant for test-set sizes)")
    args = parser.parse_args()
    y, y_pred, g, s = make_predictions(args.rows, args.groups)
    scores = s if args.scores else None
    what = "count metrics + per-group accuracy" + (" + auc/ap/kl/ti_gap" if args.scores else "")
    print(f"{args.rows:,} predictions, {args.groups} groups, B={args.boot}: {what}")

    fast = timed(lambda: bootstrap_intervals(y, y_pred, g, scores=scores, n_groups=args.groups,
                                             n_boot=args.boot, seed=0, name="test",
                                             score_metrics=args.scores), args.repeats)
    rng = np.random.default_rng(0)
    per_rep = timed(lambda: loop_bootstrap(y, y_pred, g, scores, args.groups, args.loop_reps, rng), 1) / args.loop_reps
    slow = per_rep * args.boot
    print(f"{'method':<34}{'seconds':>10}{'ratio':>10}")
    print(f"{'plain loop (scaled from %d reps)' % args.loop_reps:<34}{slow:>10.2f}{1.0:>10.1f}")
    print(f"{'fairrun vectorised':<34}{fast:>10.3f}{slow / fast:>10.1f}")


if __name__ == "__main__":
    main()
