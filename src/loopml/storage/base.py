"""The storage seam: small interfaces every backend implements.

Two primitives sit at the ground of loopml:

* :class:`MetadataStore` — one SQL database reached by URL (``sqlite:///`` or
  ``postgresql+psycopg://``). Domain repositories (``tracking/_sql.py``, ...)
  run their queries through it; only ``storage/`` knows how to connect,
  configure and migrate it.
* :class:`BlobStore` — bytes under string keys (local folder or ``s3://``).
  Writes are atomic: a reader sees the whole object or nothing.

:class:`Backend` bundles them, built from :class:`~loopml.config.Settings`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from loopml.config import Settings

__all__ = ["Backend", "BlobInfo", "BlobStore", "MetadataStore"]


@dataclass(frozen=True)
class BlobInfo:
    """What a write stored: its key, sha256 of the bytes and their size."""

    key: str
    sha256: str
    size: int


@runtime_checkable
class MetadataStore(Protocol):
    """A migrated SQL database.

    Contract: opening the store applies pending migrations; a database created
    by a newer loopml raises :class:`~loopml.errors.SchemaVersionError`.
    ``write()`` transactions commit on normal exit and roll back on an
    exception. On SQLite they run one at a time (``BEGIN IMMEDIATE`` with a busy
    timeout); on PostgreSQL they run concurrently at READ COMMITTED, so a
    repository that reads before it writes locks what it reads (``FOR UPDATE``)
    or retries on a unique violation. Driver exceptions are wrapped in
    :class:`~loopml.errors.StoreError`.
    """

    url: str
    dialect: str  # "sqlite" | "postgresql"

    def read(self) -> AbstractContextManager[Connection]:
        """A connection for queries (a consistent snapshot on both backends)."""
        ...

    def write(self) -> AbstractContextManager[Connection]:
        """A connection inside a write transaction."""
        ...

    def insert(self, table: Any) -> Any:
        """The dialect's INSERT construct (supports ``on_conflict_do_*``)."""
        ...

    def sql(self, text: str) -> str:
        """``text`` written with ``?`` placeholders, in this driver's placeholder style."""
        ...

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
        """SQL text (``?`` placeholders) and parameters for ``column`` equal to any of ``values``."""
        ...

    def execute_many(self, conn: Connection, text: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run ``text`` (``?`` placeholders) for each tuple in ``rows``, on the driver directly."""
        ...

    def query(self, conn: Connection, text: str, params: Sequence[Any] = ()) -> list[Any]:
        """Tuples returned by ``text`` (``?`` placeholders), fetched on the driver directly."""
        ...

    def match_any(self, column: Any, values: list[Any]) -> Any:
        """A condition ``column IN values`` that stays cheap for thousands of values."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class BlobStore(Protocol):
    """Bytes under ``/``-separated keys.

    Contract: ``put_*`` is atomic and returns the sha256 of what was stored;
    ``get_*`` of a missing key raises :class:`~loopml.errors.ArtifactNotFoundError`;
    when ``sha256`` is given, reads verify it and raise
    :class:`~loopml.errors.ArtifactCorruptedError` on a mismatch.
    """

    root: str

    def put_bytes(self, key: str, data: bytes) -> BlobInfo: ...

    def put_file(self, key: str, path: str | Path) -> BlobInfo: ...

    def get_bytes(self, key: str, *, sha256: str | None = None) -> bytes: ...

    def get_file(self, key: str, dest: str | os.PathLike[str], *, sha256: str | None = None) -> Path: ...

    def open(self, key: str) -> AbstractContextManager[BinaryIO]: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str = "") -> Iterator[str]: ...

    def uri(self, key: str) -> str: ...


@dataclass
class Backend:
    """The primitives of one project, built from its settings."""

    settings: Settings
    metadata: MetadataStore
    blobs: BlobStore

    def close(self) -> None:
        self.metadata.close()
