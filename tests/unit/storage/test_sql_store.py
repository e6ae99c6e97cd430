"""SqlMetadataStore: migrations, schema versions, URLs, SQLite set-up, transactions."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from loopml.config import Settings
from loopml.errors import ConfigError, SchemaVersionError, StoreError
from loopml.storage import HEAD_REVISION, SqlMetadataStore
from loopml.storage import _schema as t


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'meta' / 'loopml.db'}"


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = SqlMetadataStore(_sqlite_url(tmp_path))
    yield s
    s.close()


def test_open_applies_migrations(backend_settings: Settings) -> None:
    store = SqlMetadataStore(backend_settings.metadata_url)
    try:
        with store.read() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        store.close()
    assert {tbl.name for tbl in t.metadata.sorted_tables} | {"alembic_version"} <= tables
    assert version == HEAD_REVISION


def test_open_creates_the_database_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'loopml.db'}"
    SqlMetadataStore(url).close()
    assert (tmp_path / "a" / "b" / "loopml.db").is_file()


def test_reopening_is_a_no_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _sqlite_url(tmp_path)
    first = SqlMetadataStore(url)
    with first.write() as conn:
        conn.execute(t.experiments.insert().values(name="kept", created_at=1))
    first.close()

    def no_upgrade(self: SqlMetadataStore) -> None:
        raise AssertionError("an up-to-date store must not be migrated again")

    monkeypatch.setattr(SqlMetadataStore, "_upgrade", no_upgrade)
    second = SqlMetadataStore(url)
    try:
        with second.read() as conn:
            names = conn.execute(sa.select(t.experiments.c.name)).scalars().all()
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    finally:
        second.close()
    assert names == ["kept"]
    assert versions == [HEAD_REVISION]


def test_newer_schema_revision_is_refused(tmp_path: Path) -> None:
    url = _sqlite_url(tmp_path)
    store = SqlMetadataStore(url)
    with store.write() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    store.close()

    with pytest.raises(SchemaVersionError) as err:
        SqlMetadataStore(url)
    msg = str(err.value)
    assert "9999_from_the_future" in msg
    assert HEAD_REVISION in msg
    assert "upgrade loopml" in msg
    assert err.value.details["revision"] == "9999_from_the_future"
    assert err.value.code == "SCHEMA_VERSION"


def test_migrate_false_leaves_the_database_alone(tmp_path: Path) -> None:
    store = SqlMetadataStore(_sqlite_url(tmp_path), migrate=False)
    try:
        with store.read() as conn:
            assert sa.inspect(conn).get_table_names() == []
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    ["not a url", "mysql://user@localhost/loopml", "mongodb://localhost/loopml", ""],
)
def test_bad_metadata_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        SqlMetadataStore(url)
    assert "sqlite" in str(err.value) and "postgresql" in str(err.value)


def test_password_is_not_shown_in_errors() -> None:
    with pytest.raises(ConfigError) as err:
        SqlMetadataStore("mysql://user:s3cret@localhost/loopml")
    assert "s3cret" not in str(err.value)


def test_unreachable_database_is_a_store_error() -> None:
    # nothing listens on port 1: the driver error must arrive wrapped
    with pytest.raises(StoreError) as err:
        SqlMetadataStore("postgresql+psycopg://nobody:s3cretpw@127.0.0.1:1/loopml?connect_timeout=2")
    assert "127.0.0.1" in str(err.value)
    assert "s3cretpw" not in str(err.value)


def test_sqlite_pragmas(store: SqlMetadataStore) -> None:
    with store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60_000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_write_commits(store: SqlMetadataStore) -> None:
    with store.write() as conn:
        conn.execute(t.experiments.insert().values(name="a", created_at=1))
    with store.read() as conn:
        assert conn.execute(sa.select(t.experiments.c.name)).scalars().all() == ["a"]


def test_write_rolls_back_on_error(store: SqlMetadataStore) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with store.write() as conn:
            conn.execute(t.experiments.insert().values(name="a", created_at=1))
            raise Boom
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.experiments)).scalar_one() == 0


def test_driver_errors_are_wrapped(store: SqlMetadataStore) -> None:
    with store.write() as conn:
        conn.execute(t.experiments.insert().values(name="a", created_at=1))
    with pytest.raises(StoreError) as err:
        with store.write() as conn:
            conn.execute(t.experiments.insert().values(name="a", created_at=2))
    assert "writing" in str(err.value)
    with store.read() as conn:
        assert conn.execute(sa.select(t.experiments.c.created_at)).scalars().all() == [1]


def test_foreign_keys_are_enforced(store: SqlMetadataStore) -> None:
    with pytest.raises(StoreError):
        with store.write() as conn:
            conn.execute(t.runs.insert().values(id="r1", experiment_id=12345, status="running", start_time=1))


def test_insert_supports_upserts(backend_settings: Settings) -> None:
    store = SqlMetadataStore(backend_settings.metadata_url)
    try:
        for created in (1, 2):
            with store.write() as conn:
                ins = store.insert(t.experiments).values(name="same", created_at=created)
                conn.execute(ins.on_conflict_do_update(index_elements=["name"], set_={"created_at": created}))
        with store.read() as conn:
            rows = conn.execute(sa.select(t.experiments.c.name, t.experiments.c.created_at)).all()
    finally:
        store.close()
    assert [tuple(r) for r in rows] == [("same", 2)]
    assert store.dialect in ("sqlite", "postgresql")


def test_older_store_is_upgraded_in_place_keeping_its_data(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from loopml.storage.sql import KNOWN_REVISIONS

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(t.__file__).with_name("migrations")))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, KNOWN_REVISIONS[0])
        conn.execute(t.experiments.insert().values(name="kept", created_at=1))
    assert not sa.inspect(engine).has_table("dataset_versions")
    engine.dispose()
    store = SqlMetadataStore(url)
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
        assert conn.execute(sa.select(t.experiments.c.name)).scalars().all() == ["kept"]
        assert sa.inspect(conn).has_table("dataset_versions")
    store.close()
