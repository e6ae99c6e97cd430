"""Artifact stores: a local folder (default) and any S3-compatible bucket.

Both are reached through fsspec. Local writes go to a temporary file in the
destination folder, are flushed to disk, then renamed into place, so a reader
never sees a half-written artifact; an S3 PUT is atomic by itself. Every
write returns the sha256 of the stored bytes, and reads given an expected
hash verify it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from loopml.errors import ArtifactCorruptedError, ArtifactNotFoundError, ConfigError, InvalidInputError, StoreError
from loopml.storage.base import BlobInfo

__all__ = ["LocalBlobStore", "S3BlobStore", "open_blob_store", "sha256_file"]

_CHUNK = 1 << 20
_TMP_SUFFIX = ".tmp"  # in-flight writes: ".<name>.<random>.tmp" beside the destination


def sha256_file(path: str | Path) -> tuple[str, int]:
    """sha256 hex digest and size of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _check_key(key: str) -> str:
    parts = key.strip("/").split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(f"artifact key {key!r} is not a relative path of plain names (no '', '.', '..')")
    return "/".join(parts)


def _verify(key: str, actual: str, expected: str | None) -> None:
    if expected is not None and actual != expected:
        raise ArtifactCorruptedError(
            f"artifact {key!r} is corrupted: its sha256 is {actual[:12]}..., expected {expected[:12]}...; "
            "restore it from a backup or log it again",
            key=key,
        )


@contextmanager
def _replace_when_done(dest: Path) -> Iterator[str]:
    """A temporary path beside ``dest`` that is renamed onto it if the block succeeds
    and removed if it fails: ``dest`` is never seen half-written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=_TMP_SUFFIX, dir=dest.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _download(key: str, dest: str | os.PathLike[str], sha256: str | None, fetch: Callable[[str], object]) -> Path:
    """Fetch into a temporary file beside ``dest``, verify, then rename: a failed
    or corrupted download leaves ``dest`` as it was."""
    dest = Path(dest)
    with _replace_when_done(dest) as tmp:
        fetch(tmp)
        if sha256 is not None:
            _verify(key, sha256_file(tmp)[0], sha256)
    return dest


class LocalBlobStore:
    """Artifacts in a local folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(Path(root).resolve())
        self._root = Path(self.root)

    def _path(self, key: str) -> Path:
        return self._root / _check_key(key)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def put_bytes(self, key: str, data: bytes) -> BlobInfo:
        dest = self._path(key)
        with self._atomic(dest) as f:
            f.write(data)
        return BlobInfo(_check_key(key), hashlib.sha256(data).hexdigest(), len(data))

    def put_file(self, key: str, path: str | Path) -> BlobInfo:
        dest = self._path(key)
        h = hashlib.sha256()
        size = 0
        try:
            src = open(path, "rb")
        except FileNotFoundError:
            raise InvalidInputError(f"cannot store {str(path)!r} as artifact {key!r}: the file does not exist") from None
        with src, self._atomic(dest) as out:
            while chunk := src.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
                out.write(chunk)
        return BlobInfo(_check_key(key), h.hexdigest(), size)

    @contextmanager
    def _atomic(self, dest: Path) -> Iterator[BinaryIO]:
        with _replace_when_done(dest) as tmp, open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())

    def get_bytes(self, key: str, *, sha256: str | None = None) -> bytes:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ArtifactNotFoundError(f"artifact {key!r} is missing from the store at {self.root}", key=key) from None
        if sha256 is not None:
            _verify(key, hashlib.sha256(data).hexdigest(), sha256)
        return data

    def get_file(self, key: str, dest: str | os.PathLike[str], *, sha256: str | None = None) -> Path:
        src = self._path(key)
        if not src.is_file():
            raise ArtifactNotFoundError(f"artifact {key!r} is missing from the store at {self.root}", key=key)
        return _download(key, dest, sha256, lambda tmp: shutil.copyfile(src, tmp))

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        try:
            f = self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise ArtifactNotFoundError(f"artifact {key!r} is missing from the store at {self.root}", key=key) from None
        with f:
            yield f

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self._root / prefix.strip("/") if prefix.strip("/") else self._root
        if not base.exists():
            return
        for p in sorted(base.rglob("*")):
            if p.is_file() and not (p.name.startswith(".") and p.name.endswith(_TMP_SUFFIX)):  # skip in-flight writes
                yield p.relative_to(self._root).as_posix()


class S3BlobStore:
    """Artifacts under ``s3://bucket/prefix`` on AWS or any S3-compatible store."""

    def __init__(self, root: str, *, endpoint_url: str | None = None, **storage_options: Any) -> None:
        try:
            import s3fs
        except ImportError:
            raise ConfigError(f"artifact root {root!r} needs the s3 extra: pip install 'loopml[s3]'") from None
        self.root = root.rstrip("/")
        client_kwargs = dict(storage_options.pop("client_kwargs", {}))
        if endpoint_url:
            client_kwargs["endpoint_url"] = endpoint_url
        self._fs = s3fs.S3FileSystem(client_kwargs=client_kwargs, **storage_options)
        self._base = self.root[len("s3://"):]

    def _path(self, key: str) -> str:
        return f"{self._base}/{_check_key(key)}"

    def uri(self, key: str) -> str:
        return f"s3://{self._path(key)}"

    @contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"artifact {key!r} is missing from the store at {self.root}", key=key) from None
        except (OSError, ValueError) as e:
            raise StoreError(f"artifact store {self.root} failed on {key!r}: {e}") from e

    def put_bytes(self, key: str, data: bytes) -> BlobInfo:
        with self._errors(key):
            self._fs.pipe_file(self._path(key), data)
        return BlobInfo(_check_key(key), hashlib.sha256(data).hexdigest(), len(data))

    def put_file(self, key: str, path: str | Path) -> BlobInfo:
        if not Path(path).is_file():
            raise InvalidInputError(f"cannot store {str(path)!r} as artifact {key!r}: the file does not exist")
        digest, size = sha256_file(path)
        with self._errors(key):
            self._fs.put_file(str(path), self._path(key))
        return BlobInfo(_check_key(key), digest, size)

    def get_bytes(self, key: str, *, sha256: str | None = None) -> bytes:
        with self._errors(key):
            data = self._fs.cat_file(self._path(key))
        if sha256 is not None:
            _verify(key, hashlib.sha256(data).hexdigest(), sha256)
        return bytes(data)

    def get_file(self, key: str, dest: str | os.PathLike[str], *, sha256: str | None = None) -> Path:
        path = self._path(key)

        def fetch(tmp: str) -> None:
            with self._errors(key):
                self._fs.get_file(path, tmp)

        return _download(key, dest, sha256, fetch)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        with self._errors(key):
            if not self._fs.isfile(self._path(key)):  # s3fs would open a "folder" prefix as an empty file
                raise FileNotFoundError(key)
            f = self._fs.open(self._path(key), "rb")
        with f:  # outside _errors: the caller's own exceptions pass through unchanged
            yield f

    def exists(self, key: str) -> bool:
        with self._errors(key):
            return bool(self._fs.isfile(self._path(key)))  # a key, not a "folder" prefix

    def delete(self, key: str) -> None:
        try:
            self._fs.rm_file(self._path(key))
        except FileNotFoundError:
            pass

    def list(self, prefix: str = "") -> Iterator[str]:
        base = f"{self._base}/{prefix.strip('/')}" if prefix.strip("/") else self._base
        try:
            found = self._fs.find(base)
        except FileNotFoundError:
            return
        for p in sorted(found):
            yield p[len(self._base) + 1:]


def open_blob_store(root: str, *, s3_endpoint_url: str | None = None) -> LocalBlobStore | S3BlobStore:
    """The blob store for ``root``: a folder path, ``file://`` or ``s3://`` URL.

    Raises:
        ConfigError: an unsupported scheme.
    """
    if root.startswith("s3://"):
        return S3BlobStore(root, endpoint_url=s3_endpoint_url)
    if root.startswith("file://"):
        root = root[len("file://"):]
    if "://" in root:
        scheme = root.split("://", 1)[0]
        raise ConfigError(f"artifact root {root!r} uses scheme {scheme!r}; loopml supports a folder path, file:// and s3://")
    return LocalBlobStore(root)
