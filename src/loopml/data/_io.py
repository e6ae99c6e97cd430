"""Reading tables as a stream of Arrow record batches.

Accepts a pandas DataFrame, a pyarrow Table or RecordBatch, an iterable of
record batches, or a path to a CSV/TSV file, a parquet file or a folder of
parquet files. Files are streamed batch by batch, never loaded whole. Read
problems (missing or empty files, a header-only CSV, bytes that are not
valid text, a column whose values do not share one type) become
:class:`~loopml.errors.InvalidInputError` naming the file and the column.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from loopml.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BATCH_ROWS", "TableStream", "open_stream", "rechunk", "to_table"]

#: rows per record batch when loopml chooses (snapshots, profiles)
BATCH_ROWS = 65_536
_CSV_BLOCK_BYTES = 8 << 20
_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}
_PARQUET_SUFFIXES = {".parquet", ".pq"}


@dataclass
class TableStream:
    """A schema and the batches that follow it (consumable once)."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    source: str | None  # a description of where the data came from (a path), if known


def _frame_to_table(df: pd.DataFrame) -> pa.Table:
    try:
        return pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    # find the offending column for a useful message
    for col in df.columns:
        try:
            pa.array(df[col], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            kinds = sorted({type(v).__name__ for v in df[col].dropna().head(1000)})
            raise InvalidInputError(
                f"column {str(col)!r} mixes value types ({', '.join(kinds)}) and cannot be stored as one type "
                f"({e}); convert it first, e.g. df[{str(col)!r}].astype(str) or pd.to_numeric(..., errors='coerce')",
                column=str(col),
            ) from None
    raise InvalidInputError("the DataFrame cannot be converted to an Arrow table")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InvalidInputError(f"data file {str(path)!r} does not exist", path=str(path))
    if path.is_file() and path.stat().st_size == 0:
        raise InvalidInputError(f"data file {str(path)!r} is empty (0 bytes); nothing to read", path=str(path))


_CSV_COLUMN = re.compile(r"In CSV column #(\d+)")


def _csv_error(path: Path, e: Exception, names: list[str] | None) -> InvalidInputError:
    text = str(e)
    if "UTF8" in text or "UTF-8" in text or "utf-8" in text.lower():
        return InvalidInputError(
            f"{str(path)!r} is not valid UTF-8 text ({text.splitlines()[0]}); "
            "pass encoding='latin-1' (or the file's real encoding)",
            path=str(path),
        )
    m = _CSV_COLUMN.search(text)
    if m and names:
        idx = int(m.group(1))
        col = names[idx] if idx < len(names) else f"#{idx}"
        return InvalidInputError(
            f"{str(path)!r}: column {col!r} has values of more than one type ({text.splitlines()[0]}); "
            f"clean the file or pass column_types={{{col!r}: 'string'}}",
            path=str(path), column=col,
        )
    return InvalidInputError(f"{str(path)!r} cannot be read as CSV: {text.splitlines()[0] if text else e!r}", path=str(path))


def _csv_stream(path: Path, delimiter: str, encoding: str, column_types: dict[str, Any] | None) -> TableStream:
    from pyarrow import csv

    read = csv.ReadOptions(block_size=_CSV_BLOCK_BYTES, encoding=encoding)
    parse = csv.ParseOptions(delimiter=delimiter)
    convert = csv.ConvertOptions(column_types={k: _arrow_type(v) for k, v in (column_types or {}).items()})
    try:
        reader = csv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as e:
        if "Empty CSV file" in str(e):
            raise InvalidInputError(f"data file {str(path)!r} is empty; nothing to read", path=str(path)) from None
        raise _csv_error(path, e, None) from None
    names = reader.schema.names
    binary = [f.name for f in reader.schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if binary and not column_types:
        # Arrow reads text that is not valid in ``encoding`` as raw bytes
        raise InvalidInputError(
            f"{str(path)!r} is not valid {'UTF-8' if encoding.lower().replace('-', '') == 'utf8' else encoding} text "
            f"(column(s) {', '.join(map(repr, binary))}); pass encoding='latin-1' (or the file's real encoding)",
            path=str(path),
        )

    def batches() -> Iterator[pa.RecordBatch]:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as e:
                raise _csv_error(path, e, names) from None
            yield batch

    return TableStream(reader.schema, batches(), str(path))


def _arrow_type(t: Any) -> pa.DataType:
    if isinstance(t, pa.DataType):
        return t
    try:
        return pa.type_for_alias(str(t))
    except (ValueError, KeyError):
        raise InvalidInputError(f"unknown column type {t!r}; use an Arrow type name such as 'string', 'double', 'int64'") from None


def _parquet_stream(path: Path, batch_rows: int) -> TableStream:
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(path, format="parquet")
        scanner = dataset.scanner(batch_size=batch_rows)
        return TableStream(dataset.schema, iter(scanner.to_batches()), str(path))
    except (pa.ArrowInvalid, OSError) as e:
        raise InvalidInputError(f"{str(path)!r} cannot be read as parquet: {e}", path=str(path)) from None


def open_stream(
    data: Any,
    *,
    batch_rows: int = BATCH_ROWS,
    encoding: str = "utf8",
    column_types: dict[str, Any] | None = None,
) -> TableStream:
    """Open ``data`` as a stream of record batches.

    Args:
        data: DataFrame, pyarrow Table/RecordBatch, an iterable of RecordBatches, or a path
            (``.csv``, ``.tsv``, ``.txt``, ``.parquet``, ``.pq``, or a folder of parquet files).
        batch_rows: rows per batch for in-memory tables and parquet.
        encoding: text encoding of CSV files.
        column_types: CSV column types to use instead of inferring them (Arrow type names).

    Raises:
        InvalidInputError: the data cannot be read; the message names the file and column.
    """
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        data = _frame_to_table(data)
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return TableStream(data.schema, iter(data.to_batches(max_chunksize=batch_rows)), None)
    if isinstance(data, str | os.PathLike):
        path = Path(data).expanduser()
        _check_file(path)
        if path.is_dir() or path.suffix.lower() in _PARQUET_SUFFIXES:
            return _parquet_stream(path, batch_rows)
        delimiter = _CSV_SUFFIXES.get(path.suffix.lower())
        if delimiter is None:
            raise InvalidInputError(
                f"cannot tell the format of {str(path)!r} from its suffix; use .csv, .tsv, .parquet or a folder of parquet files",
                path=str(path),
            )
        return _csv_stream(path, delimiter, encoding, column_types)
    if isinstance(data, Iterable) and not isinstance(data, str | bytes):
        it = iter(data)
        try:
            first = next(it)
        except StopIteration:
            raise InvalidInputError("the iterable of record batches is empty; nothing to read") from None
        if not isinstance(first, pa.RecordBatch):
            raise InvalidInputError(f"expected pyarrow RecordBatches, got {type(first).__name__}")

        def chained() -> Iterator[pa.RecordBatch]:
            yield first
            for b in it:
                if b.schema != first.schema:
                    raise InvalidInputError("record batches do not share one schema; every batch must have the same columns and types")
                yield b

        return TableStream(first.schema, chained(), None)
    raise InvalidInputError(
        f"cannot read data of type {type(data).__name__}; pass a DataFrame, a pyarrow Table, record batches or a file path"
    )


def rechunk(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """The same rows in batches of exactly ``rows`` (the last may be shorter).

    Fixed batch boundaries make the snapshot written from them byte-identical
    however the input was chunked, so equal content hashes equally.
    """
    pending: list[pa.RecordBatch] = []
    have = 0
    for b in batches:
        if b.num_rows == 0:
            continue
        pending.append(b)
        have += b.num_rows
        if have >= rows:
            table = pa.Table.from_batches(pending).combine_chunks()
            offset = 0
            while have - offset >= rows:
                yield table.slice(offset, rows).to_batches()[0]
                offset += rows
            rest = table.slice(offset)
            pending = rest.to_batches() if rest.num_rows else []
            have = rest.num_rows
    if have:
        table = pa.Table.from_batches(pending).combine_chunks()
        yield from table.to_batches()


def to_table(data: Any, **kwargs: Any) -> pa.Table:
    """Read all of ``data`` into one Arrow table (see :func:`open_stream`)."""
    stream = open_stream(data, **kwargs)
    return pa.Table.from_batches(list(stream.batches), schema=stream.schema)
