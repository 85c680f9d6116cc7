"""fairrun.core.stages: the one cached-stage protocol of the image cache, the GAN, the VAE and gan_debias."""
from __future__ import annotations

import json
import logging
import os
import socket

import numpy as np
import pytest

from fairrun.core.errors import ConfigError
from fairrun.core.stages import Damaged, Stage, StageDir, build_folder, readable


class Calls:
    """A compute that counts its calls and returns a new value each time."""

    def __init__(self):
        self.n = 0

    def __call__(self):
        self.n += 1
        return np.full(3, float(self.n))


def save_npy(array, path):
    with open(path, "wb") as handle:
        np.save(handle, array)


def array_stage(path, **keys) -> Stage:
    return Stage("test array", path, load=readable(np.load), **keys)


def strays(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_finished_stage_is_reused_without_computing_again(tmp_path, caplog):
    compute = Calls()
    first = array_stage(tmp_path / "a.npy").run(compute, save=save_npy)
    with caplog.at_level(logging.INFO, logger="fairrun"):
        again = array_stage(tmp_path / "a.npy", reusing=("reusing %s", "a.npy")).run(compute, save=save_npy)
    assert compute.n == 1 and np.array_equal(first, again) and "reusing a.npy" in caplog.text
    assert strays(tmp_path) == []


def keyed(tmp_path, key, epochs=1, mismatch=None):
    """A resumable stage like the GAN's: its file records its key and how far it got."""
    return Stage("test model", tmp_path / "model.json", key,
                 record=readable(lambda path: json.loads(path.read_text())),
                 finished=lambda record: record["epochs"] == epochs, mismatch=mismatch)


def write_model(tmp_path, key, epochs):
    def compute():
        (tmp_path / "model.json").write_text(json.dumps({"fingerprint": key, "epochs": epochs}))
        return tmp_path / "model.json"
    return compute


def test_a_changed_fingerprint_recomputes_or_is_the_stages_error(tmp_path):
    keyed(tmp_path, "k1").run(write_model(tmp_path, "k1", 1))
    assert keyed(tmp_path, "k1").run(lambda: pytest.fail("recomputed")) == tmp_path / "model.json"
    # another key: made again (a stage without a mismatch error) ...
    keyed(tmp_path, "k2").run(write_model(tmp_path, "k2", 1))
    assert json.loads((tmp_path / "model.json").read_text())["fingerprint"] == "k2"
    # ... or refused, naming what differs, and left as it is (a directory the user named)
    refuse = keyed(tmp_path, "k3", mismatch=lambda record: ConfigError(f"made from {record['fingerprint']}"))
    with pytest.raises(ConfigError, match="made from k2"):
        refuse.run(lambda: pytest.fail("computed over another configuration's artefact"))
    assert json.loads((tmp_path / "model.json").read_text())["fingerprint"] == "k2"


def test_an_unfinished_stage_of_the_same_key_is_computed_again(tmp_path):
    keyed(tmp_path, "k", epochs=1).run(write_model(tmp_path, "k", 1))
    keyed(tmp_path, "k", epochs=2).run(write_model(tmp_path, "k", 2))  # more epochs: resumes
    assert json.loads((tmp_path / "model.json").read_text())["epochs"] == 2


@pytest.mark.parametrize("damage", [b"", b"\x93NUMPY garbage", None])
def test_a_damaged_artefact_is_detected_and_computed_again(tmp_path, caplog, damage):
    path = tmp_path / "a.npy"
    array_stage(path).run(Calls(), save=save_npy)
    path.write_bytes(path.read_bytes()[:-5] if damage is None else damage)  # truncated, empty, garbled
    compute = Calls()
    with caplog.at_level(logging.WARNING, logger="fairrun"):
        value = array_stage(path).run(compute, save=save_npy)
    assert compute.n == 1 and "cannot be read" in caplog.text and "making it again" in caplog.text
    assert np.array_equal(np.load(path), value)  # replaced by the new one


def test_damage_a_record_reports_is_named_in_the_warning(tmp_path, caplog):
    (tmp_path / "entry").mkdir()

    def verify(path):
        raise Damaged(f"{path} does not match its checksum")

    stage = Stage("entry", tmp_path / "entry", load=verify,
                  redo="rebuilding the entry (it is replaced, never read)")
    with caplog.at_level(logging.WARNING, logger="fairrun"):
        assert stage.run(lambda: "rebuilt") == "rebuilt"
    assert "does not match its checksum; rebuilding the entry (it is replaced, never read)" in caplog.text


def test_an_interrupted_compute_leaves_no_half_written_artefact(tmp_path):
    path = tmp_path / "a.npy"

    def killed_while_writing(array, tmp):
        with open(tmp, "wb") as handle:
            handle.write(b"\x93NUMPY half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        array_stage(path).run(Calls(), save=killed_while_writing)
    assert not path.exists() and strays(tmp_path) == []
    with pytest.raises(RuntimeError):
        array_stage(path).run(lambda: (_ for _ in ()).throw(RuntimeError("compute failed")), save=save_npy)
    assert not path.exists()
    compute = Calls()
    array_stage(path).run(compute, save=save_npy)  # the rerun computes it
    assert compute.n == 1 and np.array_equal(np.load(path), np.ones(3))


def test_an_earlier_complete_version_stays_until_the_new_one_is_written(tmp_path):
    path = tmp_path / "model.json"
    keyed(tmp_path, "k1").run(write_model(tmp_path, "k1", 1))
    stage = Stage("test", path, "k2", record=lambda p: json.loads(p.read_text()))

    def killed(value, tmp):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stage.run(lambda: {"fingerprint": "k2"}, save=killed)
    assert json.loads(path.read_text())["fingerprint"] == "k1" and strays(tmp_path) == []


def test_a_stage_directory_is_cleared_when_its_key_changes(tmp_path, caplog):
    folder = tmp_path / "gan_debias"
    stages = StageDir(folder, "k1", what="gan_debias").open()
    compute = Calls()
    stages.stage("latents.npy", load=readable(np.load)).run(compute, save=save_npy)
    StageDir(folder, "k1", what="gan_debias").open().stage("latents.npy", load=readable(np.load)).run(
        compute, save=save_npy)
    assert compute.n == 1 and (folder / "stage_key.txt").read_text() == "k1\n"
    with caplog.at_level(logging.INFO, logger="fairrun"):
        StageDir(folder, "k2", what="gan_debias").open()
    assert "gan_debias: the configuration changed; clearing the cached stages in" in caplog.text
    assert sorted(p.name for p in folder.iterdir()) == ["stage_key.txt"]
    assert (folder / "stage_key.txt").read_text() == "k2\n"


# -- folders built as a whole (the image cache) ------------------------------------------------------

def fill_with(text):
    def fill(folder):
        (folder / "data.txt").write_text(text)
    return fill


def verify(folder):
    if not (folder / "data.txt").is_file() or (folder / "data.txt").read_text() == "damaged":
        raise Damaged(f"{folder} is damaged")


def test_an_interrupted_folder_build_leaves_nothing(tmp_path):
    def killed(folder):
        (folder / "data.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_folder(tmp_path / "entry", killed, verify)
    assert list(tmp_path.iterdir()) == []
    build_folder(tmp_path / "entry", fill_with("new"), verify)
    assert (tmp_path / "entry" / "data.txt").read_text() == "new" and strays(tmp_path) == []


def test_a_folder_finished_first_by_another_job_is_kept_and_a_damaged_one_replaced(tmp_path):
    final = tmp_path / "entry"

    def meanwhile(text):
        def fill(folder):  # another job puts its entry in place while this one builds
            final.mkdir()
            (final / "data.txt").write_text(text)
            (folder / "data.txt").write_text("mine")
        return fill

    build_folder(final, meanwhile("theirs"), verify)
    assert (final / "data.txt").read_text() == "theirs" and strays(tmp_path) == []
    for path in list(final.iterdir()):
        path.unlink()
    final.rmdir()
    build_folder(final, meanwhile("damaged"), verify)
    assert (final / "data.txt").read_text() == "mine" and strays(tmp_path) == []


def test_build_folders_of_dead_processes_of_this_host_are_removed(tmp_path):
    host = socket.gethostname()
    dead = tmp_path / f".entry.building-{host}-999999999"
    other_host = tmp_path / ".entry.building-some-other-host-1"
    live = tmp_path / f".other.building-{host}-{os.getpid()}"
    for folder in (dead, other_host, live):
        folder.mkdir()
    build_folder(tmp_path / "entry", fill_with("new"), verify)
    assert not dead.exists() and other_host.exists() and live.exists()
