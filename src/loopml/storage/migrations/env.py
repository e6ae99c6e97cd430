"""Alembic environment: runs on the connection loopml hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from loopml.storage._schema import metadata

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


conn = config.attributes.get("connection")
if conn is not None:
    _run(conn)
else:  # `alembic` command line, for writing new revisions
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///loopml-migrations.db")
    with engine.begin() as c:
        _run(c)
