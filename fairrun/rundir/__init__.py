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
"""
from __future__ import annotations

import errno
import io
import json
import logging
import math
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from fairrun.core.errors import FairrunError
from fairrun.core.fingerprint import fingerprint

log = logging.getLogger("fairrun")

RESULTS = "results.pkl"
RESULTS_SAFE = "results.json"
PREDICTIONS = "predictions.pkl"
RUN_CONFIG = "run_config.yaml"
TRAIN_COUNTS = "train_counts.csv"
DONE = "done"
LAST = Path("checkpoints") / "last.pt"
BEST = Path("checkpoints") / "best.pt"
CHECKSUM_SUFFIX = ".sha256"
# Text files that fairrun reads back, and so checksums (other text files are for people only).
CHECKSUMMED_TEXT = {RUN_CONFIG}
# Pickled tables that get a safe twin (the file fairrun itself reads back instead of the pickle).
SAFE_TWINS = {RESULTS: RESULTS_SAFE}
SAFE_FORMAT = "fairrun-frame"
_UMASK = os.umask(0)
os.umask(_UMASK)
_warned: set[str] = set()


class IntegrityError(FairrunError):
    """A run-directory file fairrun reads is missing, damaged, or fails its checksum."""


class WriteError(FairrunError):
    """A run-directory file could not be written (disk full, file-size limit, read-only location)."""


def remove_orphaned_temporaries(run_dir: Path) -> int:
    """Delete the ``.<name>.*.tmp`` files that atomic writes leave when a process is killed mid-write
    (anywhere below the run directory: ``checkpoints/``, ``.hydra/``, a staged method's folders); call only
    while holding the run directory's lock, so no live writer owns them. Returns how many were removed."""
    removed = 0
    for tmp in Path(run_dir).rglob(".*.tmp") if Path(run_dir).is_dir() else []:
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("%s: removed %d temporary file(s) left by an interrupted write", run_dir, removed)
    return removed


# -- checksums -------------------------------------------------------------------------------------
def checksum_path(path: Path) -> Path:
    """The sidecar holding ``path``'s SHA-256: ``<file>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def sha256(data: bytes) -> str:
    return fingerprint(data, length=None)


def _run_dir_of(path: Path) -> Path:
    path = Path(path)
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def cure_for(path: Path) -> str:
    """What the user can do about a damaged or missing ``path`` (one or two sentences)."""
    path = Path(path)
    run_dir = _run_dir_of(path)
    again = (f"launch the same fairrun train command again with resume=false (for a single run add "
             f"hydra.run.dir={run_dir}), which deletes the run's checkpoints and results and trains it "
             f"from scratch")
    if path.parent.name == "checkpoints" and path.name == LAST.name:
        return f"To start this run over, {again}."
    if path.parent.name == "checkpoints" and path.name == BEST.name:
        return f"To rewrite best.pt, {again}."
    if path.name in (RESULTS, RESULTS_SAFE):
        return f"To write the results again, {again}; or move {run_dir} out of the way."
    if path.name == RUN_CONFIG:
        return (f"If {run_dir} is a fairrun train run directory, {again} (that rewrites {RUN_CONFIG}); "
                f"fairrun eval needs run_dir= to point at a directory written by fairrun train.")
    return "Delete it and run the command that wrote it again."


def _parse_record(text: str) -> list[str] | None:
    """The SHA-256 digests a sidecar accepts (``sha256sum`` lines: one, or two while a write is in flight),
    or None when it is damaged."""
    lines = [line for line in text.splitlines() if line.strip()]
    digests = [re.fullmatch(r"\s*([0-9a-f]{64})(?:\s+\*?\S.*)?\s*", line) for line in lines]
    if not lines or len(lines) > 2 or not all(digests):
        return None
    return [match.group(1) for match in digests]


def _record(digests: list[str], name: str) -> bytes:
    return "".join(f"{digest}  {name}\n" for digest in digests).encode()


def _recorded(side: Path) -> list[str] | None:
    try:
        return _parse_record(side.read_text(errors="replace"))
    except OSError:
        return None


def _warn_unverified(path: Path) -> None:
    key = str(Path(path).resolve())
    if key not in _warned:
        _warned.add(key)
        log.warning("%s has no recorded checksum (%s is missing: written by an older fairrun), so it is read "
                    "without an integrity check", path, checksum_path(path).name)


def read_verified(path: Path, require_record: bool = False) -> tuple[bytes, bool]:
    """``path``'s bytes and whether they matched the checksum fairrun recorded when writing them.

    Raises :class:`IntegrityError` when the file is missing or unreadable, when its sidecar is
    damaged, or when the bytes do not match it. Without a sidecar the bytes are returned unverified,
    with a logged warning (unless ``require_record``: then the caller decides what to say).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(f"{path} is missing. {cure_for(path)}") from None
    except OSError as err:
        raise IntegrityError(f"cannot read {path}: {err.strerror or err}. Check the file's permissions; "
                             f"{cure_for(path)}") from err
    side = checksum_path(path)
    try:
        record = side.read_text(errors="replace")
    except FileNotFoundError:
        if not require_record:
            _warn_unverified(path)
        return data, False
    except OSError as err:
        raise IntegrityError(f"cannot read {side}, the checksum record of {path.name}: "
                             f"{err.strerror or err}. Check the file's permissions; "
                             f"{cure_for(path)}") from err
    expected = _parse_record(record)
    if expected is None:
        raise IntegrityError(f"{side}, the checksum record fairrun wrote for {path.name}, is damaged (not a "
                             f"SHA-256 line), so {path} cannot be verified. {cure_for(path)}")
    actual = sha256(data)
    if actual not in expected:
        size = "0 bytes: empty" if not data else f"{len(data)} bytes"
        raise IntegrityError(f"{path} is damaged ({size}): its SHA-256 ({actual[:16]}…) differs from the "
                             f"one fairrun recorded when it wrote the file ({side.name}: {expected[0][:16]}…), "
                             f"so it was truncated, corrupted or changed afterwards. {cure_for(path)}")
    return data, True


# -- writing ---------------------------------------------------------------------------------------
def _write_error(err: OSError, path: Path) -> WriteError:
    """A one-paragraph WriteError for an OSError met while writing ``path``."""
    path = Path(path)
    code = err.errno
    kept = (" The previous version of the file is kept intact." if path.exists() else "")
    again = "then run the same command again (a training run resumes from its last checkpoint)"
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        what = "no space left on the device" if code == errno.ENOSPC else "the disk quota is exhausted"
        return WriteError(f"{what} writing {path} ({os.strerror(code)}).{kept} Free some space there "
                          f"(df -h {path.parent}) or write elsewhere, {again}.")
    if code == errno.EFBIG:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        limit = "unlimited" if soft == resource.RLIM_INFINITY else f"{soft} bytes"
        return WriteError(f"the file-size limit was reached writing {path} ({os.strerror(code)}; the limit, "
                          f"ulimit -f, is {limit}).{kept} Raise the limit (ulimit -f unlimited), {again}.")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "a read-only file system" if code == errno.EROFS else "not writable by this user"
        return WriteError(f"cannot write {path}: {os.strerror(code)} ({path.parent} is {why}).{kept} "
                          f"Write somewhere writable: fairrun train takes hydra.run.dir=DIR "
                          f"(hydra.sweep.dir=DIR with -m), fairrun eval takes out_dir=DIR and fairrun report "
                          f"takes --out DIR.")
    name = errno.errorcode.get(code, "") if code else ""
    return WriteError(f"cannot write {path}: {err.strerror or err}{f' ({name})' if name else ''}.{kept} "
                      f"Fix the cause, {again}.")


def _atomic(path: Path, data: bytes | Callable[[str], Any], checksum: bool = False) -> None:
    """Write ``data`` through a temporary file in the same directory, then rename it over ``path``.

    ``data``: the bytes, or a function that writes the temporary file whose path it is given (for
    writers such as ``Image.save``; never checksummed). With ``checksum``, the sidecar ``<file>.sha256`` is
    first rewritten to accept both the file in place and the new one (two lines), then the file is renamed,
    then the sidecar is rewritten with the new digest alone (each step atomic): a process killed at any
    moment leaves a file that its record accepts, never a record that condemns a good file (tested by
    killing ``fairrun train`` at every rename, ``tests/test_kill_faults.py``). A file in place without a
    record (an older fairrun's) keeps none until the new one is in place. An OSError becomes a
    :class:`WriteError`; the previous version of ``path`` is untouched until the rename.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _write_error(err, path) from err
    try:
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give results the usual permissions
        if callable(data):
            data(tmp)
            checksum = False
        else:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # surfaces late write errors (quota, network file systems) here
        if checksum:
            new, before = sha256(data), _recorded(checksum_path(path))
            if before:  # accept the file in place and the new one while the rename is in flight
                _atomic(checksum_path(path), _record([new, *[d for d in before if d != new][:1]], path.name))
            else:  # none, or damaged: a damaged record must not condemn the new file
                checksum_path(path).unlink(missing_ok=True)
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise _write_error(err, path) from err
        raise
    if checksum:
        _atomic(checksum_path(path), _record([new], path.name), checksum=False)


def write_pickle(frame: pd.DataFrame, path: Path) -> None:
    """Atomically pickle a DataFrame (for users), with its checksum; results.pkl also gets its safe twin.

    The twin (results.json, see :func:`frame_to_json`) is written first, so that a crash leaves a
    twin at least as new as the pickle.
    """
    path = Path(path)
    twin = SAFE_TWINS.get(path.name)
    if twin is not None:
        write_safe_frame(frame, path.with_name(twin))
    buffer = io.BytesIO()
    frame.to_pickle(buffer)
    _atomic(path, buffer.getvalue(), checksum=True)


def write_safe_frame(frame: pd.DataFrame, path: Path) -> bool:
    """Write ``frame`` as checksummed JSON at ``path``; False (and no file) when it cannot be exact."""
    data = frame_to_json(frame)
    if data is None:
        log.warning("%s not written: the table holds values JSON cannot keep exactly; fairrun reads the "
                    "checksummed pickle instead", path)
        Path(path).unlink(missing_ok=True)
        checksum_path(path).unlink(missing_ok=True)
        return False
    _atomic(path, data, checksum=True)
    return True


def write_text(text: str, path: Path, checksum: bool | None = None) -> None:
    """Atomically write a UTF-8 text file; checksummed when ``checksum`` (default: the files fairrun
    reads back, :data:`CHECKSUMMED_TEXT`)."""
    path = Path(path)
    _atomic(path, text.encode("utf-8"), path.name in CHECKSUMMED_TEXT if checksum is None else checksum)


def save_checkpoint(state: dict, path: Path) -> None:
    """Atomically save a checkpoint of tensors, numbers, strings, lists and dicts, with its checksum.

    It is serialised in memory first, so a full disk is an OSError (ENOSPC) naming the file rather
    than torch's errno-less ``inline_container.cc`` message.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    _atomic(path, buffer.getvalue(), checksum=True)


# -- reading ---------------------------------------------------------------------------------------
def _reason(err: BaseException) -> str:
    """A short, safe description of why a file could not be parsed."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if "weights_only" in text.lower() or "weights only" in text.lower() or len(text) > 160:
        text = ""  # torch's advice here (weights_only=False) would run arbitrary code: never pass it on
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint safely (``weights_only=True``: no arbitrary unpickling) after verifying its checksum.

    A missing, truncated, empty or garbled file is an :class:`IntegrityError` naming the file and the cure.
    """
    path = Path(path)
    data, _ = read_verified(path)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, garbled pickle, empty file: the file is the problem
        size = "empty" if not data else f"{len(data)} bytes"
        raise IntegrityError(f"{path} is not a readable fairrun checkpoint ({size}; {_reason(err)}): it is "
                             f"truncated, damaged, or was not written by fairrun. {cure_for(path)}") from err


def read_text(path: Path) -> str:
    """A checksummed text file (run_config.yaml), verified; IntegrityError when missing or damaged."""
    path = Path(path)
    data, _ = read_verified(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise IntegrityError(f"{path} is damaged: it is not UTF-8 text ({err.reason} at byte {err.start}). "
                             f"{cure_for(path)}") from err


def read_results(path: Path) -> pd.DataFrame:
    """A run's results table, read from a format that cannot carry code. ``path``: its results.pkl.

    Reads the checksummed safe twin (results.json) when there is one. Without it (a run of an older
    fairrun, or a table JSON cannot hold exactly) the pickle is unpickled only when its checksum
    matches the record fairrun wrote beside it. That record protects against damaged files and
    against a pickle swapped in without it (e.g. copied from elsewhere); it does not protect against
    someone who can write to the run directory and rewrites the record too. A pickle without a
    record is refused: ``python -m fairrun.rundir trust RUN_DIR`` converts a results.pkl you trust.
    """
    path = Path(path)
    twin = path.with_name(SAFE_TWINS.get(path.name, RESULTS_SAFE))
    if twin.exists() or checksum_path(twin).exists():
        data, _ = read_verified(twin)
        return frame_from_json(data, twin)
    data, verified = read_verified(path, require_record=True)
    if not verified:
        cure = cure_for(path)
        raise IntegrityError(
            f"{path} has no safe twin ({twin.name}) and no checksum recorded by fairrun "
            f"({checksum_path(path).name}), so fairrun will not unpickle it: unpickling runs whatever code a "
            f"pickle holds. If you trust this file (you wrote it with an older fairrun), convert it once "
            f"with python -m fairrun.rundir trust {path.parent}; otherwise, {cure[0].lower()}{cure[1:]}")
    try:
        frame = pd.read_pickle(io.BytesIO(data))  # checksum-verified: the bytes fairrun itself wrote
    except Exception as err:
        raise IntegrityError(f"{path} cannot be read ({_reason(err)}). {cure_for(path)}") from err
    if not isinstance(frame, pd.DataFrame):
        raise IntegrityError(f"{path} holds a {type(frame).__name__}, not the pandas DataFrame fairrun train "
                             f"writes. {cure_for(path)}")
    return frame


def trust_results(run_dir: Path) -> Path:
    """Unpickle ``run_dir``'s results.pkl (the user vouches for it) and write its checksummed safe twin."""
    path = Path(run_dir) / RESULTS
    frame = pd.read_pickle(path)
    if not isinstance(frame, pd.DataFrame):
        raise IntegrityError(f"{path} holds a {type(frame).__name__}, not a pandas DataFrame.")
    twin = path.with_name(RESULTS_SAFE)
    if not write_safe_frame(frame, twin):
        _atomic(checksum_path(path), f"{sha256(path.read_bytes())}  {path.name}\n".encode(), checksum=False)
        return checksum_path(path)
    return twin


def is_done(run_dir: Path) -> bool:
    """True when the run finished (its results.pkl is complete)."""
    return (Path(run_dir) / DONE).is_file() and (Path(run_dir) / RESULTS).is_file()


# -- the safe table format -------------------------------------------------------------------------
class _Unencodable(Exception):
    pass


def _float_out(x: float):
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def _float_in(v) -> float:
    if isinstance(v, str):
        if v not in ("NaN", "Infinity", "-Infinity"):
            raise ValueError(f"not a number: {v!r}")
        return float(v.replace("Infinity", "inf").replace("NaN", "nan"))
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"not a number: {v!r}")
    return float(v)


def _cell_out(v):
    """One cell of an object column, tagged with its exact Python type (str and None stay bare)."""
    if v is None or isinstance(v, str) and type(v) is str:
        return v
    if type(v) is bool:
        return {"bool": v}
    if type(v) is int:
        return {"int": v}
    if type(v) is float:
        return {"float": _float_out(v)}
    if isinstance(v, np.generic) and v.dtype.kind in "biuf":
        value = _float_out(v) if v.dtype.kind == "f" else v.item()
        return {"numpy": v.dtype.str, "value": value}
    if v is pd.NA:
        return {"NA": True}
    raise _Unencodable(type(v).__name__)


def _cell_in(v):
    if v is None or isinstance(v, str):
        return v
    if not isinstance(v, dict) or len(v) not in (1, 2):
        raise ValueError(f"bad cell {v!r}")
    if "bool" in v and isinstance(v["bool"], bool):
        return v["bool"]
    if "int" in v and type(v["int"]) is int:
        return v["int"]
    if "float" in v:
        return _float_in(v["float"])
    if "numpy" in v:
        dtype = np.dtype(v["numpy"])
        if dtype.kind not in "biuf":
            raise ValueError(f"bad numpy type {v['numpy']!r}")
        value = _float_in(v["value"]) if dtype.kind == "f" else v["value"]
        if dtype.kind == "b" and not isinstance(value, bool) or dtype.kind in "iu" and type(value) is not int:
            raise ValueError(f"bad numpy value {v!r}")
        return dtype.type(value)
    if v == {"NA": True}:
        return pd.NA
    raise ValueError(f"bad cell {v!r}")


def _series_out(values) -> dict:
    """A Series or Index: its dtype record and its values, exactly."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return {"dtype": "category", "ordered": bool(dtype.ordered),
                "categories": _series_out(pd.Index(dtype.categories)),
                "codes": [int(c) for c in np.asarray(values.cat.codes if isinstance(values, pd.Series)
                                                     else values.codes)]}
    if isinstance(dtype, pd.StringDtype):
        na = "NaN" if dtype.na_value is not pd.NA else "NA"
        return {"dtype": "string", "storage": dtype.storage, "na_value": na,
                "values": [None if pd.isna(v) else str(v) for v in values]}
    if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
        items = np.asarray(values).tolist()
        return {"dtype": dtype.str, "values": [_float_out(v) for v in items] if dtype.kind == "f" else items}
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        return {"dtype": "object", "values": [_cell_out(v) for v in values]}
    raise _Unencodable(str(dtype))


def _series_in(record: dict, n: int | None = None) -> tuple[list | np.ndarray | pd.Categorical, object]:
    """Values and dtype from :func:`_series_out`'s record."""
    kind = record["dtype"]
    if kind == "category":
        category_values, category_dtype = _series_in(record["categories"])
        categories = pd.Index(category_values, dtype=category_dtype)
        codes = record["codes"]
        if not all(type(c) is int and -1 <= c < len(categories) for c in codes):
            raise ValueError("bad category codes")
        dtype = pd.CategoricalDtype(categories, ordered=bool(record["ordered"]))
        return pd.Categorical.from_codes(codes, dtype=dtype), dtype
    values = record["values"]
    if not isinstance(values, list):
        raise ValueError("values is not a list")
    if kind == "string":
        if not all(v is None or isinstance(v, str) for v in values):
            raise ValueError("bad string values")
        na_value = np.nan if record["na_value"] == "NaN" else pd.NA
        dtype = pd.StringDtype(storage=record["storage"], na_value=na_value)
        return values, dtype
    if kind == "object":
        return np.array([_cell_in(v) for v in values] or [], dtype=object), np.dtype(object)
    dtype = np.dtype(kind)
    if dtype.kind == "f":
        return np.array([_float_in(v) for v in values], dtype=dtype), dtype
    if dtype.kind == "b" and all(isinstance(v, bool) for v in values) or \
            dtype.kind in "iu" and all(type(v) is int for v in values):
        return np.array(values, dtype=dtype), dtype
    raise ValueError(f"bad values for dtype {kind!r}")


def _json_frame(frame: pd.DataFrame) -> dict:
    if frame.attrs or frame.columns.name is not None or not all(type(c) is str for c in frame.columns):
        raise _Unencodable("attrs or non-string column names")
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.name is None:
        index_record = {"range": [index.start, index.stop, index.step]}
    elif not isinstance(index, pd.MultiIndex) and (index.name is None or type(index.name) is str):
        index_record = {"name": index.name, **_series_out(index)}
    else:
        raise _Unencodable("index")
    return {"format": SAFE_FORMAT, "version": 1, "index": index_record,
            "column_names": _series_out(frame.columns),
            "columns": [_series_out(frame.iloc[:, i]) for i in range(frame.shape[1])]}


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    try:
        pd.testing.assert_frame_equal(a, b, check_exact=True, check_dtype=True, check_index_type=True,
                                      check_column_type=True, check_categorical=True, check_freq=True)
    except AssertionError:
        return False
    return all(a[c].map(type).tolist() == b[c].map(type).tolist()
               for c in a.columns[[dtype == object for dtype in a.dtypes]]) if a.columns.is_unique else False


def frame_to_json(frame: pd.DataFrame) -> bytes | None:
    """``frame`` as strict JSON (column values with a dtype record each: NaN/±inf, ints, bools, None,
    strings and float bits round-trip exactly); None when that cannot hold it exactly (checked by
    decoding it again)."""
    try:
        data = json.dumps(_json_frame(frame), allow_nan=False, ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")
        again = frame_from_json(data, Path(RESULTS_SAFE))
    except (_Unencodable, ValueError, TypeError, OverflowError, IntegrityError):
        return None
    return data if _same(frame, again) else None


def _no_constant(name: str):
    raise ValueError(f"bare {name} (fairrun writes non-finite floats as strings)")


def frame_from_json(data: bytes, path: Path) -> pd.DataFrame:
    """The DataFrame :func:`frame_to_json` wrote; IntegrityError naming ``path`` when it is not one."""
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
        if not isinstance(doc, dict) or doc.get("format") != SAFE_FORMAT or doc.get("version") != 1:
            raise ValueError(f"not a {SAFE_FORMAT} version 1 document")
        index_record = doc["index"]
        if "range" in index_record:
            start, stop, step = index_record["range"]
            index = pd.RangeIndex(start, stop, step)
        else:
            values, dtype = _series_in(index_record)
            index = pd.Index(values, dtype=dtype, name=index_record.get("name"))
        names, names_dtype = _series_in(doc["column_names"])
        columns = []
        for record in doc["columns"]:
            values, dtype = _series_in(record)
            if len(values) != len(index):
                raise ValueError("a column's length differs from the index's")
            columns.append(pd.Series(values, dtype=dtype, index=index))
        if len(columns) != len(names) or any(len(c) != len(index) for c in columns):
            raise ValueError("columns of different lengths")
        frame = pd.DataFrame(dict(enumerate(columns)), index=index)
        frame.columns = pd.Index(names, dtype=names_dtype)
        return frame
    except Exception as err:
        raise IntegrityError(f"{path} is damaged: it is not the table fairrun writes ({_reason(err)}). "
                             f"{cure_for(path)}") from err


def _main(argv: list[str] | None = None) -> int:
    """``python -m fairrun.rundir trust RUN_DIR ...``: vouch for old runs' results.pkl (see read_results)."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] != "trust":
        print("usage: python -m fairrun.rundir trust RUN_DIR [RUN_DIR ...]\n"
              "  unpickles each run's results.pkl (only do this for files you trust: a pickle can run code)\n"
              "  and writes results.json, the checksummed table fairrun reads back", file=sys.stderr)
        return 2
    for run_dir in argv[1:]:
        try:
            print(f"wrote {trust_results(Path(run_dir))}")
        except (FairrunError, OSError, pickle.UnpicklingError, EOFError) as err:
            print(f"fairrun.rundir trust: error: {run_dir}: {err}", file=sys.stderr)
            return 2
    return 0

