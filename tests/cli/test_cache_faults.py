"""The decoded-image cache never serves damaged pixels and never hangs: checksums verified on open, damaged
entries rebuilt in place, a full disk and a dying decoder are clear errors, FIFOs are not opened, orphaned
build folders are cleaned, and nothing is unpickled."""
from __future__ import annotations

import errno
import json
import logging
import os
import socket

import numpy as np
import pytest
import torch

from fairrun.data import cache as cache_module
from fairrun.data.decode import Preprocessing
from fairrun.data.registry import read_splits
from fairrun.core.errors import FairrunError
from tests.unit.test_data_files import celeba_cfg, celeba_root, fresh_cache  # noqa: F401 (fixtures)


def built(celeba_root, fresh_cache):
    """Build the entry; returns copies of the first three images of each split (the splits themselves
    are memory-mapped views of the file the tests then damage) and the entry folder."""
    splits = read_splits(celeba_cfg(celeba_root), workers=1)
    (entry,) = list(fresh_cache.iterdir())
    index = torch.arange(3)
    return {name: splits[name].images[index].clone() for name in ("train", "val", "test")}, entry


def test_damaged_images_are_detected_and_the_entry_rebuilt(celeba_root, fresh_cache, caplog):
    splits, entry = built(celeba_root, fresh_cache)
    images = entry / "images.npy"
    data = bytearray(images.read_bytes())
    rng = np.random.default_rng(0)
    for offset in rng.integers(200, len(data), 64):
        data[offset] ^= 0xFF
    images.write_bytes(bytes(data))
    with pytest.raises(cache_module.CacheDamaged, match="does not match the SHA-256"):
        cache_module.open_cache(entry)
    with caplog.at_level(logging.WARNING, logger="fairrun"):
        again = read_splits(celeba_cfg(celeba_root), workers=1)
    assert "rebuilding the entry" in caplog.text
    for split in ("train", "val", "test"):
        assert torch.equal(again[split].images[torch.arange(3)], splits[split])
    cache_module.verify_entry(entry)


def test_deleting_meta_json_forces_a_rebuild_that_replaces_the_entry(celeba_root, fresh_cache):
    splits, entry = built(celeba_root, fresh_cache)
    (entry / "meta.json").unlink()
    (entry / "images.npy").write_bytes(b"\x93NUMPY damaged")
    again = read_splits(celeba_cfg(celeba_root), workers=1)
    meta = cache_module.verify_entry(entry)  # the new build is in place, not discarded
    assert meta["images"] == 40
    assert torch.equal(again["test"].images[torch.arange(3)], splits["test"])
    assert [p.name for p in fresh_cache.iterdir()] == [entry.name]  # no leftover build folders


def test_a_full_disk_is_a_clear_error_before_decoding(celeba_root, fresh_cache, monkeypatch):
    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_module.os, "posix_fallocate", no_space)
    with pytest.raises(FairrunError, match=r"No space for the decoded-image cache: .*images.npy needs .*FAIRRUN_CACHE"):
        read_splits(celeba_cfg(celeba_root), workers=1)
    assert not any(fresh_cache.iterdir())  # nothing half-built is left


def test_a_decoding_process_that_dies_is_an_error_not_a_hang(tmp_path, monkeypatch):
    from tests.helpers import cache_faults_helper

    monkeypatch.setattr(cache_module, "decode_task", cache_faults_helper.die)
    npy = tmp_path / "images.npy"
    npy.write_bytes(b"")
    tasks = [(str(npy), str(tmp_path), ["a.jpg"], 0, Preprocessing(size=8)),
             (str(npy), str(tmp_path), ["b.jpg"], 1, Preprocessing(size=8))]
    with pytest.raises(FairrunError, match="A decoding process died while writing"):
        cache_module.decode_all(tasks, workers=2, desc="test", total=2, npy=npy)


def test_a_fifo_in_the_file_list_is_recorded_unreadable_without_opening_it(tmp_path):
    from fairrun.data.decode import decode_rows

    os.mkfifo(tmp_path / "pipe.jpg")
    npy = tmp_path / "images.npy"
    np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint8, shape=(1, 3, 8, 8))
    failures = decode_rows(str(npy), str(tmp_path), ["pipe.jpg"], 0, Preprocessing(size=8))
    assert failures == [(0, "OSError: pipe.jpg is not a regular file")]


def test_orphaned_build_folders_of_dead_processes_are_removed(celeba_root, fresh_cache):
    fresh_cache.mkdir(parents=True)
    dead = fresh_cache / f".celeba-16px-x.building-{socket.gethostname()}-999999999"
    other_host = fresh_cache / ".celeba-16px-x.building-some-other-host-1"
    live = fresh_cache / f".celeba-16px-x.building-{socket.gethostname()}-{os.getpid()}"
    for folder in (dead, other_host, live):
        folder.mkdir()
    read_splits(celeba_cfg(celeba_root), workers=1)
    assert not dead.exists() and other_host.exists() and live.exists()


def test_the_index_is_a_csv_and_no_pickle_is_read(celeba_root, fresh_cache, monkeypatch):
    _, entry = built(celeba_root, fresh_cache)
    assert not (entry / "index.pkl").exists()
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["version"] == 2 and len(meta["images_sha256"]) == 64 and len(meta["index_sha256"]) == 64
    import pandas as pd

    monkeypatch.setattr(pd, "read_pickle", lambda *a, **k: pytest.fail("the cache unpickled a file"))
    read_splits(celeba_cfg(celeba_root), workers=1)
