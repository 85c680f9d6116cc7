"""The names of the files in a run directory, which of them are checksummed, and whether a run finished."""
from __future__ import annotations

from pathlib import Path

RESULTS = "results.pkl"
RESULTS_SAFE = "results.json"
PREDICTIONS = "predictions.pkl"
RUN_CONFIG = "run_config.yaml"
TRAIN_COUNTS = "train_counts.csv"
ENVIRONMENT = "environment.json"  # the software and hardware of each segment of the run
DONE = "done"
LAST = Path("checkpoints") / "last.pt"
BEST = Path("checkpoints") / "best.pt"
# Text files that fairrun reads back, and so checksums (other text files are for people only).
CHECKSUMMED_TEXT = {RUN_CONFIG, ENVIRONMENT}
# Pickled tables that get a safe twin (the file fairrun itself reads back instead of the pickle).
SAFE_TWINS = {RESULTS: RESULTS_SAFE}


def run_dir_of(path: Path) -> Path:
    """The run directory holding ``path`` (a file of the run directory or of its ``checkpoints/``)."""
    path = Path(path)
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def is_done(run_dir: Path) -> bool:
    """True when the run finished (its results.pkl is complete)."""
    return (Path(run_dir) / DONE).is_file() and (Path(run_dir) / RESULTS).is_file()
