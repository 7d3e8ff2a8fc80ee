"""Store URLs, error translation and the migration's view of terminal phases (no server)."""

from __future__ import annotations

import importlib
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from baepo import store
from baepo.core import ports
from baepo.core.model import TERMINAL_PHASES, Revision
from baepo.errors import ConfigError, ExternalError, StateError, TransientError
from baepo.store import engine, tables, translate

SECRET = "s3cr3t-pw"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_public_surface() -> None:
    assert sorted(store.__all__) == [
        "SqlStore",
        "head_revision",
        "migrate",
        "open_store",
        "redact",
        "schema_revision",
        "sqlite_file",
        "sqlite_url",
    ]


def test_sqlite_file_names_the_database_file(tmp_path: Path) -> None:
    assert store.sqlite_file(store.sqlite_url(tmp_path / "state.db")) == tmp_path / "state.db"
    assert store.sqlite_file("sqlite://") is None
    assert store.sqlite_file("postgresql://u@localhost/baepo") is None


def test_sqlite_url_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = store.sqlite_url(Path(".baepo/state.db"))
    assert url == f"sqlite:///{tmp_path}/.baepo/state.db"
    assert make_url(store.sqlite_url(tmp_path / "a b" / "x.db")).database == str(
        tmp_path / "a b" / "x.db"
    )


@pytest.mark.parametrize(
    "url",
    ["postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"],
)
def test_postgres_urls_use_psycopg(url: str) -> None:
    assert engine.parse_url(url).drivername == "postgresql+psycopg"


@pytest.mark.parametrize("url", ["mysql://root:pw@h/db", "not a url", ""])
def test_unusable_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        store.open_store(url)
    assert "pw" not in str(info.value)


def test_redact_hides_the_password() -> None:
    shown = store.redact(f"postgresql+psycopg://baepo:{SECRET}@db.example:5432/baepo")
    assert SECRET not in shown
    assert shown == "postgresql+psycopg://baepo:***@db.example:5432/baepo"


def test_unreachable_postgres_is_an_external_error_without_password() -> None:
    url = f"postgresql://baepo:{SECRET}@127.0.0.1:{closed_port()}/baepo"
    with pytest.raises(ExternalError) as info:
        store.open_store(url)
    assert isinstance(info.value, TransientError)
    assert SECRET not in str(info.value)
    assert "baepo:***@127.0.0.1" in str(info.value)


def test_unopenable_sqlite_is_an_external_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ExternalError, match="cannot create"):
        store.open_store(store.sqlite_url(blocker / "state" / "baepo.db"))
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ExternalError, match=r"garbage\.db"):
        store.open_store(store.sqlite_url(garbage))


def test_translation_keeps_parameters_and_password_out() -> None:
    url = make_url(f"postgresql+psycopg://baepo:{SECRET}@h/db")
    orig = Exception(f"duplicate key for {SECRET}\nDETAIL: more")
    integrity = sa.exc.IntegrityError("INSERT ...", {"config": "token=hunter2"}, orig)
    error = translate.translate(integrity, url, "save")
    assert isinstance(error, StateError)
    assert "hunter2" not in str(error)
    assert SECRET not in str(error)
    assert "DETAIL" not in str(error)
    operational = sa.exc.OperationalError("SELECT 1", {}, Exception("server closed"))
    assert isinstance(translate.translate(operational, url, "read"), TransientError)
    unbound = sa.exc.StatementError("bad value", "INSERT ...", {"token": "hunter2"}, TypeError("x"))
    assert "hunter2" not in str(translate.translate(unbound, url, "save"))
    other = sa.exc.ProgrammingError("SELECT 1", {}, Exception("syntax"))
    assert type(translate.translate(other, url, "read")) is ExternalError


def test_migration_index_covers_exactly_the_terminal_phases() -> None:
    initial = importlib.import_module("baepo.store.migrations.versions.v0001_initial")
    assert set(initial.TERMINAL_PHASES) == {phase.value for phase in TERMINAL_PHASES}
    assert initial.ACTIVE_ROLLOUT_WHERE == tables.ACTIVE_ROLLOUT_WHERE


def test_advisory_keys_are_stable_signed_64_bit() -> None:
    key = engine.advisory_key("revisions", "shop", "production")
    assert key == engine.advisory_key("revisions", "shop", "production")
    assert key != engine.advisory_key("revisions", "shop", "staging")
    assert -(2**63) <= key < 2**63


def test_in_memory_sqlite_store() -> None:
    with store.open_store("sqlite://") as opened:
        db: ports.Store = opened  # mypy checks that SqlStore implements the port
        now = datetime.now(UTC)
        added = db.add_revision(Revision("a", "e", 0, "1", {"k": "v"}, "h", "/", "me", now))
        assert added.number == 1
        assert db.get_revision("a", "e", 1).created_at == now


def test_sqlite_pragmas(tmp_path: Path) -> None:
    with store.open_store(store.sqlite_url(tmp_path / "p.db")) as db, db.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == engine.BUSY_TIMEOUT_MS


def test_unknown_schema_revision_is_a_state_error(tmp_path: Path) -> None:
    url = store.sqlite_url(tmp_path / "future.db")
    store.migrate(url)
    with store.open_store(url) as db, db.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StateError, match="unknown to this baepo"):
        store.open_store(url)
