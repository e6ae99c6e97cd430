"""Request bodies to model input, and predictions to response bodies.

Accepted on ``POST /invocations`` — the shapes MLflow's scoring server takes,
so existing clients work unchanged:

* ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}`` (``index`` ignored)
* ``{"dataframe_records": [{"col": value, ...}, ...]}``
* ``{"instances": [...]}`` and ``{"inputs": ...}``: a list of records, a list of
  rows in the signature's column order, or a dict of columns
* ``text/csv`` with a header row

Everything is checked against the model's signature before the model sees it,
and every problem is reported at once, naming columns and rows: a missing or
unexpected column, a value of the wrong type, a missing value (``null``/``NaN``)
in a column that is not nullable, a row of the wrong length, an empty batch.

When every input column is numeric the rows go straight into one float64
array in signature order (no DataFrame on the hot path): the model is then
called on an array it does not need to check again.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from loopml.errors import InvalidInputError, SignatureMismatchError

if TYPE_CHECKING:
    import pandas as pd

    from loopml.registry.signature import Signature

__all__ = ["FORMATS", "Input", "InputSpec", "encode", "parse_invocation", "parse_v2", "read_rows", "to_input"]

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_NUMERIC = {"float", "integer", "boolean"}
_MAX_LISTED = 5
_MISSING = object()


@dataclass(frozen=True)
class InputSpec:
    """What a model takes, prepared once per model version for fast checks."""

    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    nullable: tuple[bool, ...]
    numeric: bool  # every column numeric: requests become one float64 array
    index: Mapping[str, int]
    integer_cols: tuple[int, ...]
    strict_cols: tuple[int, ...]  # not nullable

    @classmethod
    def from_signature(cls, signature: Signature | None) -> InputSpec | None:
        if signature is None or not signature.inputs:
            return None
        cols = tuple(c.name for c in signature.inputs)
        kinds = tuple(c.dtype for c in signature.inputs)
        nullable = tuple(c.nullable for c in signature.inputs)
        return cls(
            columns=cols, kinds=kinds, nullable=nullable, numeric=all(k in _NUMERIC for k in kinds),
            index={c: i for i, c in enumerate(cols)},
            integer_cols=tuple(i for i, k in enumerate(kinds) if k == "integer"),
            strict_cols=tuple(i for i, n in enumerate(nullable) if not n),
        )


@dataclass
class Input:
    """A checked request: an (n, k) float64 array or a DataFrame, in signature column order."""

    n: int
    array: np.ndarray | None = None
    frame: pd.DataFrame | None = None
    columns: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        if self.frame is None:
            self.frame = pd.DataFrame(self.array, columns=list(self.columns))
        return self.frame


def _listed(items: Sequence[Any]) -> str:
    shown = ", ".join(repr(i) for i in list(items)[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def _mismatch(problems: list[str], model: str) -> SignatureMismatchError:
    return SignatureMismatchError(f"input does not match the signature of {model}: " + "; ".join(problems),
                                  problems=problems)


# -- body -> columns and rows ---------------------------------------------------------


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        hint = " (NaN and Infinity are not JSON; send null for a missing value)" if b"NaN" in body or b"Infinity" in body else ""
        raise InvalidInputError(f"the request body is not valid JSON: {e}{hint}") from None


def _records(records: Any, where: str) -> tuple[list[str] | None, list[Any]]:
    if not isinstance(records, list):
        raise InvalidInputError(f"{where} must be a list of records (objects), got {type(records).__name__}")
    return None, records


def _split_body(obj: Any) -> tuple[list[str], list[Any]]:
    if not isinstance(obj, Mapping):
        raise InvalidInputError(f"dataframe_split must be an object with 'columns' and 'data', got {type(obj).__name__}")
    cols, data = obj.get("columns"), obj.get("data")
    if not isinstance(data, list):
        raise InvalidInputError("dataframe_split needs 'data': a list of rows")
    if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
        raise InvalidInputError("dataframe_split needs 'columns': a list of column names")
    return cols, data


def _columnar(obj: Mapping[str, Any], where: str) -> tuple[list[str], list[Any]]:
    cols = list(obj)
    values = [v if isinstance(v, list) else [v] for v in obj.values()]
    lengths = {len(v) for v in values}
    if len(lengths) > 1:
        sizes = ", ".join(f"{c!r}: {len(v)}" for c, v in zip(cols, values, strict=True))
        raise InvalidInputError(f"{where}: the columns have different lengths ({sizes})")
    return cols, [list(r) for r in zip(*values, strict=True)]


def _body_rows(payload: Any) -> tuple[list[str] | None, list[Any]]:
    """Column names (None: the rows are records, or rows in signature order) and rows."""
    if not isinstance(payload, Mapping):
        raise InvalidInputError(f"the request body must be a JSON object with one of the keys {list(FORMATS)}")
    keys = [k for k in FORMATS if k in payload]
    if len(keys) != 1:
        found = f"found {keys}" if keys else f"found {sorted(payload)[:_MAX_LISTED]}"
        raise InvalidInputError(f"the request body must have exactly one of the keys {list(FORMATS)}; {found}")
    key = keys[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split_body(value)
    if key == "dataframe_records":
        return _records(value, key)
    if isinstance(value, Mapping):
        return _columnar(value, key)
    if not isinstance(value, list):
        raise InvalidInputError(f"{key} must be a list of records or rows, or an object of columns")
    return None, value


def _csv_rows(body: bytes) -> tuple[list[str], list[Any]]:
    import pandas as pd

    try:
        df = pd.read_csv(io.BytesIO(body))
    except (ValueError, UnicodeDecodeError) as e:  # pandas' parser errors are ValueErrors
        raise InvalidInputError(f"the CSV body cannot be read: {e}") from None
    df = df.astype(object).where(df.notna(), None)
    return [str(c) for c in df.columns], df.to_numpy().tolist()


# -- rows -> checked input --------------------------------------------------------------


def _align(spec: InputSpec, cols: list[str] | None, rows: list[Any]) -> list[list[Any]]:
    """Rows as lists in signature order; raises naming missing and unexpected columns."""
    problems: list[str] = []
    k = len(spec.columns)
    if cols is None:
        if rows and all(isinstance(r, Mapping) for r in rows):
            keys: set[str] = set()
            for r in rows:
                keys.update(r)
            missing = [c for c in spec.columns if c not in keys]
            extra = sorted(keys - set(spec.columns))
            if missing:
                problems.append(f"missing column(s) {_listed(missing)}")
            if extra:
                problems.append(f"unexpected column(s) {_listed(extra)}")
            if problems:
                return _raise_align(problems)
            return [[r.get(c) for c in spec.columns] for r in rows]
        bad = next((i for i, r in enumerate(rows) if not isinstance(r, list)), None)
        if bad is not None:
            raise InvalidInputError(f"row {bad} is a {type(rows[bad]).__name__}; send records (objects) or rows "
                                    f"(lists of {k} values in the order {_listed(spec.columns)})")
        return rows
    missing = [c for c in spec.columns if c not in set(cols)]
    extra = [c for c in cols if c not in spec.index]
    dup = sorted({c for c in cols if cols.count(c) > 1}) if len(set(cols)) != len(cols) else []
    if missing:
        problems.append(f"missing column(s) {_listed(missing)}")
    if extra:
        problems.append(f"unexpected column(s) {_listed(extra)}")
    if dup:
        problems.append(f"repeated column(s) {_listed(dup)}")
    if problems:
        return _raise_align(problems)
    if tuple(cols) == spec.columns:
        return rows
    order = [cols.index(c) for c in spec.columns]
    return [[r[i] for i in order] if isinstance(r, list) and len(r) == len(cols) else r for r in rows]


def _raise_align(problems: list[str]) -> list[list[Any]]:
    raise SignatureMismatchError("; ".join(problems), problems=problems)


def _bad_rows(rows: list[Any], k: int) -> list[str]:
    out = []
    for i, r in enumerate(rows):
        if not isinstance(r, list):
            out.append(f"row {i} is a {type(r).__name__}, not a list of {k} values")
        elif len(r) != k:
            out.append(f"row {i} has {len(r)} values, expected {k}")
        if len(out) >= _MAX_LISTED:
            break
    return out


def _type_problems(spec: InputSpec, rows: list[list[Any]]) -> list[str]:
    """Every (column, first row) whose values are not numbers, for an error message."""
    found: dict[int, tuple[int, Any]] = {}
    for i, r in enumerate(rows):
        for j, v in enumerate(r):
            if j not in found and not (v is None or isinstance(v, int | float)):
                try:
                    float(v)
                except (TypeError, ValueError):
                    found[j] = (i, v)
    return [f"column {spec.columns[j]!r} expects {spec.kinds[j]} but row {i} has {v!r} ({type(v).__name__})"
            for j, (i, v) in sorted(found.items())]


def _numeric(spec: InputSpec, rows: list[list[Any]], model: str) -> Input:
    k = len(spec.columns)
    try:
        arr = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError):
        raise _mismatch(_bad_rows(rows, k) or _type_problems(spec, rows) or ["values are not numbers"],
                        model) from None
    if arr.ndim != 2 or arr.shape[1] != k:
        raise _mismatch(_bad_rows(rows, k) or [f"expected rows of {k} values, got shape {list(arr.shape)}"], model)
    problems: list[str] = []
    if spec.strict_cols:
        sub = arr[:, spec.strict_cols]
        nan = np.isnan(sub)
        if nan.any():
            for pos in np.flatnonzero(nan.any(axis=0))[:_MAX_LISTED]:
                rows_with = np.flatnonzero(nan[:, pos])
                problems.append(f"column {spec.columns[spec.strict_cols[pos]]!r} is missing (null/NaN) in "
                                f"{len(rows_with)} row(s), first row {int(rows_with[0])}, but is not nullable")
    if not np.isfinite(arr).all():
        inf = np.isinf(arr)
        if inf.any():
            col = int(np.flatnonzero(inf.any(axis=0))[0])
            problems.append(f"column {spec.columns[col]!r} has an infinite value")
    if spec.integer_cols:
        sub = arr[:, spec.integer_cols]
        frac = np.isfinite(sub) & (sub != np.floor(sub))
        if frac.any():
            pos = int(np.flatnonzero(frac.any(axis=0))[0])
            problems.append(f"column {spec.columns[spec.integer_cols[pos]]!r} expects integer but row "
                            f"{int(np.flatnonzero(frac[:, pos])[0])} has a fraction")
    if problems:
        raise _mismatch(problems, model)
    return Input(n=len(rows), array=arr, columns=spec.columns)


def _frame(spec: InputSpec | None, signature: Signature | None, cols: list[str] | None, rows: list[Any],
           model: str) -> Input:
    import pandas as pd

    if spec is not None:
        if any(not isinstance(r, list) or len(r) != len(spec.columns) for r in rows):
            raise _mismatch(_bad_rows(rows, len(spec.columns)), model)
        df = pd.DataFrame(rows, columns=list(spec.columns))
        df = df.infer_objects()
    elif cols is not None:
        df = pd.DataFrame(rows, columns=cols)
    else:
        df = pd.DataFrame(rows)
    if signature is not None:
        problems = signature.problems(df)
        if problems:
            raise _mismatch(problems, model)
    return Input(n=len(df), frame=df, columns=tuple(map(str, df.columns)))


def to_input(spec: InputSpec | None, signature: Signature | None, cols: list[str] | None, rows: list[Any], *,
             model: str, max_rows: int) -> Input:
    """Check column names, row shapes and value types; returns the model input."""
    if not rows:
        raise InvalidInputError("the request has no rows to predict (an empty batch)")
    if len(rows) > max_rows:
        raise InvalidInputError(f"the request has {len(rows)} rows; the limit is {max_rows} per request "
                                "(use `loopml batch` for files)")
    if spec is None:
        return _frame(None, None, cols, rows, model)
    try:
        aligned = _align(spec, cols, rows)
    except SignatureMismatchError as e:
        expected = ", ".join(f"{c}:{k}" for c, k in zip(spec.columns, spec.kinds, strict=True))
        raise _mismatch([*e.details.get("problems", [str(e)]), f"expected columns: {expected}"], model) from None
    if spec.numeric:
        return _numeric(spec, aligned, model)
    return _frame(spec, signature, None, aligned, model)


def parse_invocation(body: bytes, content_type: str | None, spec: InputSpec | None, signature: Signature | None,
                     *, model: str, max_rows: int = 100_000) -> Input:
    """A ``POST /invocations`` body to checked model input.

    Raises:
        InvalidInputError: malformed JSON/CSV, an unknown body shape, an empty batch, too many rows.
        SignatureMismatchError: the rows do not fit the signature (every problem listed).
    """
    cols, rows = read_rows(body, content_type)
    return to_input(spec, signature, cols, rows, model=model, max_rows=max_rows)


def read_rows(body: bytes, content_type: str | None) -> tuple[list[str] | None, list[Any]]:
    """Column names (None: the rows are records, or rows in signature order) and rows of a
    ``POST /invocations`` body, not yet checked against a model.

    Raises:
        InvalidInputError: malformed JSON/CSV, an unknown body shape or content type.
    """
    ctype = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if ctype in ("text/csv", "application/csv"):
        return _csv_rows(body)
    if ctype in ("application/json", "") or ctype.endswith("+json"):
        return _body_rows(_loads(body))
    raise InvalidInputError(f"content type {ctype!r} is not supported; send application/json or text/csv")


_V2_NUMERIC = {"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8", "BOOL"}


def parse_v2(body: bytes, spec: InputSpec | None, signature: Signature | None, *, model: str,
             max_rows: int = 100_000) -> tuple[Input, str | None]:
    """An Open Inference Protocol (V2) ``infer`` body to model input, and the request's ``id``.

    Inputs are either one tensor per column (``{"name": "age", "shape": [n], "data": [...]}``)
    or one 2-D tensor of shape ``[n, k]`` holding the columns in signature order.
    """
    payload = _loads(body)
    if not isinstance(payload, Mapping) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
        raise InvalidInputError("a V2 infer request needs 'inputs': a non-empty list of tensors")
    request_id = payload.get("id")
    tensors = payload["inputs"]
    for i, t in enumerate(tensors):
        if not isinstance(t, Mapping) or not isinstance(t.get("name"), str) or "data" not in t:
            raise InvalidInputError(f"inputs[{i}] must be an object with 'name', 'shape', 'datatype' and 'data'")
        dt = t.get("datatype")
        if dt is not None and not isinstance(dt, str):
            raise InvalidInputError(f"inputs[{i}].datatype must be a string such as 'FP64'")
        shape = t.get("shape")
        if shape is not None and (not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape)):
            raise InvalidInputError(f"inputs[{i}].shape must be a list of non-negative integers")
    if len(tensors) == 1 and (spec is None or tensors[0]["name"] not in spec.index):
        t = tensors[0]
        data = t["data"]
        shape = t.get("shape") or []
        if isinstance(data, list) and data and not isinstance(data[0], list) and len(shape) == 2:
            n, k = shape
            if n * k != len(data):
                raise InvalidInputError(f"inputs[0]: shape {shape} needs {n * k} values, got {len(data)}")
            data = [data[i * k:(i + 1) * k] for i in range(n)]
        if not isinstance(data, list):
            raise InvalidInputError("inputs[0].data must be a list")
        return to_input(spec, signature, None, data, model=model, max_rows=max_rows), request_id
    columns: dict[str, Any] = {}
    for t in tensors:
        data = t["data"]
        if isinstance(data, list) and data and isinstance(data[0], list):
            data = [v for row in data for v in (row if isinstance(row, list) else [row])]
        columns[t["name"]] = data
    cols, rows = _columnar(columns, "inputs")
    return to_input(spec, signature, cols, rows, model=model, max_rows=max_rows), request_id if isinstance(
        request_id, str) else None


# -- predictions -> body ----------------------------------------------------------------


def _plain(values: Any) -> Any:
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "fiub" and values.dtype.kind != "O":
            return values
        return values.tolist()
    if hasattr(values, "to_numpy"):
        return _plain(values.to_numpy())
    return values


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def encode(payload: Mapping[str, Any]) -> bytes:
    """JSON bytes of a response; numpy arrays are written directly, NaN as null."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return orjson.dumps({k: _clean(_plain(v).tolist() if isinstance(_plain(v), np.ndarray) else _plain(v))
                             for k, v in payload.items()}, default=str)


def prediction_list(values: Any) -> Any:
    """Predictions as something :func:`encode` writes fast: a numeric array as is, else a list."""
    return _plain(values)
