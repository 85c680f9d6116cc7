"""fairrun: a command-line runner for fairness experiments on image classifiers.

The package is layered, arrows only downward (``tests/unit/test_architecture.py`` holds the map and fails on an
upward import or an import circle): errors, validation and run directories at the bottom -> metrics, data ->
models, evaluation helpers -> generative models -> methods -> the run config -> training -> sweeps and
reports -> the commands (:mod:`fairrun.cli`).

The plugin contract (docs/extending.md) is importable from here: ``from fairrun import Method`` (a method),
``ModelBuilder`` and ``Classifier`` (a model), ``Dataset`` and ``SplitData`` (a dataset). They are loaded on
first use, so that ``import fairrun`` stays light (no torch at start-up of the command line).

Results from Python (docs/python-api.md): ``fairrun.load_run(run_dir)`` (one run's results table),
``fairrun.load_sweep(path)`` (every finished run under a sweep or folder, the table of ``fairrun report``'s
sweep.pkl) and ``fairrun.tidy(df)`` (one row per run, split, group and metric with its bootstrap interval).
"""

__version__ = "0.1.0"

_PUBLIC = {
    "Method": "fairrun.methods.base",
    "Batch": "fairrun.methods.base",
    "Outputs": "fairrun.methods.base",
    "ModelBuilder": "fairrun.models.registry",
    "Classifier": "fairrun.models.classifier",
    "Dataset": "fairrun.data.registry",
    "SplitData": "fairrun.data.base",
    "load_run": "fairrun.results_api",
    "load_sweep": "fairrun.results_api",
    "tidy": "fairrun.results_api",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'fairrun' has no attribute {name!r}")
