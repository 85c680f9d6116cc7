"""Calibration of the paired bootstrap (:mod:`fairrun.report.paired`) by simulation.

A synthetic classifier on a fixed test set of N rows (two groups, 70/30, binary label): example i has a
margin ``d * (2 y - 1) + tau_i`` (tau_i ~ N(0, 1), the example's difficulty, shared by every run), and
run r adds its own seed noise, an offset per group ``delta[r, g] ~ N(0, sigma_seed)`` and a per-example
perturbation ``sigma_example * eps[r, i]``; ``y_hat = 1[score > 0]``. A method with ``shift`` adds
``shift * (2 y - 1)`` to the margins of its runs (a better classifier when shift > 0). So test-set noise
(which examples are drawn) and seed noise (which model a seed gives) both exist.

Under the null ("ERM named twice": seeds 0..m-1 against seeds m..2m-1, shift 0) a 95 % interval should
exclude 0 in at most about 5 % of the replications. ``python -m fairrun.report.simulate`` prints the
false-positive rate for 2, 3 and 5 seeds per row and the power at a stated shift (docs/reports.md).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fairrun.report import paired

METRICS = ("accuracy", "worst_group_acc", "acc_gap", "dp_diff", "eo_diff")
GROUPS, CLASSES = ["A", "B"], ["0", "1"]


def test_set(rng: np.random.Generator, n: int, d: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(groups, labels, base margins) of a synthetic test set of n rows."""
    groups = (rng.random(n) < 0.3).astype(np.int64)
    y = (rng.random(n) < np.where(groups == 1, 0.4, 0.5)).astype(np.int64)
    margin = d * (2 * y - 1) + rng.standard_normal(n) - 0.3 * groups  # group B is harder
    return groups, y, margin


def run_cells(rng: np.random.Generator, groups, y, margin, m: int, shift: float = 0.0,
              sigma_seed: float = 0.15, sigma_example: float = 0.5) -> np.ndarray:
    """The confusion cells (m, N) of m seeds of one method on the test set (see the module docstring)."""
    offsets = sigma_seed * rng.standard_normal((m, 2))
    noise = sigma_example * rng.standard_normal((m, y.size))
    score = margin + shift * (2 * y - 1) + offsets[:, groups] + noise
    y_hat = (score > 0).astype(np.int64)
    return paired.cell_ids(np.broadcast_to(y, y_hat.shape), y_hat, np.broadcast_to(groups, y_hat.shape), 2)


def replicate_values(cells: np.ndarray, weights: np.ndarray, metrics=METRICS) -> dict[str, np.ndarray]:
    """Each metric's replicate values (runs, B) of the runs' cells (runs, N) under the weights (B, N)."""
    counts = paired.replicate_counts(weights, cells, 8)
    values = paired.count_replicates(counts.reshape(-1, 8), True, list(metrics), GROUPS, CLASSES)
    return {k: v.reshape(len(cells), -1) for k, v in values.items()}


def observed_values(cells: np.ndarray, metrics=METRICS) -> dict[str, np.ndarray]:
    """Each metric's observed value per run (runs,), from the runs' cells (runs, N)."""
    counts = np.stack([np.bincount(c, minlength=8) for c in cells])
    return paired.count_replicates(counts, True, list(metrics), GROUPS, CLASSES)


def simulate(reps: int, m: int, n_test: int = 2000, n_boot: int = 1000, shift: float = 0.0, seed: int = 0,
             scale: str = "welch", metrics=METRICS, m_base: int | None = None,
             sigma_seed: float = 0.15) -> dict[str, float]:
    """Fraction of the ``reps`` replications whose verdict is not ≈ (▲ or ▼), per metric.

    Each replication draws a new test set, ``m`` runs of the compared row (with ``shift``) and ``m_base``
    (default m) of the baseline, and one paired bootstrap. ``scale``: the seed-part factors, ``welch``
    (the report's, :func:`fairrun.report.paired.seed_scales`), ``bias`` (sqrt(m / (m - 1)) only) or
    ``plain`` (1). ``sigma_seed``: the spread of the per-seed group offsets (see :func:`run_cells`).
    """
    rng = np.random.default_rng(seed)
    m_base = m if m_base is None else m_base
    hits = {k: 0 for k in metrics}
    with paired.one_blas_thread():
        for _ in range(reps):
            _replication(rng, hits, m, m_base, n_test, n_boot, shift, scale, metrics, sigma_seed)
    return {k: v / reps for k, v in hits.items()}


def _replication(rng, hits, m, m_base, n_test, n_boot, shift, scale, metrics, sigma_seed) -> None:
    """One replication of :func:`simulate`: adds its non-≈ verdicts to ``hits``."""
    groups, y, margin = test_set(rng, n_test)
    row = run_cells(rng, groups, y, margin, m, shift, sigma_seed)
    base = run_cells(rng, groups, y, margin, m_base, 0.0, sigma_seed)
    weights = paired.draw_weights(groups, 2, n_boot, rng)
    x_row, x_base = replicate_values(row, weights, metrics), replicate_values(base, weights, metrics)
    v_row, v_base = observed_values(row, metrics), observed_values(base, metrics)
    for k in metrics:
        scales = _scales(scale, v_row[k], v_base[k])
        lo, hi = paired.diff_interval(x_row[k], x_base[k], rng, scales)
        hits[k] += paired.verdict(lo, hi) in ("higher", "lower")


def _scales(scale: str, v_row, v_base) -> tuple[float, float]:
    if scale == "welch":
        return paired.seed_scales(v_row, v_base)[:2]
    if scale == "plain":
        return 1.0, 1.0
    return tuple(float(np.sqrt(len(v) / (len(v) - 1))) if len(v) > 1 else 0.0 for v in (v_row, v_base))


def main(argv=None) -> int:
    """Print the false-positive rates (and the power at ``--shift``) of the paired bootstrap."""
    parser = argparse.ArgumentParser(prog="python -m fairrun.report.simulate",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 5])
    parser.add_argument("--scales", nargs="+", default=["plain", "bias", "welch"])
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--shift", type=float, default=0.15)
    parser.add_argument("--sigma-seed", type=float, default=0.15, help="spread of the per-seed group offsets")
    args = parser.parse_args(argv)
    for m in args.seeds:
        for scale in args.scales:
            start = time.perf_counter()
            fpr = simulate(args.reps, m, args.n_test, args.boot, 0.0, seed=m, scale=scale,
                           sigma_seed=args.sigma_seed)
            power = simulate(args.reps // 4, m, args.n_test, args.boot, args.shift, seed=100 + m, scale=scale,
                             sigma_seed=args.sigma_seed)
            print(f"sigma_seed {args.sigma_seed} seeds {m} scale {scale:5s} reps {args.reps}: FPR "
                  + " ".join(f"{k} {v:.3f}" for k, v in fpr.items())
                  + f" | power at shift {args.shift}: " + " ".join(f"{k} {v:.2f}" for k, v in power.items())
                  + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# ---------------------------------------------------------------- synthetic sweeps on disk

def write_run(run_dir: Path, rng: np.random.Generator, test: tuple, method: str, shift: float, seed: int,
              ratio: float = 1.0, bootstrap: int = 0, sigma_seed: float = 0.15) -> pd.DataFrame:
    """One finished run directory in the format fairrun train writes (predictions.pkl and results.pkl with
    their checksums and results.json through :func:`fairrun.rundir.write_pickle`, ``.hydra/overrides.yaml``,
    run_config.yaml, done), its test predictions from :func:`run_cells`'s classifier on the test set
    ``test`` = (groups, labels, margins), its results computed from them by fairrun's own evaluation
    (``bootstrap`` > 0: with the per-run intervals). Returns the results."""
    from fairrun import rundir
    from fairrun.evaluation.predictions import DecisionRule, metrics_from_predictions, with_intervals

    groups, y, margin = test
    offsets = sigma_seed * rng.standard_normal(2)
    score = margin + shift * (2 * y - 1) + offsets[groups] + 0.5 * rng.standard_normal(y.size)
    pred = pd.DataFrame({"split": "test", "index": np.arange(y.size), "y_true": y,
                         "y_score": 1 / (1 + np.exp(-score)), "y_pred": (score > 0).astype(np.int64),
                         "group": pd.Categorical.from_codes(groups, categories=GROUPS)})
    pred.attrs["class_names"] = list(CLASSES)
    rule = DecisionRule(bootstrap=bootstrap, seed=seed, bootstrap_scores=False)
    metrics = with_intervals(metrics_from_predictions(pred, GROUPS, 2), pred, rule, "test", GROUPS, 2)
    results = pd.DataFrame([{"run_dir": str(run_dir), "split": "test", "dataset": "synthetic", "model": "sim",
                             "method": method, "imbalance_ratio": ratio, "seed": seed, **metrics}])
    overrides = [f"method={method}", f"imbalance.ratio={ratio:g}", f"seed={seed}"]
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    rundir.write_pickle(pred, run_dir / rundir.PREDICTIONS)
    rundir.write_pickle(results, run_dir / rundir.RESULTS)
    (run_dir / rundir.RUN_CONFIG).write_text(f"seed: {seed}\n")
    (run_dir / rundir.DONE).write_text("")
    return results


def write_sweep(root: Path, methods: dict[str, float], seeds, n_test: int = 2000, ratios=(1.0,),
                seed: int = 0, bootstrap: int = 0) -> list[Path]:
    """A folder of run directories ``root/<k>`` (:func:`write_run`), one per (method, ratio, seed), all on one
    synthetic test set of ``n_test`` rows; ``methods`` maps each method name to its margin shift (0 for the
    baseline). Returns the run directories."""
    rng = np.random.default_rng(seed)
    test = test_set(rng, n_test)
    runs = []
    for method, shift in methods.items():
        for ratio in ratios:
            for s in seeds:
                run_dir = Path(root) / str(len(runs))
                write_run(run_dir, rng, test, method, shift, s, ratio, bootstrap)
                runs.append(run_dir)
    return runs
