"""The short results table printed at the end of a run (and by `fairrun eval`)."""
from __future__ import annotations

import pandas as pd

from fairrun.metrics import registry


def results_table(results: pd.DataFrame) -> str:
    """Splits as rows; the columns of the registry's ``console`` view that are present (overall metrics,
    then per-group accuracy; no bootstrap columns), as fixed-width text."""
    table = results.set_index("split")[registry.view_columns("console", results.columns)]
    return table.to_string(float_format=lambda v: f"{v:.4f}", na_rep="nan")


def print_results(results: pd.DataFrame) -> None:
    """Print the run directory and the results table to stdout."""
    print(f"\nResults ({results['run_dir'].iloc[0]}):")
    print(results_table(results))
