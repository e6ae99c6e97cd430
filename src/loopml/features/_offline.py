"""The offline store: point-in-time correct joins in DuckDB.

For each entity row and each view, the value is the one from the view's
latest source row with the same join keys and an event time at or before
the entity row's time — never later (no leakage) — and null when that row
is older than the view's TTL. One query joins every requested view with a
chained ``ASOF LEFT JOIN``; the result comes back as Arrow, in the entity
rows' original order, with every entity row kept (duplicates included).

Ties: several source rows of one entity with the same event time resolve
to the last one in source order. The ASOF join runs on one ordering key,
``event time (µs) * 2^64 + source position``, so that rule costs no extra
pass over the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from loopml.errors import InvalidInputError
from loopml.features._source import SEQ_COL, Source, quote, wrap_duckdb

if TYPE_CHECKING:
    import duckdb

__all__ = ["ViewJoin", "is_temporal", "point_in_time_join", "ts_us_expr"]

_SHIFT = "CAST('18446744073709551616' AS HUGEINT)"  # 2^64: event time above source position
_LAST = "CAST('18446744073709551615' AS HUGEINT)"  # the highest source position: entity rows sort after ties
ROW_COL = "__loopml_row"
_ENT_TS = "__loopml_ts"
_ENT_KEY = "__loopml_k"

_TIME_TYPES = ("TIMESTAMP", "DATE")


def is_temporal(duck_type: str) -> bool:
    """True for DuckDB date and timestamp types (any precision, with or without time zone)."""
    return duck_type.upper().startswith(_TIME_TYPES)


def ts_us_expr(column: str, duck_type: str, table: str = "") -> str:
    """SQL for microseconds since the epoch (UTC; naive times are taken as UTC) of a date/time column."""
    col = f"{table}.{quote(column)}" if table else quote(column)
    t = duck_type.upper()
    if t == "DATE" or t.startswith("VARCHAR"):
        return f"epoch_us(CAST({col} AS TIMESTAMP))"
    return f"epoch_us({col})"


@dataclass(frozen=True)
class ViewJoin:
    """One view's part of a point-in-time join.

    Attributes:
        source: the resolved source.
        join_keys: key columns (same names in the entity rows and the source).
        timestamp: the source's event-time column and its DuckDB type.
        features: (source column, output column, DuckDB type to cast to).
        ttl_us: TTL in microseconds, or None.
    """

    source: Source
    join_keys: tuple[str, ...]
    timestamp: tuple[str, str]
    features: tuple[tuple[str, str, str], ...]
    ttl_us: int | None


def _view_subquery(v: ViewJoin) -> str:
    ts_col, ts_type = v.timestamp
    ts = ts_us_expr(ts_col, ts_type)
    cols = [quote(k) for k in v.join_keys]
    cols.append(f"{ts} AS {_ENT_TS}")
    cols.append(f"CAST({ts} AS HUGEINT) * {_SHIFT} + {SEQ_COL} AS {_ENT_KEY}")
    cols += [f"CAST({quote(src)} AS {duck}) AS {quote(out)}" for src, out, duck in v.features]
    return f"(SELECT {', '.join(cols)} FROM {v.source.relation} WHERE {ts} IS NOT NULL)"


def point_in_time_join(
    con: duckdb.DuckDBPyConnection,
    entities: pa.Table,
    timestamp: str,
    views: list[ViewJoin],
) -> pa.Table:
    """The entity rows with each view's features as of each row's time.

    Args:
        con: a DuckDB connection (used by this call only).
        entities: the entity rows; must hold ``timestamp`` and every view's join keys.
        timestamp: the entity rows' time column (date/timestamp, or ISO text).
        views: what to join.

    Returns:
        ``entities``' columns, in order, then the feature columns; one row per entity row, in order.

    Raises:
        InvalidInputError: a column is missing, has the wrong type, or DuckDB rejects the join.
    """
    import duckdb

    field = entities.schema.field(timestamp)
    if pa.types.is_timestamp(field.type):
        ent_type = "TIMESTAMP"
    elif pa.types.is_date(field.type):
        ent_type = "DATE"
    elif pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
        ent_type = "VARCHAR"
    else:
        raise InvalidInputError(
            f"entity column {timestamp!r} holds {field.type}, not timestamps; pass datetimes (or ISO strings), "
            "or name the time column with timestamp=",
            column=timestamp,
        )
    table = entities.append_column(ROW_COL, pa.array(range(entities.num_rows), pa.int64()))
    con.register("__loopml_entities", table)
    try:
        ent_ts = ts_us_expr(timestamp, ent_type)
        base = (f"SELECT *, {ent_ts} AS {_ENT_TS}, CAST({ent_ts} AS HUGEINT) * {_SHIFT} + {_LAST} AS {_ENT_KEY} "
                "FROM __loopml_entities")
        select = [f"e.* EXCLUDE ({ROW_COL}, {_ENT_TS}, {_ENT_KEY})"]
        joins = []
        for i, v in enumerate(views):
            alias = f"f{i}"
            on = [f"e.{quote(k)} = {alias}.{quote(k)}" for k in v.join_keys]
            on.append(f"e.{_ENT_KEY} >= {alias}.{_ENT_KEY}")
            joins.append(f"ASOF LEFT JOIN {_view_subquery(v)} AS {alias} ON {' AND '.join(on)}")
            for _src, out, _duck in v.features:
                col = f"{alias}.{quote(out)}"
                if v.ttl_us is not None:
                    col = f"CASE WHEN {alias}.{_ENT_TS} >= e.{_ENT_TS} - {v.ttl_us} THEN {col} END"
                select.append(f"{col} AS {quote(out)}")
        query = f"SELECT {', '.join(select)} FROM ({base}) AS e {' '.join(joins)} ORDER BY e.{ROW_COL}"
        try:
            return con.sql(query).to_arrow_table()
        except duckdb.Error as e:
            raise wrap_duckdb(e, "the point-in-time join") from None
    finally:
        con.unregister("__loopml_entities")
