"""Time fairrun.metrics.group_metrics against fairlearn's MetricFrame on the same predictions.

Both compute per-group accuracy, TPR, FPR, selection rate and counts, the demographic parity,
equalized odds and equal opportunity differences and the accuracy gap; the script checks that the
values agree, then prints the best-of-``--repeats`` time of each and the speed-up.

    PYTHONPATH=. python scripts/bench_metrics.py --n 1000000 --groups 7 --repeats 3
"""

import argparse
import time

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from fairrun.metrics import group_metrics


def fairlearn_metrics(y, y_pred, groups):
    frame = MetricFrame(
        metrics={"acc": accuracy_score, "tpr": true_positive_rate, "fpr": false_positive_rate,
                 "sel": selection_rate, "n": count},
        y_true=y, y_pred=y_pred, sensitive_features=groups)
    gaps = frame.difference()
    return {
        "by_group": frame.by_group,
        "dp_diff": demographic_parity_difference(y, y_pred, sensitive_features=groups),
        "eo_diff": equalized_odds_difference(y, y_pred, sensitive_features=groups),
        "eopp_diff": gaps["tpr"],
        "acc_gap": gaps["acc"],
    }


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="number of predictions")
    parser.add_argument("--groups", type=int, default=7, help="number of groups")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each; the best counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    groups = rng.integers(0, args.groups, args.n)
    y = (rng.random(args.n) < rng.uniform(0.2, 0.8, args.groups)[groups]).astype(np.int64)
    y_pred = np.where(rng.random(args.n) < rng.uniform(0.05, 0.3, args.groups)[groups], 1 - y, y)

    ours_s, ours = best_time(lambda: group_metrics(y, y_pred, groups), args.repeats)
    theirs_s, theirs = best_time(lambda: fairlearn_metrics(y, y_pred, groups), args.repeats)

    for key in ("dp_diff", "eo_diff", "eopp_diff", "acc_gap"):
        assert abs(ours[key] - theirs[key]) < 1e-12, (key, ours[key], theirs[key])
    for key in ("acc", "tpr", "fpr", "sel", "n"):
        mine = [ours[f"{key}[{g}]"] for g in range(args.groups)]
        assert np.allclose(mine, theirs["by_group"][key].to_numpy(), rtol=0, atol=1e-12), key

    print(f"{args.n:,} predictions x {args.groups} groups, best of {args.repeats} (values agree to 1e-12)")
    print(f"fairrun.metrics.group_metrics: {ours_s * 1e3:10.2f} ms")
    print(f"fairlearn MetricFrame + dp/eo: {theirs_s * 1e3:10.2f} ms")
    print(f"speed-up: {theirs_s / ours_s:.0f}x")


if __name__ == "__main__":
    main()
