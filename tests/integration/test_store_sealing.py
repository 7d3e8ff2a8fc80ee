"""Migration 0007 seals the secret-looking run.env values older revisions kept in plaintext,
on SQLite (the file's bytes, WAL included, no longer hold them) and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from baepo import store
from baepo.core.model import Revision, config_hash
from baepo.errors import StateError
from baepo.secrets import sealed
from baepo.secrets.keys import Keyring
from baepo.spec import sensitive
from baepo.store import tables
from baepo.store.migrate import alembic_config

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TOKEN = "plain-token-6c1f0e93b7"
PASSWORD = "plain-password-a94d2e"
CONFIG = {"app": "shop", "run": {"env": {"API_TOKEN": TOKEN, "LOG_LEVEL": "info"}}}
SOURCE = {**CONFIG, "environments": {"production": {"run": {"env": {"DB_PASSWORD": PASSWORD}}}}}


def file_bytes(url: str) -> bytes:
    path = Path(sa.make_url(url).database or "")
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def at_0006_with_a_plaintext_revision(url: str) -> None:
    engine = sa.create_engine(url)  # the store's own engine refuses an old schema
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0006")
        with Session(engine) as session, session.begin():
            old = Revision("shop", "production", 0, "1.0", CONFIG, "h", "/srv", "me", T0)
            session.add(tables.RevisionRow.from_record(old, number=1))
            row = tables.RevisionRow.from_record(old, number=2)
            row.source = SOURCE
            session.add(row)
    finally:
        engine.dispose()


def test_old_revisions_are_sealed_and_run_the_same_values(url: str) -> None:
    at_0006_with_a_plaintext_revision(url)
    if url.startswith("sqlite"):
        assert TOKEN.encode() in file_bytes(url)  # the check below can fail
    with pytest.raises(StateError, match="revision 1 of shop in production") as caught:
        store.migrate(url)  # no key: nothing changes
    assert caught.value.hint and "baepo server" in caught.value.hint
    assert store.schema_revision(url) == "0006"

    keyring = Keyring(keys=[Fernet.generate_key().decode()])
    with store.open_store(url, seal=lambda value: sealed.seal(value, keyring)) as db:
        one, two = db.list_revisions("shop", "production")
    assert store.schema_revision(url) == store.head_revision()
    for revision in (one, two):
        env = revision.config["run"]["env"]
        assert sensitive.is_sealed(env["API_TOKEN"]) and env["LOG_LEVEL"] == "info"
        assert sealed.open_env(env, keyring) == CONFIG["run"]["env"]
        assert revision.config_hash == config_hash(
            {"config": sensitive.hash_view(revision.config), "spec_dir": "/srv"}
        )
        assert list(revision.secrets) == ["API_TOKEN"]
    assert one.config_hash == two.config_hash  # same values, same hash, whatever the tokens
    assert two.source is not None
    overlay = two.source["environments"]["production"]["run"]["env"]
    assert sealed.open_value(overlay["DB_PASSWORD"], keyring) == PASSWORD
    if url.startswith("sqlite"):
        data = file_bytes(url)
        assert TOKEN.encode() not in data and PASSWORD.encode() not in data

    engine = sa.create_engine(url)
    try:
        with pytest.raises(StateError, match=r"sealed run\.env values"), engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0006")
    finally:
        engine.dispose()
