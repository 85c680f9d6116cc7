"""`fairrun report`: many run directories -> one sweep DataFrame -> tables, plots, noise marks.

Modules, one job each: ``collect`` (find run directories, read results.pkl, job statuses, Hydra's
expected jobs), ``table`` (mean ± std per group of --by keys, fixed-width text), ``noise`` (within-noise
verdicts against a baseline row from bootstrap intervals), ``plots`` (the PNG charts) and ``cli``
(argparse front end: :func:`fairrun.report.cli.report_main`).
"""
