"""The short results table printed at the end of a run (and by `fairrun eval`); one line per multirun job."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from fairrun.metrics import registry

# the metrics of a multirun job's line: (results column, its short label)
JOB_LINE_METRICS = (("accuracy", "acc"), ("worst_group_acc", "worst"), ("eopp_diff", "eopp"))


def results_table(results: pd.DataFrame) -> str:
    """Splits as rows; the columns of the registry's ``console`` view that are present (overall metrics,
    then per-group accuracy; no bootstrap columns), as fixed-width text."""
    table = results.set_index("split")[registry.view_columns("console", results.columns)]
    return table.to_string(float_format=lambda v: f"{v:.4f}", na_rep="nan")


def print_results(results: pd.DataFrame) -> None:
    """Print the run directory and the results table to stdout; in a job of a multirun, one line instead
    (:func:`job_line`), so a sweep's output stays one line per finished job."""
    job = multirun_job()
    if job is not None:
        num, overrides, swept, job_dir = job
        # a run a staged method trains inside a training job (gan_debias' baselines) is not the job itself;
        # job_dir is None in other commands' jobs (fairrun eval -m run_dir=A,B evaluates other directories)
        own = job_dir is None or Path(str(results["run_dir"].iloc[0])).resolve() == Path(job_dir).resolve()
        print(job_line(results, num, overrides, swept, "done" if own else "sub-run done"), flush=True)
        return
    print(f"\nResults ({results['run_dir'].iloc[0]}):")
    print(results_table(results))


def multirun_job() -> tuple[int, list[str], list[str], str | None] | None:
    """``(job number, the job's overrides, the swept keys, the job's directory)`` inside a job of a Hydra
    multirun, else None. The job's directory only for a ``fairrun train`` job (Hydra job name ``train``),
    whose run directory it is; None for other commands.

    The swept keys are those of ``hydra.sweeper.params`` and of the sweep's command-line overrides that list
    several values (``method=erm,groupdro``, ``seed=range(3)``), read from the sweep's ``multirun.yaml``
    (:func:`fairrun.core.overrides.swept_keys`, which also names the run in TensorBoard); when it cannot
    be read, every override of the job counts as swept."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from fairrun.core.overrides import swept_keys

    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    overrides = [str(o) for o in hydra_cfg.overrides.task]
    swept = sorted(swept_keys(Path(str(hydra_cfg.sweep.dir))) or ())
    job_dir = str(hydra_cfg.runtime.output_dir) if hydra_cfg.job.name == "train" else None
    return int(hydra_cfg.job.num), overrides, swept, job_dir


def job_line(results: pd.DataFrame, num: int, overrides: list[str], swept: list[str],
             what: str = "done") -> str:
    """``job 3 done  method=groupdro ratio=0.9 seed=1  test acc 0.912 worst 0.871 eopp 0.041  RUN_DIR``: the
    job number, its values of the swept keys (every override when none is known to be swept), the test row's
    accuracy, worst-group accuracy and equal-opportunity difference (the first row's when there is no test
    row; a metric the results lack is left out) and the run directory. ``what``: ``done``, or ``sub-run done``
    for a run that a staged method trained inside the job."""
    from fairrun.core.overrides import short_key_names

    pairs = [o.split("=", 1) for o in overrides if "=" in o]
    swept_set = {key.lstrip("+~") for key in swept}
    chosen = [(k, v) for k, v in pairs if k.lstrip("+~") in swept_set] if swept_set else pairs
    names = short_key_names([k for k, _ in chosen])
    params = " ".join(f"{names[k.lstrip('+~')]}={v}" for k, v in chosen)
    test = results[results["split"].astype(str) == "test"]
    row = (test if len(test) else results).iloc[0]
    values = " ".join(f"{label} {_number(row[column])}"
                      for column, label in JOB_LINE_METRICS if column in row)
    parts = [f"job {num} {what}", params, f"{row['split']} {values}".strip(), str(row.get("run_dir", ""))]
    return "  ".join(part for part in parts if part)


def _number(value) -> str:
    """A metric value with three decimals, ``nan`` when missing."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "nan"
    return "nan" if math.isnan(value) else f"{value:.3f}"
