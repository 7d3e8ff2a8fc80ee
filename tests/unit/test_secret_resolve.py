"""Resolving the spec's ``secrets`` against a real SQLite store: stored, env and file sources,
and errors that name the variable and the secret but never a value."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from baepo.core.model import Secret
from baepo.core.ports import Store
from baepo.errors import BaepoError, StateError
from baepo.secrets.keys import Keyring
from baepo.secrets.references import SecretScope
from baepo.secrets.resolve import secret_changes, secret_env, secret_labels, secret_versions
from baepo.spec.loader import parse_spec
from baepo.store import open_store, sqlite_url

SPEC = """\
app: shop
run: {command: ["true"]}
secrets:
  DB_PASSWORD: db-password
  API_KEY: {secret: api-key}
  FROM_ENV: {env: SHOP_TEST_SECRET}
  FROM_FILE: {file: token.txt}
"""

SCOPE = SecretScope(frozenset({"SHOP_TEST_SECRET"}))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened: Store = open_store(sqlite_url(tmp_path / "state.db"))
    return opened


def put(store: Store, keyring: Keyring, name: str, value: str, env: str = "default") -> None:
    store.put_secret(
        Secret("shop", env, name, keyring.encrypt(value), 0, datetime.now(UTC), "tester")
    )


def test_every_kind_of_source(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = Keyring(keys=[Fernet.generate_key().decode()])
    put(store, keyring, "db-password", "pw-1")
    put(store, keyring, "api-key", "key-1")
    put(store, keyring, "api-key", "other-env", env="production")
    monkeypatch.setenv("SHOP_TEST_SECRET", "from-env")
    (tmp_path / "token.txt").write_text("from-file\n")
    spec = parse_spec(SPEC, source="baepo.yaml")
    values = secret_env(store, keyring, spec, "shop", "default", tmp_path, scope=SCOPE)
    assert values == {
        "DB_PASSWORD": "pw-1",
        "API_KEY": "key-1",
        "FROM_ENV": "from-env",
        "FROM_FILE": "from-file",
    }


def test_a_missing_secret_names_the_variable(store: Store, tmp_path: Path) -> None:
    keyring = Keyring(keys=[Fernet.generate_key().decode()])
    put(store, keyring, "db-password", "pw-1")
    spec = parse_spec(SPEC, source="baepo.yaml")
    with pytest.raises(StateError) as caught:
        secret_env(store, keyring, spec, "shop", "default", tmp_path, scope=SCOPE)
    assert str(caught.value) == "API_KEY: the secret api-key is not set for shop in default"


def test_a_wrong_key_does_not_show_the_value(store: Store, tmp_path: Path) -> None:
    put(store, Keyring(keys=[Fernet.generate_key().decode()]), "db-password", "pw-secret-1")
    spec = parse_spec('app: shop\nrun: {command: ["true"]}\nsecrets: {DB: db-password}\n')
    with pytest.raises(BaepoError) as caught:
        secret_env(store, Keyring(keys=[Fernet.generate_key().decode()]), spec, "shop",
                   "default", tmp_path, scope=SCOPE)  # fmt: skip
    assert "pw-secret-1" not in f"{caught.value} {caught.value.hint}"


def test_versions_change_with_values_and_never_hold_one(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = Keyring(keys=[Fernet.generate_key().decode()])
    put(store, keyring, "db-password", "pw-1")
    monkeypatch.setenv("SHOP_TEST_SECRET", "from-env")
    (tmp_path / "token.txt").write_text("from-file\n")
    spec = parse_spec(SPEC, source="baepo.yaml")
    first = secret_versions(store, keyring, spec, "shop", "default", tmp_path, scope=SCOPE)
    assert first["DB_PASSWORD"] == "secret db-password v1"
    assert first["API_KEY"] == "secret api-key (not set)"
    assert first["FROM_ENV"].startswith("env SHOP_TEST_SECRET ")
    assert first["FROM_FILE"].startswith("file token.txt ")
    assert all(v not in text for v in ("pw-1", "from-env", "from-file") for text in first.values())

    put(store, keyring, "db-password", "pw-2")
    put(store, keyring, "api-key", "key-1")
    monkeypatch.setenv("SHOP_TEST_SECRET", "from-env-2")
    second = secret_versions(store, keyring, spec, "shop", "default", tmp_path, scope=SCOPE)
    assert secret_changes(first, second) == {
        "API_KEY": "changed",
        "DB_PASSWORD": "changed",
        "FROM_ENV": "changed",
        "FROM_FILE": "unchanged",
    }
    (tmp_path / "token.txt").unlink()
    monkeypatch.delenv("SHOP_TEST_SECRET")
    third = secret_versions(store, keyring, spec, "shop", "default", tmp_path, scope=SCOPE)
    assert third["FROM_FILE"] == "file token.txt (missing)"
    assert secret_labels(second) == {
        "DB_PASSWORD": "secret db-password v2",
        "API_KEY": "secret api-key v1",
        "FROM_ENV": "env SHOP_TEST_SECRET",
        "FROM_FILE": "file token.txt",
    }
    assert secret_labels(third)["FROM_ENV"] == "env SHOP_TEST_SECRET (missing)"


def test_changes_list_added_and_removed_variables() -> None:
    assert secret_changes(None, {"A": "secret a v1"}) == {"A": "added"}
    assert secret_changes({"A": "secret a v1", "B": "env B 1"}, {"B": "env B 1"}) == {
        "A": "removed",
        "B": "unchanged",
    }


def test_another_key_gives_other_fingerprints() -> None:
    one = Keyring(keys=[Fernet.generate_key().decode()])
    two = Keyring(keys=[Fernet.generate_key().decode()])
    assert one.fingerprint("x") == one.fingerprint("x")
    assert one.fingerprint("x") != one.fingerprint("y")
    assert one.fingerprint("x") != two.fingerprint("x")
