"""Alembic's entry point for the store schema.

Called by Alembic, never imported by baepo. ``store.migrate`` runs Alembic programmatically and
passes its own connection in ``config.attributes["connection"]``, already inside a transaction
that holds the migration lock; every revision then runs in that one transaction (SQLite and
PostgreSQL both have transactional DDL). Developers writing a new revision run the ``alembic``
command with an ini file holding ``script_location = baepo.store:migrations`` and
``-x url=sqlite:///scratch.db`` (e.g. ``alembic revision --autogenerate -m "..."``); then the
connection is made here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from baepo.store import engine as store_engine
from baepo.store import tables


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=tables.Base.metadata,
        transactional_ddl=True,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("pass the database URL: alembic -x url=sqlite:///path/to/baepo.db ...")
    engine = store_engine.create_engine(url)
    try:
        with engine.connect() as own:
            _run(own)
            own.commit()
    finally:
        engine.dispose()


_main()
