"""The short results table printed at the end of a run (and by `fairrun eval`)."""
from __future__ import annotations

import pandas as pd

SUMMARY_COLUMNS = ("n", "accuracy", "balanced_accuracy", "auc", "worst_group_acc", "acc_gap", "acc_var",
                   "dp_diff", "eo_diff", "eopp_diff")
INTERVAL_SUFFIXES = ("_lo", "_median", "_hi")  # bootstrap columns, in results.pkl but not in the printed table


def results_table(results: pd.DataFrame) -> str:
    """Splits as rows; overall metrics, then per-group accuracy columns, as fixed-width text."""
    columns = [c for c in SUMMARY_COLUMNS if c in results] + \
              [c for c in results.columns if c.startswith("acc[") and not c.endswith(INTERVAL_SUFFIXES)]
    table = results.set_index("split")[columns]
    return table.to_string(float_format=lambda v: f"{v:.4f}", na_rep="nan")


def print_results(results: pd.DataFrame) -> None:
    """Print the run directory and the results table to stdout."""
    print(f"\nResults ({results['run_dir'].iloc[0]}):")
    print(results_table(results))
