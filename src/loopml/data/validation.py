"""Checking batches and single records against a :class:`~loopml.data.schema.Schema`.

:func:`validate` checks a whole batch (Arrow table or record batch, or a pandas
DataFrame) with vectorised Arrow/numpy kernels over whole columns, columns in
parallel for large batches; the common valid case costs one min/max pass per
numeric column and one hash-lookup pass per column with categories. Per-row
masks are computed only for a column that breaks a rule, to count the rows and
pick examples.

:func:`validate_record` and :func:`validate_records` are the request-time fast
path: plain Python over the values, no Arrow conversion (unless the schema has
custom checks, which take an Arrow table).

Anomalies (:class:`~loopml.data.models.Anomaly`), in report order:

==================  ========  =====================================================  ==================
kind                severity  when                                                   rows / examples
==================  ========  =====================================================  ==================
row_count           warning   rows outside ``schema.row_count`` (batch path only)    0 / none
missing_column      error     a schema column is absent                              all rows / none
type_mismatch       error     values of an incompatible type (see below)             wrong values / values
null_rate           error     a missing value (null or NaN) in a non-nullable column missing / row indices
null_rate           warning   missing share above ``max_null_rate`` (batch only)     missing / row indices
out_of_range        error     a numeric value outside ``[min, max]``                 outside / values
unseen_category     error     a value outside ``categories``                         rows / distinct values
unexpected_column   warning   a column not in the schema, unless                     0 / none
                              ``schema.allow_extra_columns`` (a warning, not an
                              error: a model selects its columns by name)
custom_check        (check)   a custom check fails (or raises, or returns junk)      failing / values of
                                                                                     the check's column,
                                                                                     else row indices
==================  ========  =====================================================  ==================

Per-column severities can be overridden in the schema (``ColumnSchema.severity``).
Row indices are 0-based positions in the batch (a DataFrame's index is ignored).

Type compatibility: the batch type must belong to a family the schema type
accepts. Float columns accept any float or integer type; integer columns accept
any integer type, and floats whose values are all integral (pandas turns an int
column with a missing value into float64) — a non-integral or infinite value is a
``type_mismatch``; bool, string (plain, large, view or dictionary-encoded),
timestamp (naive and tz-aware are different), and date each accept only their
own family; other types must match exactly. An all-null column (Arrow ``null``
type) fits any schema type (its nulls are then checked). Strings arriving in a
numeric column ("shuffled types") are a ``type_mismatch`` for the whole column,
and its value checks are skipped. NaN counts as a missing value everywhere.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loopml.data.models import Anomaly, Severity
from loopml.data.schema import Check, ColumnSchema, Schema, type_family
from loopml.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["has_errors", "validate", "validate_record", "validate_records"]

logger = logging.getLogger(__name__)

_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)

# schema family -> batch families it accepts ("int" also takes integral floats, checked apart)
_ACCEPTS: dict[str, frozenset[str]] = {
    "float": frozenset({"float", "int"}),
    "int": frozenset({"int"}),
    "bool": frozenset({"bool"}),
    "string": frozenset({"string"}),
    "timestamp": frozenset({"timestamp"}),
    "timestamp_tz": frozenset({"timestamp_tz"}),
    "date": frozenset({"date"}),
    "null": frozenset({"float", "int", "bool", "string", "timestamp", "timestamp_tz", "date", "other"}),
    "other": frozenset(),  # exact type match only
}

#: cells (rows x checked columns) from which columns are checked in parallel threads
_PARALLEL_CELLS = 1_000_000


def _arrow_family(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _arrow_family(t.value_type)
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_timestamp(t):
        return "timestamp_tz" if t.tz is not None else "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_null(t):
        return "null"
    return "other"


# -- compiled schema ---------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """One column's checks, precomputed from its ColumnSchema."""

    col: ColumnSchema
    name: str
    family: str
    accepts: frozenset[str]
    lo: float | None
    hi: float | None
    cats: frozenset[Any] | None
    sev_missing: Severity
    sev_type: Severity
    sev_null: Severity
    sev_rate: Severity
    sev_range: Severity
    sev_cat: Severity


def _compile(col: ColumnSchema) -> _Rule:
    fam = type_family(col.type)
    return _Rule(
        col=col,
        name=col.name,
        family=fam,
        accepts=_ACCEPTS[fam],
        lo=col.min,
        hi=col.max,
        cats=frozenset(col.categories) if col.categories is not None else None,
        sev_missing=col.severity_of("missing_column", "error"),
        sev_type=col.severity_of("type_mismatch", "error"),
        sev_null=col.severity_of("null_rate", "error"),
        sev_rate=col.severity_of("null_rate", "warning"),
        sev_range=col.severity_of("out_of_range", "error"),
        sev_cat=col.severity_of("unseen_category", "error"),
    )


_CACHE_ATTR = "_loopml_rules"


def _rules(schema: Schema) -> list[_Rule]:
    """The schema's compiled rules, cached on the schema while its ColumnSchema objects stay the same.

    ColumnSchema is frozen, so identity of the column objects is a safe cache key (the
    cache holds them, so their ids cannot be reused while cached).
    """
    cols = schema.columns
    cached = getattr(schema, _CACHE_ATTR, None)
    if cached is not None:
        key, rules = cached
        if len(key) == len(cols) and all(a is b for a, b in zip(key, cols.values(), strict=True)):
            return rules  # type: ignore[no-any-return]
    for name, col in cols.items():
        if name != col.name:
            raise InvalidInputError(f"schema column key {name!r} differs from the column's name {col.name!r}; make them equal")
    rules = [_compile(c) for c in cols.values()]
    object.__setattr__(schema, _CACHE_ATTR, (tuple(cols.values()), rules))
    return rules


# -- anomalies (one constructor per kind, shared by the batch and record paths) -----


def _fmt(examples: list[Any]) -> str:
    return ", ".join(repr(e) for e in examples)


def _missing(rule: _Rule, n: int) -> Anomaly:
    return Anomaly(
        rule.name, "missing_column", rule.sev_missing, n,
        f"column {rule.name!r} is missing from the batch; the schema expects it (type {rule.col.type}); "
        "add it, or remove it from the schema",
    )


def _unexpected(name: str) -> Anomaly:
    return Anomaly(
        name, "unexpected_column", "warning", 0,
        f"column {name!r} is not in the schema; drop it, add it to the schema, or set allow_extra_columns: true",
    )


def _type_mismatch(rule: _Rule, got: str, rows: int, n: int, examples: list[Any]) -> Anomaly:
    return Anomaly(
        rule.name, "type_mismatch", rule.sev_type, rows,
        f"column {rule.name!r} should be {rule.col.type} ({rule.col.kind}) but {got}: {rows} of {n} values have "
        f"the wrong type (e.g. {_fmt(examples)}); convert the column, or change its type in the schema",
        examples,
    )


def _nulls(rule: _Rule, rows: int, n: int, examples: list[Any], *, baseline: bool) -> Anomaly | None:
    if not rule.col.nullable:
        return Anomaly(
            rule.name, "null_rate", rule.sev_null, rows,
            f"column {rule.name!r} is not nullable but has {rows} missing values (null or NaN) in {n} rows "
            f"(row indices e.g. {_fmt(examples)}); fill or drop them, or set nullable: true in the schema",
            examples,
        )
    limit = rule.col.max_null_rate
    if baseline and limit is not None and n and rows / n > limit:
        return Anomaly(
            rule.name, "null_rate", rule.sev_rate, rows,
            f"column {rule.name!r} has {rows / n:.1%} missing values ({rows} of {n} rows), above its "
            f"max_null_rate {limit:.1%} (row indices e.g. {_fmt(examples)}); check the source, or raise max_null_rate",
            examples,
        )
    return None


def _out_of_range(rule: _Rule, rows: int, n: int, examples: list[Any]) -> Anomaly:
    lo = "-inf" if rule.lo is None else rule.lo
    hi = "inf" if rule.hi is None else rule.hi
    return Anomaly(
        rule.name, "out_of_range", rule.sev_range, rows,
        f"column {rule.name!r}: {rows} of {n} values are outside [{lo}, {hi}] (e.g. {_fmt(examples)}); "
        "fix the data, or widen min/max in the schema",
        examples,
    )


def _unseen(rule: _Rule, rows: int, n: int, examples: list[Any]) -> Anomaly:
    return Anomaly(
        rule.name, "unseen_category", rule.sev_cat, rows,
        f"column {rule.name!r}: {rows} of {n} values are not among the schema's categories "
        f"(unseen: {_fmt(examples)}); fix the data, or add them to categories",
        examples,
    )


def _row_count(schema: Schema, n: int) -> Anomaly | None:
    lo, hi = schema.row_count
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        return Anomaly(
            None, "row_count", "warning", 0,
            f"the batch has {n} rows, outside the expected {lo if lo is not None else 0}.."
            f"{hi if hi is not None else 'inf'}; check for lost or duplicated data, or widen row_count in the schema",
        )
    return None


def has_errors(anomalies: Iterable[Anomaly]) -> bool:
    """True if any anomaly has severity ``error``."""
    return any(a.severity == "error" for a in anomalies)


# -- batch path --------------------------------------------------------------------


def validate(batch: pa.Table | pa.RecordBatch | pd.DataFrame, schema: Schema, *, max_examples: int = 5) -> list[Anomaly]:
    """Check a batch against ``schema``; every problem found, never raised.

    See the module docstring for the anomaly kinds, their severities and the type
    compatibility rules. A DataFrame column that Arrow cannot convert (values of
    mixed types) is checked value by value and reported as ``type_mismatch``.

    Args:
        batch: the data.
        schema: what it must look like.
        max_examples: at most this many example values (or row indices) per anomaly.

    Returns:
        The anomalies, in order: row count, then per schema column (in schema order),
        then unexpected columns (in batch order), then custom checks. Empty when the
        batch is valid; use :func:`has_errors` to decide whether to reject it.

    Raises:
        InvalidInputError: ``batch`` is not a table, record batch or DataFrame, or
            ``max_examples`` is negative.
    """
    _check_max_examples(max_examples)
    table, raw = _as_table(batch)
    n = table.num_rows
    rules = _rules(schema)
    out: list[Anomaly] = []
    rc = _row_count(schema, n)
    if rc is not None:
        out.append(rc)

    index: dict[str, int] = {}
    for i, name in enumerate(table.column_names):
        index.setdefault(name, i)
    per_rule: list[list[Anomaly]] = [[] for _ in rules]
    tasks: list[tuple[int, _Rule, pa.ChunkedArray]] = []
    for i, rule in enumerate(rules):
        if rule.name in index:
            tasks.append((i, rule, table.column(index[rule.name])))
        elif rule.name in raw:
            _check_values(rule, raw[rule.name], max_examples, per_rule[i], baseline=True)
        else:
            per_rule[i].append(_missing(rule, n))

    workers = _workers()
    if workers > 1 and len(tasks) > 1 and n * len(tasks) >= _PARALLEL_CELLS:
        # longest first (hash lookups for categories cost ~10x a numeric min/max), so threads finish together
        tasks.sort(key=lambda t: t[1].cats is None)
        results = _pool().map(lambda t: _safe_check_column(t[1], t[2], max_examples), tasks)
        for (i, _, _), found in zip(tasks, results, strict=True):
            per_rule[i].extend(found)
    else:
        for i, rule, col in tasks:
            per_rule[i].extend(_safe_check_column(rule, col, max_examples))
    for found in per_rule:
        out.extend(found)

    if not schema.allow_extra_columns:
        known = {r.name for r in rules}
        seen: set[str] = set()
        for name in [*table.column_names, *raw]:
            if name not in known and name not in seen:
                seen.add(name)
                out.append(_unexpected(name))
    if schema.checks:
        check_table = _frame_to_table(batch, zero_copy=False)[0] if _is_frame(batch) else table
        out.extend(_run_checks(check_table, schema.checks, max_examples))
    return out


def _check_max_examples(max_examples: int) -> None:
    if not isinstance(max_examples, int) or max_examples < 0:
        raise InvalidInputError(f"max_examples must be a non-negative integer, got {max_examples!r}")


def _as_table(batch: Any) -> tuple[pa.Table, dict[str, list[Any]]]:
    """The batch as an Arrow table, plus DataFrame columns Arrow could not convert (as Python values)."""
    if isinstance(batch, pa.Table):
        return batch, {}
    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([batch]), {}
    if _is_frame(batch):
        return _frame_to_table(batch, zero_copy=True)
    raise InvalidInputError(
        f"validate() takes a pyarrow Table or RecordBatch or a pandas DataFrame, got {type(batch).__name__}; "
        "use validate_record(s) for dicts"
    )


def _is_frame(batch: Any) -> bool:
    pd_mod = sys.modules.get("pandas")  # a DataFrame implies pandas is imported; do not import it otherwise
    return pd_mod is not None and isinstance(batch, pd_mod.DataFrame)


def _frame_to_table(df: pd.DataFrame, *, zero_copy: bool) -> tuple[pa.Table, dict[str, list[Any]]]:
    """Convert column by column; a column Arrow rejects (mixed value types) is returned as Python values.

    ``zero_copy`` wraps numpy float columns without the scan that turns NaN into null
    (``from_pandas`` semantics), which is most of the conversion cost; the column
    checks count NaN as missing anyway. Custom checks get a ``zero_copy=False`` table,
    with pandas' NaN-as-null semantics.
    """
    arrays: list[pa.Array] = []
    names: list[str] = []
    raw: dict[str, list[Any]] = {}
    for i, name in enumerate(df.columns):
        series = df.iloc[:, i]
        dtype = series.dtype
        try:
            if zero_copy and isinstance(dtype, np.dtype) and dtype.kind == "f":
                arrays.append(pa.array(series.to_numpy(), from_pandas=False))
            else:
                arrays.append(pa.Array.from_pandas(series))
            names.append(str(name))
        except (*_ARROW_ERRORS, ValueError, TypeError, OverflowError):
            raw.setdefault(str(name), series.tolist())
    return pa.Table.from_arrays(arrays, names=names), raw


_pool_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _workers() -> int:
    return min(8, os.cpu_count() or 1)


def _pool() -> ThreadPoolExecutor:
    # One shared pool: Arrow and numpy kernels release the GIL, so columns run in parallel.
    global _executor
    with _pool_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=_workers(), thread_name_prefix="loopml-validate")
        return _executor


def _first(col: pa.ChunkedArray | pa.Array, k: int) -> list[Any]:
    """The first ``k`` non-null values, reading only as many chunks as needed."""
    found: list[Any] = []
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    for chunk in chunks:
        if len(found) >= k:
            break
        found.extend(chunk.drop_null().slice(0, k - len(found)).to_pylist())
    return found


def _count(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.sum(mask).as_py() or 0)


def _safe_check_column(rule: _Rule, col: pa.ChunkedArray, k: int) -> list[Anomaly]:
    try:
        return _check_column(rule, col, k)
    except (*_ARROW_ERRORS, OverflowError) as e:  # a type no kernel handles: report it, do not crash
        logger.debug("checking column %r failed", rule.name, exc_info=True)
        n = len(col)
        return [_type_mismatch(rule, f"arrived as {col.type}, which cannot be checked ({e})",
                               n - col.null_count, n, _first(col, k))]


def _check_column(rule: _Rule, col: pa.ChunkedArray, k: int) -> list[Anomaly]:
    out: list[Anomaly] = []
    n = len(col)
    t = col.type
    fam = _arrow_family(t)
    if fam == "null":
        if n:
            _append(out, _nulls(rule, n, n, list(range(min(k, n))), baseline=True))
        return out
    if fam not in rule.accepts and not (rule.family == "int" and fam == "float") and str(t) != rule.col.type:
        out.append(_type_mismatch(rule, f"arrived as {t}", n - col.null_count, n, _first(col, k)))
        return out
    numeric = fam in ("float", "int")
    if numeric and pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
    if rule.family == "int" and fam == "float":
        # integral floats are fine (pandas makes int columns with missing values float64)
        bad = pc.and_not(pc.invert(pc.and_(pc.is_finite(col), pc.equal(pc.trunc(col), col))), pc.is_nan(col))
        rows = _count(bad)
        if rows:
            examples = pc.filter(col, bad).slice(0, k).to_pylist()
            out.append(_type_mismatch(rule, f"arrived as {t} with non-integral values", rows, n, examples))
            return out

    nan_count = 0
    lo_seen: Any = None
    hi_seen: Any = None
    if numeric:
        need_range = rule.lo is not None or rule.hi is not None
        nan_count, lo_seen, hi_seen = _numeric_stats(col, fam == "float", need_range)

    nulls = col.null_count + nan_count
    if nulls:
        mask = pc.is_null(col, nan_is_null=True) if fam == "float" else pc.is_null(col)
        a = _nulls(rule, nulls, n, pc.indices_nonzero(mask).slice(0, k).to_pylist(), baseline=True)
        _append(out, a)

    if numeric and lo_seen is not None and (
        (rule.lo is not None and lo_seen < rule.lo) or (rule.hi is not None and hi_seen > rule.hi)
    ):
        conds = []
        if rule.lo is not None:
            conds.append(pc.less(col, rule.lo))
        if rule.hi is not None:
            conds.append(pc.greater(col, rule.hi))
        bad = conds[0] if len(conds) == 1 else pc.or_(conds[0], conds[1])
        out.append(_out_of_range(rule, _count(bad), n, pc.filter(col, bad).slice(0, k).to_pylist()))

    if rule.cats is not None and n > nulls:
        _check_categories(rule, col, nulls, k, out)
    return out


def _append(out: list[Anomaly], a: Anomaly | None) -> None:
    if a is not None:
        out.append(a)


def _numeric_stats(col: pa.ChunkedArray, floating: bool, need_range: bool) -> tuple[int, Any, Any]:
    """(NaN count, min, max) of a numeric column, ignoring nulls and NaN; min/max None if none.

    numpy over zero-copy views: min/max are several times faster than ``pc.min_max``,
    and ``np.min`` propagates NaN, which detects NaN for free in the common clean case.
    """
    nan_count = 0
    lo: Any = None
    hi: Any = None
    for chunk in col.chunks:
        if len(chunk) == 0 or chunk.null_count == len(chunk):
            continue
        if floating:
            if chunk.null_count == 0:
                v = chunk.to_numpy(zero_copy_only=True)
                c_lo = v.min()
                c_hi = v.max() if need_range else c_lo
                if not math.isnan(c_lo) and not math.isnan(c_hi):
                    lo, hi = _merge(lo, hi, c_lo, c_hi)
                    continue
            else:
                v = chunk.to_numpy(zero_copy_only=False)  # nulls become NaN
            isnan = np.isnan(v)
            n_nan = int(isnan.sum())
            nan_count += n_nan - chunk.null_count
            if n_nan < len(v):
                rest = v[~isnan]
                lo, hi = _merge(lo, hi, rest.min(), rest.max())
        elif need_range:
            if chunk.null_count == 0:
                v = chunk.to_numpy(zero_copy_only=True)
                lo, hi = _merge(lo, hi, v.min(), v.max())
            else:
                mm = pc.min_max(chunk)
                lo, hi = _merge(lo, hi, mm["min"].as_py(), mm["max"].as_py())
    if lo is not None:
        lo, hi = _py(lo), _py(hi)
    return nan_count, lo, hi


def _merge(lo: Any, hi: Any, c_lo: Any, c_hi: Any) -> tuple[Any, Any]:
    if lo is None:
        return c_lo, c_hi
    return min(lo, c_lo), max(hi, c_hi)


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _check_categories(rule: _Rule, col: pa.ChunkedArray, nulls: int, k: int, out: list[Anomaly]) -> None:
    assert rule.cats is not None
    n = len(col)
    if pa.types.is_dictionary(col.type):
        # cheap common case: every chunk's dictionary lies inside the domain
        value_set = _value_set(rule.cats, col.type.value_type)
        if all(_count(pc.invert(pc.is_in(c.dictionary, value_set=value_set))) == 0 for c in col.chunks):
            return
        col = col.cast(col.type.value_type)
    if pa.types.is_string_view(col.type):
        col = col.cast(pa.large_string())  # is_in has no string_view kernel
    value_set = _value_set(rule.cats, col.type)
    floating = pa.types.is_floating(col.type)
    # the distinct values first (a bit cheaper than a per-row lookup); rows only if some are unseen
    distinct = pc.unique(col)
    distinct = distinct.filter(pc.invert(pc.is_null(distinct, nan_is_null=floating)))
    unseen = distinct.filter(pc.invert(pc.is_in(distinct, value_set=value_set)))
    if len(unseen) == 0:
        return
    bad = pc.is_in(col, value_set=unseen)  # unique() keeps first-appearance order: examples in row order
    out.append(_unseen(rule, _count(bad), n, unseen.slice(0, k).to_pylist()))


def _value_set(cats: frozenset[Any], t: pa.DataType) -> pa.Array:
    values = sorted(cats, key=repr)
    try:
        return pa.array(values).cast(t)
    except (*_ARROW_ERRORS, OverflowError):
        # a category the column type cannot hold (1000 for int8) can never match: leave it out
        kept = []
        for v in values:
            try:
                pa.array([v]).cast(t)
                kept.append(v)
            except (*_ARROW_ERRORS, OverflowError):
                pass
        return pa.array(kept).cast(t) if kept else pa.array([], type=t)


# -- custom checks -----------------------------------------------------------------


def _run_checks(table: pa.Table, checks: Sequence[Check], k: int) -> list[Anomaly]:
    out: list[Anomaly] = []
    n = table.num_rows
    for check in checks:
        try:
            result = check.fn(table)
        except Exception as e:  # a broken check is a finding, not a crash
            logger.debug("custom check %r raised", check.name, exc_info=True)
            out.append(Anomaly(
                check.column, "custom_check", check.severity, 0,
                f"custom check {check.name!r} raised {type(e).__name__}: {e}; fix the check function",
            ))
            continue
        a = _check_result(check, result, table, n, k)
        if a is not None:
            out.append(a)
    return out


def _check_result(check: Check, result: Any, table: pa.Table, n: int, k: int) -> Anomaly | None:
    if isinstance(result, pa.BooleanScalar):
        result = result.as_py()
    if isinstance(result, bool | np.bool_):
        if result:
            return None
        return Anomaly(check.column, "custom_check", check.severity, 0,
                       f"custom check {check.name!r} failed for the batch as a whole")
    mask: pa.Array | pa.ChunkedArray | None = None
    if isinstance(result, pa.Array | pa.ChunkedArray):
        mask = result
    elif hasattr(result, "__array__") or isinstance(result, list | tuple):
        try:
            mask = pa.array(np.asarray(result), from_pandas=True)
        except (*_ARROW_ERRORS, ValueError, TypeError):
            mask = None
    if mask is None or not pa.types.is_boolean(mask.type) or len(mask) != n:
        got = type(result).__name__ if mask is None else f"{mask.type} x {len(mask)}"
        return Anomaly(
            check.column, "custom_check", check.severity, 0,
            f"custom check {check.name!r} returned {got}; it must return a boolean mask of good rows "
            f"with one value per row ({n}) or a single bool",
        )
    bad = pc.invert(mask)  # a null in the mask counts as good
    rows = _count(bad)
    if not rows:
        return None
    idx = pc.indices_nonzero(pc.fill_null(bad, False)).slice(0, k)
    if check.column is not None and check.column in table.column_names:
        examples = pc.take(table.column(check.column), idx).to_pylist()
        what = "values"
    else:
        examples = idx.to_pylist()
        what = "row indices"
    return Anomaly(
        check.column, "custom_check", check.severity, rows,
        f"custom check {check.name!r} failed for {rows} of {n} rows ({what} e.g. {_fmt(examples)})",
        examples,
    )


# -- record path -------------------------------------------------------------------

_MISSING: Any = object()
_NULL_TYPES = frozenset({"NAType", "NaTType"})  # pandas.NA, pandas.NaT, without importing pandas


def validate_record(record: Mapping[str, Any], schema: Schema, *, max_examples: int = 5) -> list[Anomaly]:
    """Check one record (e.g. a serving request) against ``schema``; plain Python, no Arrow.

    Same checks and anomalies as :func:`validate` on a one-row batch, except the
    batch statistics: no ``row_count`` and no ``max_null_rate`` warning (one row says
    nothing about rates; a null in a non-nullable column is still an error). A key
    absent from the record is a ``missing_column``; ``None`` and NaN are missing
    values. Custom checks run on a one-row Arrow table (that costs Arrow overhead).

    Args:
        record: column name -> value (Python or numpy scalars).
        schema: what it must look like.
        max_examples: at most this many examples per anomaly.

    Returns:
        The anomalies, in the order of :func:`validate`.

    Raises:
        InvalidInputError: ``record`` is not a mapping.
    """
    return validate_records((record,), schema, max_examples=max_examples)


def validate_records(records: Sequence[Mapping[str, Any]], schema: Schema, *, max_examples: int = 5) -> list[Anomaly]:
    """Check a small batch of records against ``schema``; plain Python, no Arrow.

    Like :func:`validate_record` for several records (anomalies count rows over all of
    them; row indices are positions in ``records``). A column is missing only if no
    record has the key; a record without it has a missing value there. For large
    batches :func:`validate` on a table is faster.

    Raises:
        InvalidInputError: a record is not a mapping, or ``max_examples`` is negative.
    """
    _check_max_examples(max_examples)
    for r in records:
        if not isinstance(r, Mapping):
            raise InvalidInputError(f"each record must be a mapping of column name to value, got {type(r).__name__}")
    rules = _rules(schema)
    out: list[Anomaly] = []
    n = len(records)
    if n == 0:
        return out
    for rule in rules:
        name = rule.name
        if n == 1:
            v = records[0].get(name, _MISSING)
            if v is _MISSING:
                out.append(_missing(rule, 1))
                continue
            values: Sequence[Any] = (v,)
        else:
            got = [r.get(name, _MISSING) for r in records]
            if all(v is _MISSING for v in got):
                out.append(_missing(rule, n))
                continue
            values = [None if v is _MISSING else v for v in got]
        _check_values(rule, values, max_examples, out, baseline=False)

    if not schema.allow_extra_columns:
        known = schema.columns
        seen: dict[str, None] = {}
        for r in records:
            for key in r:
                if key not in known and key not in seen:
                    seen[key] = None
        out.extend(_unexpected(str(key)) for key in seen)
    if schema.checks:
        out.extend(_run_checks(_records_table(records), schema.checks, max_examples))
    return out


def _records_table(records: Sequence[Mapping[str, Any]]) -> pa.Table:
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r))
    arrays: list[pa.Array] = []
    kept: list[str] = []
    for name in names:
        try:
            arrays.append(pa.array([r.get(name) for r in records], from_pandas=True))
            kept.append(str(name))
        except (*_ARROW_ERRORS, ValueError, TypeError, OverflowError):
            pass  # mixed types: already a type_mismatch; checks that need the column report a KeyError
    return pa.Table.from_arrays(arrays, names=kept)


def _normalize(v: Any) -> Any:
    """numpy scalars -> Python; pandas NA/NaT -> None."""
    if isinstance(v, np.generic):
        v = v.item()
        if isinstance(v, float) and v != v:
            return None
        return v
    if type(v).__name__ in _NULL_TYPES:
        return None
    return v


_PLAIN = frozenset({float, int, str, bool})


def _fits(family: str, v: Any) -> bool:
    cls = v.__class__
    if family == "float":
        return cls is float or cls is int or (isinstance(v, int | float) and cls is not bool)
    if family == "int":
        if cls is int:
            return True
        if isinstance(v, float):
            return v.is_integer()
        return isinstance(v, int) and cls is not bool
    if family == "string":
        return isinstance(v, str)
    if family == "bool":
        return cls is bool
    if family == "timestamp":
        return isinstance(v, datetime) and v.tzinfo is None
    if family == "timestamp_tz":
        return isinstance(v, datetime) and v.tzinfo is not None
    if family == "date":
        return isinstance(v, date) and not isinstance(v, datetime)
    return True  # "null" and "other": no value-level type check


def _check_values(rule: _Rule, values: Sequence[Any], k: int, out: list[Anomaly], *, baseline: bool) -> None:
    """Value-by-value checks of one column (record path, and DataFrame columns Arrow cannot convert)."""
    n = len(values)
    family = rule.family
    lo, hi, cats = rule.lo, rule.hi, rule.cats
    nulls: list[int] = []
    wrong: list[Any] = []
    outside: list[Any] = []
    unseen: list[Any] = []
    for i, v in enumerate(values):
        if v is None:
            nulls.append(i)
            continue
        if v.__class__ not in _PLAIN:
            v = _normalize(v)
            if v is None:
                nulls.append(i)
                continue
        if v.__class__ is float and v != v:
            nulls.append(i)
            continue
        if not _fits(family, v):
            wrong.append(v)
            continue
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            outside.append(v)
        if cats is not None and v not in cats:
            unseen.append(v)
    if wrong:
        types = sorted({type(v).__name__ for v in wrong})
        out.append(_type_mismatch(rule, f"got {', '.join(types)} values", len(wrong), n, wrong[:k]))
    if nulls:
        _append(out, _nulls(rule, len(nulls), n, nulls[:k], baseline=baseline))
    if outside:
        out.append(_out_of_range(rule, len(outside), n, outside[:k]))
    if unseen:
        out.append(_unseen(rule, len(unseen), n, list(dict.fromkeys(unseen))[:k]))
