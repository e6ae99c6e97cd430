"""Storage: the metadata database, the artifact store and the backend bundle.

The only part of loopml that knows SQL dialects, connection set-up, file
layout and migrations. Domains reach it through :class:`Backend`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from loopml.config import Settings, load_settings
from loopml.storage.base import Backend, BlobInfo, BlobStore, MetadataStore

if TYPE_CHECKING:
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
    "get_service",
    "open_backend",
    "open_blob_store",
    "reset_backends",
    "reset_services",
    "sha256_file",
]

# SQLAlchemy and fsspec load on first use, not on `import loopml.storage` (a
# quarter of a second that a pipeline definition or a CLI's --help does not need).
_LAZY = {
    "LocalBlobStore": "loopml.storage.blob",
    "S3BlobStore": "loopml.storage.blob",
    "open_blob_store": "loopml.storage.blob",
    "sha256_file": "loopml.storage.blob",
    "HEAD_REVISION": "loopml.storage.sql",
    "SqlMetadataStore": "loopml.storage.sql",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


_T = TypeVar("_T")
_lock = threading.Lock()
_backends: dict[tuple[str, str, str | None], Backend] = {}
_services: dict[tuple[str, str, str, str | None], Any] = {}


def open_backend(settings: Settings) -> Backend:
    """A new :class:`Backend` for ``settings`` (migrating the database if needed)."""
    from loopml.storage.blob import open_blob_store
    from loopml.storage.sql import SqlMetadataStore

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


def get_service(name: str, factory: Callable[[Backend], _T], settings: Settings | None = None) -> _T:
    """The process-wide service ``name`` (e.g. ``"tracking"``) on the backend for ``settings``.

    Built once with ``factory(backend)`` and cached, so every caller in a process
    shares one service (and its caches and buffers) per project.
    """
    settings = settings or load_settings()
    key = (name, settings.metadata_url, settings.artifact_root, settings.s3_endpoint_url)
    svc: _T | None = _services.get(key)
    if svc is None:
        backend = get_backend(settings)
        with _lock:
            svc = _services.get(key)
            if svc is None:
                svc = _services[key] = factory(backend)
    return svc


def reset_services(name: str | None = None) -> None:
    """Close (when they have ``close()``) and forget cached services, all or those called ``name``."""
    with _lock:
        keys = [k for k in _services if name is None or k[0] == name]
        found = [_services.pop(k) for k in keys]
    for svc in found:
        close = getattr(svc, "close", None)
        if callable(close):
            close()


def reset_backends() -> None:
    """Close and forget every cached service and backend (after a fork, or in tests)."""
    reset_services()
    with _lock:
        for b in _backends.values():
            b.close()
        _backends.clear()
