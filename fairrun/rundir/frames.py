"""The typed JSON encoding of a results table (``results.json``): strict JSON that cannot carry code, with a
dtype record for every column, so that NaN/±inf, ints, bools, None, strings, categories and float bits
round-trip exactly."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from fairrun.rundir.errors import IntegrityError, cure_for, parse_reason
from fairrun.rundir.layout import RESULTS_SAFE

SAFE_FORMAT = "fairrun-frame"


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
        raise IntegrityError(f"{path} is damaged: it is not the table fairrun writes ({parse_reason(err)}). "
                             f"{cure_for(path)}") from err
