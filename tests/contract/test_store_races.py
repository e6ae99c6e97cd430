"""Races between writers: the store decides, and every loser gets a clear error or a no-op."""

from __future__ import annotations

import multiprocessing as mp
import threading
import uuid

import pytest
import sqlalchemy as sa

from loopml.config import Settings
from loopml.errors import ParamConflictError
from loopml.storage import SqlMetadataStore
from loopml.storage.sql import HEAD_REVISION
from loopml.tracking import get_tracking


def test_racing_param_writers_one_value_wins(backend_settings: Settings) -> None:
    svc = get_tracking(backend_settings)
    run_id = svc.create_run("race")
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def write(i: int) -> None:
        barrier.wait()
        try:
            svc.log_params(run_id, {"lr": i % 2})  # three writers agree on 0, three on 1
            outcomes.append(f"ok{i % 2}")
        except ParamConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stored = svc.get_run(run_id).params["lr"]
    # every writer of the stored value succeeded (first insert or idempotent), every other one conflicted
    assert sorted(outcomes) == sorted([f"ok{stored}"] * 3 + ["conflict"] * 3)


def _open(url: str) -> str:
    store = SqlMetadataStore(url)
    with store.read() as conn:
        rev = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    store.close()
    return str(rev)


@pytest.mark.integration
def test_concurrent_openers_of_a_new_postgres_database_migrate_once(postgres_url: str) -> None:
    import psycopg
    from psycopg import sql

    base, _ = postgres_url.rsplit("/", 1)
    db = f"loopml_race_{uuid.uuid4().hex[:8]}"
    admin_url = postgres_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    try:
        with mp.get_context("spawn").Pool(4) as pool:
            revisions = pool.map(_open, [f"{base}/{db}"] * 4)
        assert revisions == [HEAD_REVISION] * 4
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
