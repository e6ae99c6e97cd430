"""Entity keys as online-store strings.

Materialization encodes the join-key values read from the source; online
lookups encode the values a caller passes. Both go through :func:`key_encoder`
for the key columns' source types, so ``"42"`` from a command line and ``42``
from the source find the same row.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from loopml.errors import InvalidInputError

__all__ = ["key_encoder", "value_encoder"]

_INTS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
         "UHUGEINT"}
_FLOATS = ("DOUBLE", "FLOAT", "REAL", "DECIMAL")


def _to_int(v: Any) -> int:
    if type(v) is int:
        return v
    if isinstance(v, bool):
        raise ValueError("a boolean is not an integer key")
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        return int(v.strip())
    raise ValueError(f"{v!r} is not an integer")


def _to_float(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError("a boolean is not a number")
    return float(v)


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return v.strip().lower() in ("true", "1", "yes")
    if isinstance(v, numbers.Integral) and int(v) in (0, 1):
        return bool(v)
    raise ValueError(f"{v!r} is not a boolean")


def _coercer(duck_type: str) -> Callable[[Any], Any]:
    t = duck_type.upper()
    if t in _INTS:
        return _to_int
    if t.startswith(_FLOATS):
        return _to_float
    if t == "BOOLEAN":
        return _to_bool
    return str


def _scalar(v: Any) -> str:
    if type(v) is str:
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)


def value_encoder(view: str, key: str, duck_type: str) -> Callable[[Any], str | None]:
    """:func:`key_encoder` for a view with one join key, taking the value itself (the serving hot path)."""
    coerce = _coercer(duck_type)
    is_int = coerce is _to_int

    def encode(v: Any) -> str | None:
        if is_int and type(v) is int:
            return str(v)
        if v is None:
            return None
        try:
            return _scalar(coerce(v))
        except (ValueError, TypeError, OverflowError) as e:
            raise InvalidInputError(
                f"entity key {key}={v!r} of view {view!r} cannot be read as {duck_type}: {e}", view=view, key=key,
            ) from None

    return encode


def key_encoder(view: str, join_keys: Sequence[str], key_types: dict[str, str]) -> Callable[[Sequence[Any]], str | None]:
    """A function from join-key values (in ``join_keys`` order) to the online-store key; None when a value is None.

    Raises (from the returned function):
        InvalidInputError: a value cannot be read as its key column's type.
    """
    coerce = [_coercer(key_types.get(k, "VARCHAR")) for k in join_keys]
    names = list(join_keys)

    def fail(i: int, v: Any, e: Exception) -> InvalidInputError:
        return InvalidInputError(
            f"entity key {names[i]}={v!r} of view {view!r} cannot be read as {key_types.get(names[i], 'VARCHAR')}: {e}",
            view=view, key=names[i],
        )

    if len(names) == 1:
        single = value_encoder(view, names[0], key_types.get(names[0], "VARCHAR"))
        return lambda values: single(values[0])

    def many(values: Sequence[Any]) -> str | None:
        out = []
        for i, (c, v) in enumerate(zip(coerce, values, strict=True)):
            if v is None:
                return None
            try:
                out.append(c(v))
            except (ValueError, TypeError, OverflowError) as e:
                raise fail(i, v, e) from None
        return orjson.dumps(out, default=str).decode()

    return many
