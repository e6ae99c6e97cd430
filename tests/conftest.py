"""Shared fixtures: isolated project settings, per-backend settings, external services.

Backends:

* ``settings`` — an embedded project in ``tmp_path`` (SQLite + local artifacts).
* ``backend_settings`` — the same project once on SQLite and once on the local
  PostgreSQL server (one database per xdist worker, emptied before each test).
* ``s3_endpoint`` — a real S3-compatible HTTP server (moto) with one bucket.

An external service that is not reachable skips its tests, unless
``LOOPML_REQUIRE_SERVICES=1``, which turns the skip into a failure (CI sets it
so that a broken service cannot pass silently). Use :func:`service_unavailable`
for every new service (Redis, Chromium, ...).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from loopml.config import ENV_VARS, Settings

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
S3_BUCKET = "loopml-test"


# -- external services -----------------------------------------------------------


def services_required() -> bool:
    """True when LOOPML_REQUIRE_SERVICES is set: missing services fail instead of skip."""
    return bool(ENV_VARS["LOOPML_REQUIRE_SERVICES"].get())


def service_unavailable(service: str, problem: str) -> NoReturn:
    """Skip the current test because ``service`` is unavailable, or fail under LOOPML_REQUIRE_SERVICES=1.

    Args:
        service: what is missing, e.g. "PostgreSQL at 127.0.0.1:5432".
        problem: why, e.g. the driver's error message.
    """
    if services_required():
        pytest.fail(
            f"{service} is unavailable ({problem}), and LOOPML_REQUIRE_SERVICES=1 requires it: "
            "start the service, or unset LOOPML_REQUIRE_SERVICES to skip these tests",
            pytrace=False,
        )
    pytest.skip(f"{service} unavailable: {problem}")


def _reset_loopml() -> None:
    from loopml import data, registry, storage
    from loopml.tracking import fluent

    fluent.reset()
    registry.reset()
    data.reset()
    storage.reset_backends()


# -- embedded project ------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings of an embedded project in ``tmp_path``: SQLite and local artifacts."""
    yield Settings.for_dir(tmp_path)
    _reset_loopml()


# -- PostgreSQL ------------------------------------------------------------------


def _pg_admin_connect():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True, connect_timeout=3
    )


@pytest.fixture(scope="session")
def postgres_url(worker_id: str, testrun_uid: str) -> Iterator[str]:
    """URL of a migrated PostgreSQL database private to this xdist worker and test session."""
    try:
        import psycopg
    except ImportError:
        service_unavailable("PostgreSQL", "the psycopg driver is not installed (pip install 'loopml[postgres]')")
    from psycopg import sql

    from loopml.storage import SqlMetadataStore

    # the run id keeps concurrent pytest sessions on one server apart
    db = f"loopml_test_{worker_id}_{testrun_uid[:8]}".lower()
    try:
        admin = _pg_admin_connect()
    except psycopg.OperationalError as e:
        service_unavailable(f"PostgreSQL at {PG_HOST}:{PG_PORT} (user {PG_USER})", str(e).strip())
    with admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"
    try:
        SqlMetadataStore(url).close()  # apply the migrations once
        yield url
    finally:
        with _pg_admin_connect() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


def truncate_postgres(url: str) -> None:
    """Empty every loopml table of the database at ``url`` and restart its id sequences (the schema stays).

    DELETE in reverse dependency order rather than TRUNCATE ... CASCADE: on
    tables this small it gives the same result about fifty times faster
    (TRUNCATE recreates every table's files), which keeps the suite fast.
    """
    import psycopg
    from psycopg import sql

    from loopml.storage._schema import metadata

    dbname = url.rsplit("/", 1)[1]
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname, autocommit=True) as conn:
        with conn.transaction():
            for table in reversed(metadata.sorted_tables):
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table.name)))
            sequences = conn.execute(
                "SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = 'public'"
            ).fetchall()
            for (seq,) in sequences:
                conn.execute(sql.SQL("ALTER SEQUENCE {} RESTART").format(sql.Identifier(seq)))


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)],
)
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings of a project in ``tmp_path`` whose metadata lives on each supported database."""
    if request.param == "sqlite":
        s = Settings.for_dir(tmp_path)
    else:
        url = request.getfixturevalue("postgres_url")
        truncate_postgres(url)
        s = Settings.for_dir(tmp_path, metadata_url=url)
    yield s
    _reset_loopml()


# -- S3 --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL of a real S3-compatible HTTP server (moto) holding the bucket ``S3_BUCKET``."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as e:
        service_unavailable("S3 test server (moto[server], boto3)", str(e))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=S3_BUCKET)
    client.close()
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_bucket() -> str:
    """Name of the bucket the S3 test server holds."""
    return S3_BUCKET


@pytest.fixture
def s3_endpoint(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The S3 server's endpoint, with fake AWS credentials in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return s3_server


# -- git -------------------------------------------------------------------------


def git_commit_all(repo: Path, message: str = "commit") -> str:
    """Create (if needed) a git repository at ``repo``, commit every file in it, return the commit sha."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "loopml tests", "GIT_AUTHOR_EMAIL": "tests@loopml.invalid",
        "GIT_COMMITTER_NAME": "loopml tests", "GIT_COMMITTER_EMAIL": "tests@loopml.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
    }

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "commit.gpgsign=false", *args], cwd=repo, env=env,
            check=True, capture_output=True, text=True,
        ).stdout.strip()

    if not (repo / ".git").exists():
        git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", message)
    return git("rev-parse", "HEAD")


@pytest.fixture
def git_commit():  # type: ignore[no-untyped-def]
    """:func:`git_commit_all`, as a fixture."""
    return git_commit_all
