"""Paired, hierarchical bootstrap of the difference between a table row and its baseline row.

A table row is a group of runs (its seeds, see :func:`fairrun.report.table.aggregate`); its value is the
mean of its runs' metric. For a (row, baseline row, metric) one bootstrap replicate b

1. draws the test examples once: integer weights w[b, i] (how often test row i was drawn), a
   multinomial bootstrap of the N test rows stratified by group as in :mod:`fairrun.metrics.bootstrap`
   (each group keeps its size). The same weights serve every run of both rows (paired: all runs
   predict the same test examples, matched by the predictions' ``index`` and checked on their labels
   and groups); they are drawn once per test set for the whole report;
2. gives every run r the metric x[r, b] of its predictions on the reweighted test rows: for a count
   metric, the run's reweighted confusion counts are ``W @ onehot(cell)`` (cell = group, y, y_hat),
   fed to :func:`fairrun.metrics.counts.count_metrics` (the formulas of the point estimates);
3. draws, independently in each row, m runs with replacement among its m runs; the row's replicate
   value is the mean of x over the drawn runs, with the seed part inflated (see :func:`row_replicates`);
4. diff[b] = row value - baseline value.

The interval is the 2.5 and 97.5 percentiles of diff[b] (Efron & Tibshirani, "An Introduction to the
Bootstrap", 1993, ch. 13); the verdict is ▲ / ▼ when it lies above / below 0, ≈ otherwise. Resampling
at both levels, seeds and test examples, is the hierarchical bootstrap of Davison & Hinkley,
"Bootstrap Methods and their Application", 1997, sec. 3.8 (Saravanan et al., "Application of the
hierarchical bootstrap to multi-level data in neuroscience", Neurons, Behavior, Data analysis and
Theory, 2020).

Few seeds: the mean of m values resampled from m has variance (m - 1) / m times s^2 / m (s^2 the sample
variance), and the percentile interval of a mean of 2 or 3 resampled values has light, discrete tails.
The seed part of each replicate is therefore scaled by :func:`seed_scales` (sqrt(m / (m - 1)) times the
ratio of Welch's t quantile to the normal one; docs/reports.md gives the measured false-positive rates).

Metrics without a count formula (auc, ap, epsilon, ...) fall back to the seed level alone: the runs'
values in results are resampled, with the same scaling ("seeds only").
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from fairrun import rundir
from fairrun.metrics import registry
from fairrun.metrics.counts import Counts, count_metrics
from fairrun.report import noise
from fairrun.report.table import format_key

REPLICATES = 1000  #: bootstrap replicates per comparison
CONFIDENCE = 0.95
CHUNK_ELEMENTS = 4_000_000  #: replicates x test rows of weights held at once
SEED = 20261206  #: the report's generator seed: the same runs give the same intervals
MARKS = {"higher": "▲", "lower": "▼", "within noise": "≈"}
PREDICTION_COLUMNS = ("split", "index", "y_true", "y_pred", "group")


# ---------------------------------------------------------------- test-row weights and counts

def one_blas_thread():
    """A context that runs BLAS on one thread: the products here are tall and thin (N x a few cells),
    so threads only contend (measured 25x slower with two threads on a loaded 2-core machine)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def draw_weights(groups: np.ndarray, n_groups: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap weights w[b, i] (B, N) float32: how often test row i is drawn in replicate b.

    Stratified by group: group g's n_g rows are drawn n_g times with replacement (as the per-run
    intervals of :mod:`fairrun.metrics.bootstrap`), so every replicate keeps the group sizes.
    Integer-valued (float32 holds them exactly: every partial sum is at most N < 2**24).
    """
    groups = np.asarray(groups)
    n = groups.size
    if n >= 2 ** 24:
        raise ValueError(f"{n} test rows: at most 2**24 - 1 are supported")
    drawn = np.empty((n_boot, n), dtype=np.int64)  # the row drawn at each of the N draws of a replicate
    start = 0
    for g in np.unique(groups):  # the strata: ``n_groups`` is kept for the callers' clarity
        members = np.flatnonzero(groups == g)
        picks = rng.integers(0, members.size, size=(n_boot, members.size))
        drawn[:, start:start + members.size] = members[picks]
        start += members.size
    drawn += np.arange(n_boot)[:, None] * n
    return np.bincount(drawn.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float32)


def cell_ids(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, num_classes: int) -> np.ndarray:
    """The confusion cell of each row, (g * K + y) * K + y_hat, as
    :func:`fairrun.metrics.counts.confusion_counts` numbers them."""
    k = num_classes
    return (np.asarray(groups).astype(np.intp) * k + np.asarray(y_true)) * k + np.asarray(y_pred)


def replicate_counts(weights: np.ndarray, cells: np.ndarray, n_cells: int, chunk: int = 64) -> np.ndarray:
    """Reweighted confusion counts (R, B, n_cells) int64 of R runs' cells (R, N) under the weights (B, N):
    ``weights @ onehot(cells)``, one matrix product for ``chunk`` runs at a time (the weights are read once
    per chunk)."""
    cells = np.atleast_2d(cells)
    runs, n = cells.shape
    out = np.empty((runs, len(weights), n_cells), dtype=np.int64)
    for start in range(0, runs, chunk):
        part = cells[start:start + chunk]
        onehot = np.zeros((n, len(part) * n_cells), dtype=np.float32)
        onehot[np.arange(n)[:, None], part.T + n_cells * np.arange(len(part))] = 1.0
        product = np.rint(weights @ onehot).astype(np.int64)  # (B, chunk * n_cells)
        out[start:start + len(part)] = product.reshape(len(weights), len(part), n_cells).transpose(1, 0, 2)
    return out


def count_key(column: str) -> tuple[str, int | None] | None:
    """(registry key, position in the formula's per-group/per-cell output) of a results column with a
    count formula, or None (score metrics, epsilon, anything else)."""
    key, inside, suffix = registry.split_column(column)
    entry = registry.REGISTRY.get(key)
    if entry is None or entry.kind != "count" or suffix is not None:
        return None
    return key, inside


def count_replicates(counts: np.ndarray, binary: bool, columns: list[str], group_names: list[str],
                     class_names: list[str]) -> dict[str, np.ndarray]:
    """Each column's (B,) values on counts c (B, G * K * K), by the count formulas of
    :func:`fairrun.metrics.counts.count_metrics`; columns without a formula (or naming an unknown
    group or class) are left out."""
    g, k = len(group_names), len(class_names)
    wanted = {c: count_key(c) for c in columns}
    keys = sorted({v[0] for v in wanted.values() if v is not None})
    if not keys:
        return {}
    values = count_metrics(Counts(counts.reshape(len(counts), g, k, k), binary), keys=keys)
    out = {}
    for column, found in wanted.items():
        if found is None:
            continue
        key, inside = found
        array = values[key]
        if array.ndim == 1:
            out[column] = array
            continue
        labels = [f"{a},{c}" for a in group_names for c in class_names] if array.shape[1] == g * k \
            and registry.CLASS in key else list(group_names)
        if inside in labels:
            out[column] = array[:, labels.index(inside)]
    return out


# ---------------------------------------------------------------- the seed level and the interval

def seed_scales(values_row, values_base, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """The factors applied to the seed parts of a row and its baseline, from the runs' observed values of
    the metric (NaN left out), and the degrees of freedom behind them.

    A row with m runs gets sqrt(m / (m - 1)), which undoes the bootstrap's (m - 1) / m shrinkage of the
    seed variance, times t_df / z (the ``confidence`` quantiles of Student's t and the normal), which
    widens the tails to those of Welch's t for a difference of two means of normal values; df is
    Welch-Satterthwaite's from the two rows' sample variances (m_row + m_base - 2 when both are 0). A
    row with one run has no seed part (factor 0) and adds no degrees of freedom.
    """
    a, b = (np.asarray(v, dtype=float) for v in (values_row, values_base))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    parts = [(x.var(ddof=1) / x.size, x.size - 1) for x in (a, b) if x.size >= 2]
    if not parts:
        return 0.0, 0.0, float("nan")
    total = sum(v for v, _ in parts)
    df = sum(k for _, k in parts) if total == 0 else total ** 2 / sum(v ** 2 / k for v, k in parts)
    q = 0.5 + confidence / 2
    tails = float(stats.t.ppf(q, df) / stats.norm.ppf(q))
    row, base = (float(np.sqrt(x.size / (x.size - 1)) * tails) if x.size >= 2 else 0.0 for x in (a, b))
    return row, base, df


def row_replicates(x: np.ndarray, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """A row's (B,) replicate values from its runs' replicate values x (m, B).

    Each replicate draws m runs with replacement (an index gather) and takes the mean of their x; the
    seed part (drawn mean minus the mean over all m runs, in the same replicate) is multiplied by
    ``scale`` (1: the plain percentile bootstrap; :func:`seed_scales` gives the report's). Undefined
    values (NaN) are left out of the means.
    """
    m, n_boot = x.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a replicate where every drawn run is NaN
        centre = np.nanmean(x, axis=0)
        if m < 2:
            return centre
        drawn = rng.integers(0, m, size=(m, n_boot))
        picked = np.take_along_axis(x, drawn, axis=0)
        return centre + scale * (np.nanmean(picked, axis=0) - centre)


def percentile_interval(diffs: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The (1 - c)/2 and (1 + c)/2 percentiles of the defined replicate differences; NaN when none is."""
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(diffs, [50 * (1 - confidence), 50 * (1 + confidence)])
    return float(lo), float(hi)


def verdict(lo: float, hi: float) -> str:
    """``higher`` when the interval of the difference lies above 0, ``lower`` below, ``within noise``
    when it holds 0, ``no interval`` when an end is undefined."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval"
    return "higher" if lo > 0 else "lower" if hi < 0 else "within noise"


def diff_interval(x_row: np.ndarray, x_base: np.ndarray, rng: np.random.Generator,
                  scales: tuple[float, float] = (1.0, 1.0),
                  confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile interval of row - baseline from the runs' replicate values x_row (m1, B) and
    x_base (m0, B) (paired when both were computed on the same test-row weights); the seed draws of
    the two rows are independent, their seed parts scaled by ``scales`` (see :func:`seed_scales`)."""
    diffs = row_replicates(x_row, rng, scales[0]) - row_replicates(x_base, rng, scales[1])
    return percentile_interval(diffs, confidence)


# ---------------------------------------------------------------- a run's test predictions

@dataclass
class TestRows:
    """One run's predictions of one split, in ``index`` order: what the paired bootstrap needs."""

    cells: np.ndarray  #: confusion cell of each row, (g * K + y) * K + y_hat
    groups: np.ndarray  #: group id of each row
    key: str  #: fingerprint of (index, y_true, group) and the group names: equal keys = the same test rows
    group_names: list[str]
    class_names: list[str]

    @property
    def n_cells(self) -> int:
        return len(self.group_names) * len(self.class_names) ** 2


def read_predictions(run_dir: Path) -> pd.DataFrame:
    """A run's predictions.pkl, read only when its checksum matches the record fairrun wrote beside it
    (:func:`fairrun.rundir.read_verified`); :class:`fairrun.rundir.IntegrityError` naming the file when it is
    missing, damaged or has no record (fairrun never unpickles a file it cannot vouch for)."""
    path = Path(run_dir) / rundir.PREDICTIONS
    data, verified = rundir.read_verified(path, require_record=True)
    if not verified:
        raise rundir.IntegrityError(f"{path} has no checksum recorded by fairrun "
                                    f"({rundir.checksum_path(path).name}), so fairrun will not unpickle it. "
                                    f"{rundir.cure_for(path)}")
    try:
        frame = pd.read_pickle(io.BytesIO(data))  # checksum-verified: the bytes fairrun itself wrote
    except Exception as err:  # noqa: BLE001 - verified bytes that do not unpickle: damaged when written
        raise rundir.IntegrityError(f"{path} cannot be read: {type(err).__name__}: {err}. "
                                    f"{rundir.cure_for(path)}") from err
    if not isinstance(frame, pd.DataFrame) or not set(PREDICTION_COLUMNS) <= set(frame.columns):
        raise rundir.IntegrityError(f"{path} is not the predictions table fairrun train writes (columns "
                                    f"{', '.join(PREDICTION_COLUMNS)}). {rundir.cure_for(path)}")
    return frame


def test_rows(pred: pd.DataFrame, split: str) -> TestRows | None:
    """The ``split`` rows of a predictions table as :class:`TestRows`; None when it has none."""
    part = pred[pred["split"].astype(str) == split].sort_values("index", kind="stable")
    if part.empty or part["group"].isna().any():
        return None
    group = part["group"]
    if isinstance(group.dtype, pd.CategoricalDtype):
        codes, group_names = group.cat.codes.to_numpy(), [str(c) for c in group.cat.categories]
    else:
        uniques, codes = np.unique(group.astype(str).to_numpy(), return_inverse=True)
        group_names = [str(u) for u in uniques]
    y, y_hat = part["y_true"].to_numpy().astype(np.int64), part["y_pred"].to_numpy().astype(np.int64)
    k = max(2, int(y.max()) + 1, int(y_hat.max()) + 1)
    names = pred.attrs.get("class_names")
    known = names is not None and len(names) == k
    class_names = [str(c) for c in names] if known else [str(c) for c in range(k)]
    digest = hashlib.sha256()
    for array in (part["index"].to_numpy().astype(np.int64), y, codes.astype(np.int64)):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update("\0".join(group_names).encode())
    return TestRows(cell_ids(y, y_hat, codes, k), codes.astype(np.int64), digest.hexdigest(), group_names,
                    class_names)


# ---------------------------------------------------------------- the report's comparisons

NEW_COLUMNS = ("diff", "diff_lo", "diff_hi", "verdict", "n_seeds", "baseline_n_seeds", "interval", "paired")
PAIRED_INTERVAL, SEEDS_INTERVAL = "paired test rows + seeds", "seeds only"


@dataclass
class _Runs:
    """The runs behind the comparisons: their predictions (or why not), replicate values and notes."""

    tests: dict  # run position -> TestRows, or the reason it has none (a string)
    values: dict  # (run position, metric) -> (B,) replicate values
    observed: dict  # (run position, metric) -> the metric of the run's predictions as they are
    notes: list


def members(table: pd.DataFrame, rows: pd.DataFrame, by: list[str]) -> list[list[int]]:
    """The positions in ``rows`` (one row per run) of the runs of each table row (same --by values)."""
    keys = rows[list(by)].to_numpy(dtype=object)
    out = []
    for values in table[list(by)].to_numpy(dtype=object):
        out.append([i for i, run in enumerate(keys) if all(noise._same(a, b) for a, b in zip(run, values))])
    return out


def _load(positions, run_dirs: list, split: str, notes: list) -> dict:
    tests = {}
    for i in positions:
        run_dir = run_dirs[i]
        if not run_dir or not (Path(run_dir) / rundir.PREDICTIONS).is_file():
            tests[i] = "no predictions"
            continue
        try:
            found = test_rows(read_predictions(run_dir), split)
        except rundir.IntegrityError as err:
            notes.append(f"not used: {' '.join(str(err).split())}")
            unrecorded = not rundir.checksum_path(Path(run_dir) / rundir.PREDICTIONS).exists()
            tests[i] = "unverified predictions" if unrecorded else "damaged predictions"
            continue
        tests[i] = found if found is not None else f"no {split} predictions"
    return tests


def _observed(tests: dict, metrics: list[str]) -> dict:
    """(run, metric) -> the metric recomputed from the run's predictions (unweighted), to check them against
    results."""
    out = {}
    for i, test in tests.items():
        if isinstance(test, TestRows):
            counts = np.bincount(test.cells, minlength=test.n_cells)[None]
            found = count_replicates(counts, len(test.class_names) == 2, metrics, test.group_names,
                                     test.class_names)
            out.update({(i, metric): float(v[0]) for metric, v in found.items()})
    return out


def _replicates(tests: dict, metrics: list[str], n_boot: int, rng: np.random.Generator) -> dict:
    """(run, metric) -> (B,) values; one draw of test-row weights per distinct test set, shared by its
    runs, made in chunks of replicates so that at most ``CHUNK_ELEMENTS`` weights are held at once."""
    values = {}
    by_key: dict[str, list[int]] = {}
    for i, test in tests.items():
        if isinstance(test, TestRows):
            by_key.setdefault(test.key, []).append(i)
    for runs in by_key.values():
        first = tests[runs[0]]
        cells = np.stack([tests[i].cells for i in runs])
        step = max(1, min(n_boot, CHUNK_ELEMENTS // max(cells.shape[1], 1)))
        chunks = []
        for start in range(0, n_boot, step):
            weights = draw_weights(first.groups, len(first.group_names), min(step, n_boot - start), rng)
            chunks.append(replicate_counts(weights, cells, first.n_cells))
        counts = np.concatenate(chunks, axis=1)
        for i, c in zip(runs, counts):
            for metric, v in count_replicates(c, len(first.class_names) == 2, metrics, first.group_names,
                                              first.class_names).items():
                values[i, metric] = v
    return values


def _agrees(observed: float, reported) -> bool:
    reported = float(reported)
    if np.isnan(observed) or np.isnan(reported):
        return bool(np.isnan(observed) and np.isnan(reported))
    return abs(observed - reported) <= 1e-9 * max(1.0, abs(reported))


def _one(metric: str, runs_row: list[int], runs_base: list[int], rows: pd.DataFrame, found: _Runs,
         rng: np.random.Generator, n_boot: int) -> dict:
    """The new columns of one comparison (see :func:`compare`)."""
    values = pd.to_numeric(rows[metric], errors="coerce").to_numpy(dtype=float)
    v_row, v_base = values[runs_row], values[runs_base]
    defined = np.isfinite(v_row).any() and np.isfinite(v_base).any()
    out = {"diff": np.nanmean(v_row) - np.nanmean(v_base) if defined else np.nan, "diff_lo": np.nan,
           "diff_hi": np.nan, "n_seeds": len(runs_row), "baseline_n_seeds": len(runs_base), "interval": "",
           "paired": ""}
    scales = seed_scales(v_row, v_base)[:2]
    everyone = runs_row + runs_base
    if count_key(metric) is not None:
        reasons = [found.tests[i] for i in everyone if not isinstance(found.tests[i], TestRows)]
        if reasons:
            return {**out, "verdict": reasons[0]}
        if all((i, metric) in found.values for i in everyone) and \
                all(_agrees(found.observed[i, metric], values[i]) for i in everyone):
            x_row = np.stack([found.values[i, metric] for i in runs_row])
            x_base = np.stack([found.values[i, metric] for i in runs_base])
            lo, hi = diff_interval(x_row, x_base, rng, scales)
            same = len({found.tests[i].key for i in everyone}) == 1
            return {**out, "diff_lo": lo, "diff_hi": hi, "verdict": MARKS.get(verdict(lo, hi), "no interval"),
                    "interval": PAIRED_INTERVAL, "paired": "yes" if same else "no: different test rows"}
        out["interval"] = f"{SEEDS_INTERVAL}: predictions do not reproduce results"
    if np.isfinite(v_row).sum() < 2 or np.isfinite(v_base).sum() < 2:
        return {**out, "interval": out["interval"] or SEEDS_INTERVAL, "verdict": "too few seeds"}
    x_row = np.broadcast_to(v_row[np.isfinite(v_row), None], (np.isfinite(v_row).sum(), n_boot))
    x_base = np.broadcast_to(v_base[np.isfinite(v_base), None], (np.isfinite(v_base).sum(), n_boot))
    lo, hi = diff_interval(x_row, x_base, rng, scales)
    return {**out, "diff_lo": lo, "diff_hi": hi, "verdict": MARKS.get(verdict(lo, hi), "no interval"),
            "interval": out["interval"] or SEEDS_INTERVAL, "paired": "no: seeds only"}


def compare(table: pd.DataFrame, rows: pd.DataFrame, by: list[str], metrics: list[str], baseline,
            run_dirs: list, split: str, n_boot: int = REPLICATES,
            seed: int = SEED) -> tuple[pd.DataFrame, list[str]]:
    """Every (table row, metric) against its baseline row by the paired hierarchical bootstrap.

    ``rows``: one row per run (the ``split`` rows of results), ``run_dirs`` their run directories (same
    order; '' when unknown). Returns (comparisons, notes): the columns of
    :func:`fairrun.report.noise.compare` (whose baseline matching is used) plus ``diff`` (row mean -
    baseline mean), ``diff_lo``, ``diff_hi`` (the 95 % interval of the difference), ``verdict`` (▲, ▼,
    ≈, or why there is none: ``no baseline``, ``no predictions``, ``damaged predictions``, ``unverified
    predictions`` (no checksum record), ``no <split> predictions``, ``too few seeds``, ``no interval``), ``n_seeds``, ``baseline_n_seeds`` (runs per
    row), ``interval`` (``paired test rows + seeds`` or ``seeds only``, with the reason when a count
    metric falls back) and ``paired`` (``yes``, or why not). The notes name the damaged files.
    """
    comparisons = noise.compare(table, by, metrics, baseline)
    groups = members(table, rows, by)
    needed = sorted({i for r in comparisons.itertuples() if r.baseline_row >= 0
                     for i in groups[r.row] + groups[r.baseline_row]})
    rng = np.random.default_rng(seed)
    notes: list[str] = []
    counted = [m for m in metrics if count_key(m) is not None]
    tests = _load(needed, run_dirs, split, notes) if counted else {}
    with one_blas_thread():
        found = _Runs(tests, _replicates(tests, counted, n_boot, rng), _observed(tests, counted), notes)
    records = []
    for r in comparisons.itertuples():
        if r.baseline_row < 0:
            records.append({"diff": np.nan, "diff_lo": np.nan, "diff_hi": np.nan, "verdict": "no baseline",
                            "n_seeds": len(groups[r.row]), "baseline_n_seeds": 0, "interval": "",
                            "paired": ""})
        else:
            records.append(_one(r.metric, groups[r.row], groups[r.baseline_row], rows, found, rng, n_boot))
    extra = pd.DataFrame(records, columns=list(NEW_COLUMNS), index=comparisons.index)
    comparisons = pd.concat([comparisons.drop(columns="verdict"), extra], axis=1)
    return comparisons, notes


def marks(comparisons: pd.DataFrame) -> dict[tuple[int, str], str]:
    """(table row, metric) -> ▲ ▼ ≈ for the comparisons whose verdict is a mark."""
    shown = set(MARKS.values())
    return {(int(r.row), r.metric): r.verdict for r in comparisons.itertuples() if r.verdict in shown}


def _seed_counts(comparisons: pd.DataFrame) -> str:
    pairs = comparisons[comparisons["baseline_n_seeds"] > 0].groupby(["n_seeds", "baseline_n_seeds"]).size()
    return ", ".join(f"{a} vs {b} seeds ({n} comparison{'s' * (n > 1)})" for (a, b), n in pairs.items())


def legend(baseline: tuple[str, object], by: list[str], comparisons: pd.DataFrame) -> str:
    """The lines printed under the table: what the marks mean, how many seeds they rest on, and why some
    cells have none."""
    key, value = baseline
    others = [k for k in by if k != key]
    against = f"vs {key}={format_key(value)}" + (f" at the same {', '.join(others)}" if others else "")
    if comparisons.empty:
        return f"{against}: every row is a baseline row, so nothing is marked."
    lines = [f"{against}: ▲/▼ the 95% interval of the difference (row - baseline) lies above/below 0, ≈ it "
             f"holds 0; paired bootstrap over the test rows and the seeds (comparisons.csv: diff, diff_lo, "
             f"diff_hi)."]
    counts = _seed_counts(comparisons)
    if counts:
        lines.append(f"seeds per comparison (row vs baseline): {counts}.")
    single = comparisons[(comparisons["interval"] == PAIRED_INTERVAL)
                         & ((comparisons["n_seeds"] == 1) | (comparisons["baseline_n_seeds"] == 1))]
    if not single.empty:
        lines.append("with one seed in a row, its interval covers test-set noise only, not seed-to-seed "
                     "variation: run more seeds before trusting ▲/▼ there.")
    seeds_only = comparisons[comparisons["interval"].astype(str).str.startswith(SEEDS_INTERVAL)
                             & comparisons["verdict"].isin(list(MARKS.values()))]
    if not seeds_only.empty:
        names = ", ".join(pd.unique(seeds_only["metric"]))
        lines.append(f"seeds only (no test-row resampling) for: {names}.")
    reasons = comparisons[~comparisons["verdict"].isin(list(MARKS.values()))]["verdict"].value_counts()
    if not reasons.empty:
        lines.append("blank = " + "; ".join(f"{reason} ({n})" for reason, n in reasons.items()) + ".")
    return "\n".join(lines)
