"""Backend bundle: open_backend, the per-process cache and its reset."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from loopml.config import Settings
from loopml.storage import HEAD_REVISION, LocalBlobStore, SqlMetadataStore, get_backend, open_backend, reset_backends


def test_open_backend_builds_both_stores(settings: Settings) -> None:
    backend = open_backend(settings)
    try:
        assert isinstance(backend.metadata, SqlMetadataStore)
        assert isinstance(backend.blobs, LocalBlobStore)
        assert backend.blobs.root == settings.artifact_root
        with backend.metadata.read() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD_REVISION
    finally:
        backend.close()
    assert Path(settings.project_dir, ".loopml", "loopml.db").is_file()


def test_get_backend_is_cached_per_settings(settings: Settings, tmp_path: Path) -> None:
    a = get_backend(settings)
    assert get_backend(settings) is a
    other = Settings.for_dir(tmp_path / "other")
    assert get_backend(other) is not a


def test_reset_backends_forgets_the_cache(settings: Settings) -> None:
    a = get_backend(settings)
    reset_backends()
    b = get_backend(settings)
    assert b is not a
    # the new backend works on the same database
    with b.metadata.read() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD_REVISION
