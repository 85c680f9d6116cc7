"""The decoded-image cache: every image of a dataset decoded once into a memory-mapped uint8 array.

A cache entry is a folder ``<cache root>/<dataset>-<size>px-<key>/`` holding

* ``images.npy`` — uint8 (N, 3, size, size), row i = ``index.csv`` row i, opened memory-mapped;
* ``index.csv`` — the labels table: relative path, split (if official), the attributes, and
  ``ok`` / ``error`` per row (unreadable files are zero rows with ``ok=False``); a CSV, never a pickle,
  because cache folders are shared (cluster storage) and reading a pickle runs whatever code it holds;
* ``meta.json`` — what the key was computed from, build time, image count and the SHA-256 of
  ``images.npy`` and ``index.csv``, verified every time the entry is opened: a damaged entry is rebuilt
  in place (with a warning naming the damage), never read.

The images file's disk space is reserved before decoding starts, so a full disk is a clear error at once
instead of a decoding process killed by SIGBUS; a decoding process that dies for any reason is an error
naming the cause, never a hang. Non-regular files listed by a dataset (a FIFO, a device) are recorded as
unreadable without being opened.

The key hashes the dataset name and layout, the resolved root, the ordered file list and the
preprocessing (size, crop), so changing any of them builds a new entry, and nothing else does
(not the target, the split fractions or the training seed). The cache root is ``$FAIRRUN_CACHE``
or ``~/.cache/fairrun``. An entry is a cached stage (:mod:`fairrun.core.stages`): built in a temporary
folder and renamed into place, so an interrupted build leaves no half-written entry and concurrent jobs of
a sweep do not collide.
"""
from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from fairrun.data.decode import CHUNK, Preprocessing, available_cores, decode_task
from fairrun.data.table import ImageTable
from fairrun.core.errors import FairrunError
from fairrun.core.fingerprint import file_sha256, fingerprint
from fairrun.core.stages import Damaged, Stage, build_folder

log = logging.getLogger("fairrun")

CACHE_VERSION = 2  # 2: index.csv instead of index.pkl, checksums in meta.json
IMAGES, INDEX, META = "images.npy", "index.csv", "meta.json"


class CacheDamaged(Damaged):
    """A cache entry whose files do not match the checksums recorded when it was built."""


def cache_root() -> Path:
    """Where decoded datasets are kept: ``$FAIRRUN_CACHE``, else ``~/.cache/fairrun``."""
    return Path(os.environ.get("FAIRRUN_CACHE") or Path.home() / ".cache" / "fairrun").expanduser()


def cache_key(name: str, table: ImageTable, prep: Preprocessing) -> str:
    """Hash of everything that changes the decoded pixels or their order."""
    header = {"version": CACHE_VERSION, "dataset": name, "source": table.source, "root": str(table.root),
              "size": prep.size, "crop": prep.crop, "crop_size": prep.crop_size if prep.crop == "center" else None}
    return fingerprint(header, "\n".join(table.paths))


def cache_dir(name: str, table: ImageTable, prep: Preprocessing) -> Path:
    """The cache entry folder for this dataset, file list and preprocessing."""
    return cache_root() / f"{name}-{prep.size}px-{cache_key(name, table, prep)}"


@dataclass
class DecodedImages:
    """An opened cache entry: all images (memory-mapped, as a uint8 tensor) and per-row status."""

    path: Path
    images: torch.Tensor  # uint8 (N, 3, size, size), backed by the memory-mapped file
    ok: np.ndarray  # bool (N,): False for files that could not be decoded
    errors: pd.Series  # error text per row ('' when ok)

    @property
    def bad_rows(self) -> np.ndarray:
        return np.flatnonzero(~self.ok)


def verify_entry(path: Path) -> dict:
    """Check a cache entry against its meta.json (files present, SHA-256 of images and index); returns the
    metadata or raises :class:`CacheDamaged` saying what is wrong."""
    try:
        meta = json.loads((path / META).read_text())
        recorded = {IMAGES: meta["images_sha256"], INDEX: meta["index_sha256"]}
    except FileNotFoundError:
        raise CacheDamaged(f"decoded-image cache entry {path} has no {META} (an interrupted or damaged "
                           f"entry)") from None
    except (ValueError, KeyError, TypeError) as err:
        raise CacheDamaged(f"{path / META} is damaged or from an older fairrun ({type(err).__name__}: "
                           f"{err})") from None
    for name, expected in recorded.items():
        if not (path / name).is_file():
            raise CacheDamaged(f"decoded-image cache entry {path} lacks {name}")
        if file_sha256(path / name) != expected:
            raise CacheDamaged(f"{path / name} does not match the SHA-256 recorded in {path / META} when the "
                               f"entry was built (the file was changed or damaged on disk)")
    return meta


def open_cache(path: Path) -> DecodedImages:
    """Open a built cache entry after verifying its checksums (memory-mapped: rows are read when used)."""
    verify_entry(path)
    # mode "c" (copy-on-write) gives a writable mapping, so torch shares it without a copy or warning;
    # nothing is ever written back to the file.
    try:
        array = np.load(path / IMAGES, mmap_mode="c")
        index = pd.read_csv(path / INDEX, usecols=["ok", "error"], keep_default_na=False, dtype={"error": str})
        ok = index["ok"].map({"True": True, "False": False, True: True, False: False})
        if ok.isna().any() or len(index) != len(array):
            raise ValueError(f"{len(index)} index rows for {len(array)} images")
    except (ValueError, OSError) as err:
        raise CacheDamaged(f"decoded-image cache entry {path} cannot be read ({err})") from None
    return DecodedImages(path=path, images=torch.from_numpy(array), ok=ok.to_numpy(bool), errors=index["error"])


def reserve_space(npy: Path, root: Path) -> None:
    """Allocate the whole images file now, so a full disk fails here with a clear message rather than as
    a SIGBUS in a decoding process writing into a sparse memory-mapped file."""
    size = npy.stat().st_size
    try:
        with open(npy, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, size)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            free = shutil.disk_usage(npy.parent).free
            raise FairrunError(
                f"No space for the decoded-image cache: {npy} needs {size / 2**30:.2f} GiB and "
                f"{npy.parent} has {free / 2**30:.2f} GiB free ({os.strerror(err.errno)}). Free space there, "
                f"or point FAIRRUN_CACHE at a disk with room (the cache root is now {root}).") from None
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # file systems without fallocate: go on
            raise


def _labels_table(table: ImageTable, failures: dict[int, str]) -> pd.DataFrame:
    frame = pd.DataFrame({"path": table.paths})
    if table.split is not None:
        frame["split"] = table.split
    for column in table.attributes.columns:
        frame[column] = pd.Categorical.from_codes(table.attributes[column].to_numpy(),
                                                  categories=table.attribute_values[column])
    frame["ok"] = [i not in failures for i in range(len(table))]
    frame["error"] = [failures.get(i, "") for i in range(len(table))]
    return frame


def build_cache(name: str, table: ImageTable, prep: Preprocessing, workers: int = 0) -> DecodedImages:
    """Decode every image of ``table`` into a new cache entry, in ``workers`` processes (0 = all cores).

    Unreadable files do not stop the build: they are recorded per row (``ok=False`` plus the
    error), so the caller can name them and a rerun with ``dataset.skip_bad=true`` reuses the entry.
    The entry is built in a temporary folder renamed into place (:func:`fairrun.core.stages.build_folder`):
    a damaged entry already in place is replaced, a valid one another job finished first is kept.
    """
    final = cache_dir(name, table, prep)
    workers = workers or available_cores()
    started = time.perf_counter()
    seconds = 0.0

    def fill(building: Path) -> None:
        nonlocal seconds
        npy = building / IMAGES
        array = np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint8,
                                          shape=(len(table), 3, prep.size, prep.size))
        del array
        reserve_space(npy, cache_root())
        tasks = [(str(npy), str(table.root), table.paths[s:s + CHUNK], s, prep)
                 for s in range(0, len(table), CHUNK)]
        failures = decode_all(tasks, workers, f"decoding {name} at {prep.size}px", len(table), npy)
        labels = _labels_table(table, failures)
        labels.to_csv(building / INDEX, index=False)
        seconds = time.perf_counter() - started
        meta = {"dataset": name, "source": table.source, "root": str(table.root), "images": len(table),
                "unreadable": len(failures), "size": prep.size, "crop": prep.crop, "crop_size": prep.crop_size,
                "seconds": round(seconds, 2), "workers": workers, "version": CACHE_VERSION,
                "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                "images_sha256": file_sha256(npy), "index_sha256": file_sha256(building / INDEX)}
        (building / META).write_text(json.dumps(meta, indent=2))

    build_folder(final, fill, verify=verify_entry)
    log.info("decoded %d images of %s in %.1f s (%d processes, %.0f images/s) into %s", len(table), name,
             seconds, workers, len(table) / max(seconds, 1e-9), final)
    return open_cache(final)


def decode_all(tasks: list, workers: int, desc: str, total: int, npy: Path) -> dict[int, str]:
    """Run the decode tasks (in spawned processes when there are several); returns {row: error}.

    A decoding process that dies (out of memory, SIGBUS on a full disk, killed) is a
    :class:`FairrunError` naming the cause, never a hang: concurrent.futures notices a dead worker,
    where multiprocessing.Pool would wait forever for its lost task.
    """
    failures: dict[int, str] = {}
    bar = tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True, disable=None)
    try:
        if workers == 1 or len(tasks) == 1:
            for task in tasks:
                failures.update(decode_task(task))
                bar.update(len(task[2]))
            return failures
        # spawn: worker processes import only numpy + PIL (fairrun.data.decode), not torch, and
        # never inherit the parent's threads (fork after torch/OpenMP start can deadlock).
        with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(decode_task, task): task for task in tasks}
            try:
                for future in as_completed(futures):
                    failures.update(future.result())
                    bar.update(len(futures[future][2]))
            except BrokenProcessPool:
                for future in futures:
                    future.cancel()
                free = shutil.disk_usage(npy.parent).free
                raise FairrunError(
                    f"A decoding process died while writing {npy} (killed by the system: out of memory, "
                    f"a full disk ({free / 2**30:.2f} GiB free there) or a signal). Nothing was cached. Free "
                    f"memory or disk space, or use fewer processes (gpu.num_workers=1), and run again.") from None
    finally:
        bar.close()
    return failures


def decoded_images(name: str, table: ImageTable, prep: Preprocessing, workers: int = 0) -> DecodedImages:
    """The cache entry for ``table`` and ``prep``: opened if it exists, built (decoding once) if not."""
    path = cache_dir(name, table, prep)

    def build() -> DecodedImages:
        log.info("building the decoded-image cache for %s (%d images, %dpx) in %s", name, len(table),
                 prep.size, path)
        return build_cache(name, table, prep, workers)

    stage = Stage("decoded-image cache", path, load=open_cache,
                  reusing=("using decoded-image cache %s", path), redo="rebuilding the entry (it is replaced, never read)")
    return stage.run(build)
