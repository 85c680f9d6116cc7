"""Cached stages: expensive work whose artefact is written once, atomically, and reused while its inputs
match.

The decoded-image cache, the built-in GAN, the VAE and the stages of the generative methods (gan_debias,
minority_gan) all follow this one protocol, through :class:`Stage`:

1. a *key* sums up the stage's inputs (:func:`fairrun.core.fingerprint.fingerprint`). It is recorded with the
   artefact (``record(path)["fingerprint"]``: generator.pt's metadata, vae.pt), or once for a directory of
   stages (:class:`StageDir`'s marker file), or it is part of the artefact's path (the image cache's folder
   name), so a different input never even finds the old artefact;
2. an artefact in place is checked before it is used:

   * the same key and finished: it is reused (``load(path)``), with the stage's log line;
   * the same key but unfinished (a resumable stage asked for more epochs): it is computed again, and the
     compute resumes from its own checkpoint;
   * another key: the stage's ``mismatch`` error (an output directory the user named is never overwritten),
     or, for a stage without one, it is computed again and replaced;
   * damaged (``record`` or ``load`` raise :class:`Damaged`): a warning naming the damage, then it is computed
     again; a damaged artefact is replaced, never read;
3. otherwise ``compute`` makes it. Whatever it writes goes through a temporary file renamed into place
   (``save`` given to :meth:`Stage.run`, :func:`fairrun.rundir.save_checkpoint`, ...) or a temporary folder
   (:func:`build_folder`), so an interrupted stage leaves no half-written artefact: a rerun finds nothing, or
   the previous complete version, and computes it again.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, Optional, Sequence, TypeVar

from fairrun import rundir
from fairrun.core.errors import FairrunError
from fairrun.rundir.lock import process_alive

log = logging.getLogger("fairrun")

T = TypeVar("T")
MARKER = "stage_key.txt"


class Damaged(FairrunError):
    """A stage's artefact is in place but cannot be used as it is (unreadable, or not what it records)."""


def _always(record: Mapping) -> bool:
    return True


def _the_path(path: Path) -> Path:
    return path


@dataclass
class Stage(Generic[T]):
    """One cached stage: the artefact at ``path``, made from inputs whose fingerprint is ``key``.

    ``what`` names the artefact in log lines. ``record(path)`` reads what a finished artefact records about
    itself (a mapping; its key under ``"fingerprint"``), or raises :class:`Damaged`; without it, an artefact
    in place is finished (its key is its path's, or its directory's). ``finished(record)``: whether an
    artefact of this key is complete (a resumable stage trained for fewer epochs is not). ``mismatch(record)``
    returns the error to raise for an artefact of another key; without it such an artefact is replaced.
    ``load(path)`` gives the stage's value from a finished artefact (default: the path; it may verify and
    raise :class:`Damaged` too). ``reusing``: the log line (format and arguments) when an artefact is reused;
    ``redo``: what the warning about a damaged artefact says happens next.
    """

    what: str
    path: Path
    key: Optional[str] = None
    record: Optional[Callable[[Path], Mapping]] = None
    finished: Callable[[Mapping], bool] = _always
    mismatch: Optional[Callable[[Mapping], Exception]] = None
    load: Callable[[Path], T] = _the_path
    reusing: Optional[Sequence[Any]] = None
    redo: str = "making it again (it is replaced, never read)"

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def found(self) -> tuple[bool, Optional[T]]:
        """``(True, value)`` for an artefact in place that can be reused, else ``(False, None)``: none is
        there, it is damaged, unfinished, or of another key (raising ``mismatch`` when the stage has one)."""
        if not self.path.exists():
            return False, None
        try:
            if self.record is not None:
                record = self.record(self.path)
                if self.key is not None and record.get("fingerprint") != self.key:
                    if self.mismatch is not None:
                        raise self.mismatch(record)
                    log.info("%s was made from other inputs; making it again", self.what)
                    return False, None
                if not self.finished(record):
                    return False, None
            value = self.load(self.path)
        except Damaged as damage:
            log.warning("%s; %s", damage, self.redo)
            return False, None
        if self.reusing:
            log.info(*self.reusing)
        else:
            log.debug("reusing %s (%s)", self.what, self.path)
        return True, value

    def run(self, compute: Callable[[], T], save: Optional[Callable[[T, str], None]] = None) -> T:
        """The artefact's value: reused when one can be (:meth:`found`), else ``compute()``'s. With ``save``,
        ``save(value, temporary_path)`` writes it and the file is renamed into place when complete;
        without, ``compute`` writes the artefact itself, atomically."""
        reused, value = self.found()
        if reused:
            return value
        value = compute()
        if save is not None:  # a temporary file renamed into place (an OSError is a WriteError naming path)
            rundir.atomic_write(self.path, lambda tmp: save(value, tmp))
        return value


def readable(read: Callable[[Path], T]) -> Callable[[Path], T]:
    """``read`` (``np.load``, ``pd.read_csv``, ...) as a stage's ``load``: a file it cannot parse (truncated,
    garbled: ValueError, OSError, EOFError) is :class:`Damaged`, so the stage is computed again."""
    def load(path: Path) -> T:
        try:
            return read(path)
        except (ValueError, OSError, EOFError) as err:
            raise Damaged(f"{path} cannot be read ({type(err).__name__}: {err})") from None

    return load


class StageDir:
    """A directory of stages made from the same inputs: their key is recorded once, in ``stage_key.txt``.

    :meth:`open` clears the directory when the key recorded there differs (a run of another configuration
    into the same run directory), then records the key; its files are :meth:`stage`\\ s, each finished once
    it is in place (every one is written atomically).
    """

    def __init__(self, path: Path, key: str, what: str):
        self.path, self.key, self.what = Path(path), key, what

    def open(self) -> "StageDir":
        marker = self.path / MARKER
        if marker.is_file() and marker.read_text().strip() != self.key:
            log.info("%s: the configuration changed; clearing the cached stages in %s", self.what, self.path)
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        rundir.write_text(self.key + "\n", marker)
        return self

    def stage(self, name: str, **keys) -> Stage:
        """The stage whose artefact is the file ``name`` of this directory (``keys``: :class:`Stage`'s)."""
        return Stage(f"{self.what} {name}", self.path / name, **keys)


# -- folders built as a whole --------------------------------------------------------------------

def _building_name(final: Path) -> Path:
    """The temporary folder an artefact is built in; host and PID tell later builds whether it is orphaned."""
    return final.parent / f".{final.name}.building-{socket.gethostname()}-{os.getpid()}"


def remove_orphans(parent: Path) -> None:
    """Delete build folders (and displaced damaged artefacts) left by processes of this host that died."""
    host = socket.gethostname()
    for folder in parent.glob(".*.building-*") if parent.is_dir() else []:
        owner = folder.name.rsplit(".building-", 1)[1]
        owner_host, _, pid = owner.rpartition("-")
        if owner_host == host and pid.isdigit() and not process_alive(int(pid)):
            log.info("removing %s, left by a build that died", folder)
            shutil.rmtree(folder, ignore_errors=True)


def build_folder(final: Path, fill: Callable[[Path], None], verify: Callable[[Path], Any]) -> Path:
    """Make the folder ``final`` as a whole: ``fill(folder)`` writes it into a temporary sibling, which is
    then renamed to ``final``. Concurrent builders (jobs of a sweep sharing a cache) do not collide; the build
    folders of dead processes of this host are removed first; an interrupted build leaves no ``final``.

    If ``final`` is there by the time the build is done, ``verify(final)`` decides: a valid one (another job
    finished first) is kept and this build dropped; a damaged one (:class:`Damaged`) is moved aside and
    replaced."""
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(final.parent)
    building = _building_name(final)
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        fill(building)
        _put_in_place(building, final, verify)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return final


def _put_in_place(building: Path, final: Path, verify: Callable[[Path], Any]) -> None:
    try:
        os.replace(building, final)
        return
    except OSError:
        pass
    try:
        verify(final)
        shutil.rmtree(building, ignore_errors=True)  # another job finished it first: use theirs
        return
    except Damaged:
        pass
    displaced = Path(f"{building}-damaged")
    shutil.rmtree(displaced, ignore_errors=True)
    os.replace(final, displaced)
    os.replace(building, final)
    shutil.rmtree(displaced, ignore_errors=True)
