"""Match each table row with its baseline row, and the rows' mean bootstrap intervals side by side.

Every run stores a bootstrap interval per metric (``m_lo``, ``m_hi``); a table row's interval is the
mean of its runs' ends (see :func:`fairrun.report.table.aggregate`). :func:`compare` pairs every row
with its baseline row and lists both intervals; its ``verdict`` is the overlap rule of earlier fairrun
versions (intervals disjoint or not), which ignores seed-to-seed variance and the shared test set. The
report's marks come from :mod:`fairrun.report.paired` (an interval of the difference), which uses
:func:`compare` for the matching and replaces that verdict.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fairrun.core.errors import FairrunError
from fairrun.report.table import format_key, value_order

MARKS = {"within noise": "≈", "higher": "▲", "lower": "▼"}
VERDICTS = ("within noise", "higher", "lower", "no interval", "no baseline")


def verdict(lo: float, hi: float, base_lo: float, base_hi: float) -> str:
    """``within noise`` when [lo, hi] and [base_lo, base_hi] overlap (touching counts), ``higher`` /
    ``lower`` when the row's interval lies wholly above / below the baseline's, ``no interval`` when
    either end of either interval is missing (NaN)."""
    ends = [lo, hi, base_lo, base_hi]
    if any(v is None or not np.isfinite(v) for v in ends):
        return "no interval"
    if lo > base_hi:
        return "higher"
    if hi < base_lo:
        return "lower"
    return "within noise"


def _same(a, b) -> bool:
    nan_a = a is None or (isinstance(a, float) and math.isnan(a))
    nan_b = b is None or (isinstance(b, float) and math.isnan(b))
    if nan_a or nan_b:
        return nan_a and nan_b
    return a == b


def parse_baseline(text: str | None, table: pd.DataFrame, by: list[str]) -> tuple[str, object]:
    """The baseline as (key, value) from ``--baseline KEY=VALUE``, or the default.

    Default: ``method=erm`` when ``method`` is a --by key and erm is present; otherwise the first
    value of the first --by key in table order (e.g. ``imbalance_ratio=1``). VALUE is matched against
    the key's values as shown in the table (``1`` matches 1.0, ``none`` a missing value). Raises
    FairrunError naming the bad key or value and what is accepted.
    """
    if text is None:
        if "method" in by and (table["method"] == "erm").any():
            return "method", "erm"
        return by[0], value_order(by[0], table[by[0]])[0]
    if "=" not in text:
        raise FairrunError(f"--baseline {text!r} is not KEY=VALUE. Use one of the --by keys "
                           f"({', '.join(by)}) and one of its values, e.g. --baseline method=erm.")
    key, raw = (part.strip() for part in text.split("=", 1))
    if key not in by:
        raise FairrunError(f"--baseline key {key!r} is not a --by key. Accepted keys: {', '.join(by)}.")
    values = value_order(key, table[key])
    for value in values:
        shown = format_key(value)
        if raw == shown or raw == str(value) or (_number(raw) is not None and _number(shown) == _number(raw)):
            return key, value
    raise FairrunError(f"--baseline value {raw!r} does not occur for {key}. Accepted values: "
                       f"{', '.join(format_key(v) for v in values)}.")


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return None


def _unset(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _baseline_of(row: pd.Series, base_rows: pd.DataFrame, others: list[str]):
    """The baseline row with the same values of ``others`` as ``row``; failing that, one whose differing
    keys are all unset (``none``): a key the baseline method does not have, such as ``noise_multiplier``
    for erm, matches any value."""
    for loose in (False, True):
        for _, base in base_rows.iterrows():
            if all(_same(base[k], row[k]) or (loose and _unset(base[k])) for k in others):
                return base
    return None


def compare(table: pd.DataFrame, by: list[str], metrics: list[str], baseline: tuple[str, object]) -> pd.DataFrame:
    """One row per (table row, metric): the row's and its baseline's value and interval, and the verdict.

    The baseline of a row is the row with ``key == value`` and the same values of the other --by
    keys; a key the baseline leaves unset (e.g. erm's ``noise_multiplier``) matches any value. Baseline
    rows themselves are left out. Columns: the --by keys, ``metric``, ``baseline``
    (KEY=VALUE), ``value``, ``lo``, ``hi``, ``baseline_value``, ``baseline_lo``, ``baseline_hi``,
    ``verdict`` (one of :data:`VERDICTS`; ``no baseline`` when no row matches), ``row`` and
    ``baseline_row`` (positions in ``table``; -1 without a baseline).
    """
    key, value = baseline
    others = [k for k in by if k != key]
    table = table.reset_index(drop=True)
    base_rows = table[[_same(v, value) for v in table[key]]]
    records = []
    for i, row in table.iterrows():
        if _same(row[key], value):
            continue
        base = _baseline_of(row, base_rows, others)
        for m in metrics:
            record = {k: row[k] for k in by}
            record.update(metric=m, baseline=f"{key}={format_key(value)}", value=row[f"{m}_mean"],
                          lo=row[f"{m}_lo"], hi=row[f"{m}_hi"])
            if base is None:
                record.update(baseline_value=np.nan, baseline_lo=np.nan, baseline_hi=np.nan, verdict="no baseline")
            else:
                record.update(baseline_value=base[f"{m}_mean"], baseline_lo=base[f"{m}_lo"],
                              baseline_hi=base[f"{m}_hi"],
                              verdict=verdict(row[f"{m}_lo"], row[f"{m}_hi"], base[f"{m}_lo"], base[f"{m}_hi"]))
            record["row"] = i
            record["baseline_row"] = -1 if base is None else int(base.name)
            records.append(record)
    columns = [*by, "metric", "baseline", "value", "lo", "hi", "baseline_value", "baseline_lo", "baseline_hi",
               "verdict", "row", "baseline_row"]
    return pd.DataFrame(records, columns=columns)
