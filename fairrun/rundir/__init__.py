"""The run directory: atomic, checksummed writes of results, predictions and checkpoints; verified reads.

Layout (one per run; one per job in a multirun)::

    results.pkl        one row per evaluated split (pandas DataFrame), for users
    results.json       the same table in a format that cannot carry code: what fairrun reads back
    predictions.pkl    split, index, y_true, y_score, y_pred, group
    run_config.yaml    the validated run config (what `fairrun eval` reloads)
    train_counts.csv   group x label counts of the training set actually used
    checkpoints/       last.pt (every epoch, and on Ctrl-C), best.pt (best validation accuracy)
    tb/                TensorBoard events
    .hydra/            Hydra's composed config and overrides
    done               written last: the run finished

Integrity: every checkpoint, result/prediction table and run_config.yaml gets a sidecar
``<file>.sha256`` (``sha256sum -c`` format), written atomically after the file. Every read
verifies it: a mismatch, a truncated, empty, garbled or missing file is an :class:`IntegrityError`
(one paragraph naming the file and the cure, exit code 2). A file without a sidecar (written by an
older fairrun) is read with a logged warning, except a pickle: fairrun never unpickles a file unless
its checksum matches fairrun's own record (see :func:`read_results`).

Write errors (disk full, file-size limit, read-only location) become a :class:`WriteError` naming
the file; the previous version of the file stays intact, because every write goes to a temporary
file that only replaces the old one once it is complete.

Modules, one job each: ``layout`` (the file names, ``is_done``), ``errors`` (IntegrityError, WriteError
and the cure for each file), ``checksums`` (sidecars, verified reads), ``atomic`` (atomic writes, removing a
killed writer's temporaries), ``frames`` (the typed JSON encoding of results.json), ``tables`` (results and
prediction tables), ``checkpoints``, ``text`` (run_config.yaml), ``trust`` (``python -m fairrun.rundir
trust``), ``lock`` (one writer per directory). This package re-exports the names its callers use.
"""
from __future__ import annotations

from fairrun.rundir.atomic import atomic_write, remove_orphaned_temporaries
from fairrun.rundir.checkpoints import load_checkpoint, save_checkpoint
from fairrun.rundir.checksums import CHECKSUM_SUFFIX, checksum_path, read_verified, sha256
from fairrun.rundir.errors import IntegrityError, WriteError, cure_for
from fairrun.rundir.frames import SAFE_FORMAT, frame_from_json, frame_to_json
from fairrun.rundir.layout import (BEST, CHECKSUMMED_TEXT, DONE, ENVIRONMENT, LAST, PREDICTIONS, RESULTS,
                                   RESULTS_SAFE, RUN_CONFIG, SAFE_TWINS, TRAIN_COUNTS, is_done)
from fairrun.rundir.tables import read_results, write_pickle, write_safe_frame
from fairrun.rundir.text import read_text, write_text
from fairrun.rundir.trust import main as _main
from fairrun.rundir.trust import trust_results

_atomic = atomic_write  # the name fairrun.generative.grids imports

__all__ = [
    "BEST", "CHECKSUMMED_TEXT", "CHECKSUM_SUFFIX", "DONE", "ENVIRONMENT", "LAST", "PREDICTIONS", "RESULTS",
    "RESULTS_SAFE", "RUN_CONFIG", "SAFE_FORMAT", "SAFE_TWINS", "TRAIN_COUNTS", "IntegrityError", "WriteError",
    "_atomic", "_main", "atomic_write", "checksum_path", "cure_for", "frame_from_json", "frame_to_json", "is_done",
    "load_checkpoint", "read_results", "read_text", "read_verified", "remove_orphaned_temporaries",
    "save_checkpoint", "sha256", "trust_results", "write_pickle", "write_safe_frame", "write_text",
]
