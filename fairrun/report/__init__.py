"""`fairrun report`: many run directories -> one sweep DataFrame -> tables, plots, comparison marks.

Modules, one job each: ``collect`` (find run directories, read results.pkl, job statuses, Hydra's
expected jobs), ``table`` (mean ± std per group of --by keys, fixed-width text), ``noise`` (match each
row with its baseline row), ``paired`` (the marks: a paired, hierarchical bootstrap of the difference
over test rows and seeds), ``simulate`` (its calibration by simulation, and synthetic sweeps on disk),
``plots`` (the PNG charts) and ``cli`` (argparse front end: :func:`fairrun.report.cli.report_main`).
"""
