"""BlobStore contract, run against a local folder and a real S3-compatible server."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from loopml.errors import ArtifactCorruptedError, ArtifactNotFoundError, ConfigError, InvalidInputError
from loopml.storage import BlobStore, LocalBlobStore, S3BlobStore, open_blob_store, sha256_file


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    # a fresh prefix per test keeps tests apart in the one bucket
    return S3BlobStore(f"s3://{bucket}/{uuid.uuid4().hex}", endpoint_url=endpoint)


def test_implements_the_protocol(blobs: BlobStore) -> None:
    assert isinstance(blobs, BlobStore)


def test_put_and_get_bytes(blobs: BlobStore) -> None:
    data = b"hello\x00world" * 100
    info = blobs.put_bytes("a/b/c.bin", data)
    assert info.key == "a/b/c.bin"
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.size == len(data)
    assert blobs.get_bytes("a/b/c.bin") == data
    assert blobs.get_bytes("a/b/c.bin", sha256=info.sha256) == data
    assert blobs.exists("a/b/c.bin")


def test_put_overwrites(blobs: BlobStore) -> None:
    blobs.put_bytes("k", b"one")
    info = blobs.put_bytes("k", b"two")
    assert blobs.get_bytes("k", sha256=info.sha256) == b"two"


def test_empty_blob(blobs: BlobStore) -> None:
    info = blobs.put_bytes("empty", b"")
    assert info.size == 0
    assert info.sha256 == hashlib.sha256(b"").hexdigest()
    assert blobs.get_bytes("empty", sha256=info.sha256) == b""


def test_put_file_and_get_file(blobs: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several read chunks
    info = blobs.put_file("models/m.bin", src)
    assert (info.sha256, info.size) == sha256_file(src)
    dest = blobs.get_file("models/m.bin", tmp_path / "out" / "m.bin", sha256=info.sha256)
    assert dest == tmp_path / "out" / "m.bin"
    assert dest.read_bytes() == src.read_bytes()


def test_put_file_of_missing_source(blobs: BlobStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        blobs.put_file("x", tmp_path / "nope.bin")
    assert not blobs.exists("x")


def test_open_streams_the_bytes(blobs: BlobStore) -> None:
    blobs.put_bytes("s", b"streamed")
    with blobs.open("s") as f:
        assert f.read() == b"streamed"


def test_errors_inside_open_pass_through(blobs: BlobStore) -> None:
    blobs.put_bytes("s", b"data")
    with pytest.raises(ValueError, match="caller's own"):
        with blobs.open("s"):
            raise ValueError("the caller's own error")


def test_missing_key(blobs: BlobStore, tmp_path: Path) -> None:
    assert not blobs.exists("missing")
    with pytest.raises(ArtifactNotFoundError, match="missing"):
        blobs.get_bytes("missing")
    with pytest.raises(ArtifactNotFoundError):
        blobs.get_file("missing", tmp_path / "dest")
    with pytest.raises(ArtifactNotFoundError):
        with blobs.open("missing"):
            pass
    assert not (tmp_path / "dest").exists()


def test_wrong_hash_is_corruption(blobs: BlobStore, tmp_path: Path) -> None:
    blobs.put_bytes("k", b"actual bytes")
    wrong = hashlib.sha256(b"expected bytes").hexdigest()
    with pytest.raises(ArtifactCorruptedError, match="'k' is corrupted"):
        blobs.get_bytes("k", sha256=wrong)
    dest = tmp_path / "dl" / "k"
    with pytest.raises(ArtifactCorruptedError):
        blobs.get_file("k", dest, sha256=wrong)
    assert not dest.exists(), "a download that fails verification must not leave the bad bytes behind"


def test_delete_is_idempotent(blobs: BlobStore) -> None:
    blobs.put_bytes("d", b"x")
    blobs.delete("d")
    assert not blobs.exists("d")
    blobs.delete("d")
    with pytest.raises(ArtifactNotFoundError):
        blobs.get_bytes("d")


def test_list(blobs: BlobStore) -> None:
    for key in ("runs/1/a.txt", "runs/1/sub/b.txt", "runs/2/c.txt", "other.txt"):
        blobs.put_bytes(key, key.encode())
    assert list(blobs.list("runs/1")) == ["runs/1/a.txt", "runs/1/sub/b.txt"]
    assert list(blobs.list("runs/1/")) == ["runs/1/a.txt", "runs/1/sub/b.txt"]
    assert list(blobs.list()) == ["other.txt", "runs/1/a.txt", "runs/1/sub/b.txt", "runs/2/c.txt"]
    assert list(blobs.list("nothing/here")) == []


def test_list_does_not_match_sibling_prefixes(blobs: BlobStore) -> None:
    blobs.put_bytes("runs/1/a", b"1")
    blobs.put_bytes("runs/10/b", b"2")
    assert list(blobs.list("runs/1")) == ["runs/1/a"]


def test_names_like_temporary_files_are_still_artifacts(blobs: BlobStore) -> None:
    blobs.put_bytes("cache.tmp", b"mine")
    assert list(blobs.list()) == ["cache.tmp"]
    assert blobs.get_bytes("cache.tmp") == b"mine"


def test_a_folder_is_not_a_blob(blobs: BlobStore) -> None:
    blobs.put_bytes("folder/inner", b"x")
    assert not blobs.exists("folder")
    with pytest.raises(ArtifactNotFoundError):
        blobs.get_bytes("folder")
    with pytest.raises(ArtifactNotFoundError):
        with blobs.open("folder"):
            pass


def test_leading_slash_is_ignored(blobs: BlobStore) -> None:
    info = blobs.put_bytes("/x/y", b"1")
    assert info.key == "x/y"
    assert blobs.get_bytes("x/y") == b"1"


@pytest.mark.parametrize("key", ["", "/", "../x", "a/../../b", "a/./b", ".", "a//b", ".."])
def test_bad_keys_are_rejected(blobs: BlobStore, key: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="artifact key"):
        blobs.put_bytes(key, b"x")
    with pytest.raises(InvalidInputError):
        blobs.get_bytes(key)
    with pytest.raises(InvalidInputError):
        blobs.get_file(key, tmp_path / "dest")


def test_uri(blobs: BlobStore) -> None:
    uri = blobs.uri("a/b.txt")
    assert uri.endswith("/a/b.txt")
    assert uri.startswith(("file://", "s3://"))


# -- local specifics -------------------------------------------------------------


def test_local_write_leaves_no_temp_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    store.put_bytes("d/one", b"1")
    store.put_file("d/two", __file__)
    assert sorted(p.name for p in (tmp_path / "blobs" / "d").iterdir()) == ["one", "two"]


def test_local_failing_writer_leaves_no_partial_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    dest = tmp_path / "blobs" / "d" / "model.bin"

    with pytest.raises(RuntimeError, match="disk on fire"):
        with store._atomic(dest) as f:
            f.write(b"partial")
            raise RuntimeError("disk on fire")
    assert list((tmp_path / "blobs" / "d").iterdir()) == []


def test_local_failing_writer_keeps_the_previous_version(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    store.put_bytes("d/model.bin", b"version 1")
    dest = tmp_path / "blobs" / "d" / "model.bin"

    with pytest.raises(RuntimeError):
        with store._atomic(dest) as f:
            f.write(b"version 2, half writ")
            raise RuntimeError("interrupted")
    assert store.get_bytes("d/model.bin") == b"version 1"
    assert [p.name for p in dest.parent.iterdir()] == ["model.bin"]


def test_local_put_file_from_unreadable_source_leaves_nothing(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    with pytest.raises(IsADirectoryError):
        store.put_file("d/x", folder)
    assert not (tmp_path / "blobs" / "d").exists() or list((tmp_path / "blobs" / "d").iterdir()) == []


def test_local_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(InvalidInputError):
        store.put_bytes("../outside", b"x")
    assert not (tmp_path / "outside").exists()


# -- open_blob_store -------------------------------------------------------------


@pytest.mark.integration
def test_open_blob_store_by_root(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    assert isinstance(open_blob_store(str(tmp_path)), LocalBlobStore)
    local = open_blob_store(f"file://{tmp_path}")
    assert isinstance(local, LocalBlobStore) and local.root == str(tmp_path)
    s3 = open_blob_store(f"s3://{s3_bucket}/p", s3_endpoint_url=s3_endpoint)
    assert isinstance(s3, S3BlobStore)
    assert s3.uri("k") == f"s3://{s3_bucket}/p/k"


@pytest.mark.parametrize("root", ["gs://bucket/x", "ftp://host/x"])
def test_open_blob_store_rejects_unknown_schemes(root: str) -> None:
    with pytest.raises(ConfigError, match="scheme"):
        open_blob_store(root)
