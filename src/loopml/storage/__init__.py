"""Storage: the metadata database, the artifact store and the backend bundle.

The only part of loopml that knows SQL dialects, connection set-up, file
layout and migrations. Domains reach it through :class:`Backend`.
"""

from __future__ import annotations

import threading

from loopml.config import Settings, load_settings
from loopml.storage.base import Backend, BlobInfo, BlobStore, MetadataStore
from loopml.storage.blob import LocalBlobStore, S3BlobStore, open_blob_store, sha256_file
from loopml.storage.sql import HEAD_REVISION, SqlMetadataStore

__all__ = [
    "HEAD_REVISION",
    "Backend",
    "BlobInfo",
    "BlobStore",
    "LocalBlobStore",
    "MetadataStore",
    "S3BlobStore",
    "SqlMetadataStore",
    "get_backend",
    "open_backend",
    "reset_backends",
    "sha256_file",
]

_lock = threading.Lock()
_backends: dict[tuple[str, str, str | None], Backend] = {}


def open_backend(settings: Settings) -> Backend:
    """A new :class:`Backend` for ``settings`` (migrating the database if needed)."""
    return Backend(
        settings=settings,
        metadata=SqlMetadataStore(settings.metadata_url),
        blobs=open_blob_store(settings.artifact_root, s3_endpoint_url=settings.s3_endpoint_url),
    )


def get_backend(settings: Settings | None = None) -> Backend:
    """The process-wide :class:`Backend` for ``settings`` (default: :func:`load_settings`), cached."""
    settings = settings or load_settings()
    key = (settings.metadata_url, settings.artifact_root, settings.s3_endpoint_url)
    with _lock:
        backend = _backends.get(key)
        if backend is None:
            backend = _backends[key] = open_backend(settings)
        return backend


def reset_backends() -> None:
    """Close and forget every cached backend (after a fork, or in tests)."""
    with _lock:
        for b in _backends.values():
            b.close()
        _backends.clear()
