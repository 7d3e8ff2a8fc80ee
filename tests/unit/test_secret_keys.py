"""The keyring: where the key comes from, round trips, key rotation and wrong keys."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from baepo.core.model import Secret
from baepo.errors import BaepoError, ConfigError, StateError
from baepo.secrets.keys import (
    KEY_ENV,
    KEY_FILE_ENV,
    Encrypted,
    Keyring,
    SecretUnreadable,
    check_key,
    stored_secrets,
)


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)


def test_a_key_file_is_created_with_mode_0600(tmp_path: Path) -> None:
    ring = Keyring(tmp_path)
    token = ring.encrypt("hunter2")
    assert "hunter2" not in token
    assert ring.decrypt(token) == "hunter2"
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert Keyring(tmp_path).decrypt(token) == "hunter2"


def test_the_environment_key_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv(KEY_ENV, key)
    token = Keyring(tmp_path).encrypt("v")
    assert not (tmp_path / "secret.key").exists()
    assert Fernet(key.encode()).decrypt(token.encode()) == b"v"


def test_a_key_file_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Fernet.generate_key().decode()
    (tmp_path / "k").write_text(key + "\n")
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "k"))
    token = Keyring(tmp_path / "state").encrypt("v")
    assert Fernet(key.encode()).decrypt(token.encode()) == b"v"


def test_rotation_old_keys_still_decrypt() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    token = Keyring(keys=[old]).encrypt("v")
    rotated = Keyring(keys=[new, old])
    assert rotated.decrypt(token) == "v"
    assert Keyring(keys=[new]).decrypt(rotated.encrypt("v")) == "v"


def test_a_wrong_key_is_a_clear_error_without_the_value() -> None:
    token = Keyring(keys=[Fernet.generate_key().decode()]).encrypt("s3cr3t-value")
    with pytest.raises(BaepoError) as caught:
        Keyring(keys=[Fernet.generate_key().decode()]).decrypt(token)
    assert "another key" in str(caught.value)
    assert "s3cr3t-value" not in str(caught.value)
    assert "s3cr3t-value" not in (caught.value.hint or "")


def test_a_bad_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "not-a-key")
    with pytest.raises(ConfigError, match="not a Fernet key"):
        Keyring().encrypt("v")


def stored(ring: Keyring, *names: str, env: str = "production") -> list[Encrypted]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return stored_secrets(
        [Secret("shop", env, n, ring.encrypt(f"value of {n}"), 1, at, "alice") for n in names]
    )


def test_with_no_stored_secret_the_key_is_still_made_on_first_use(tmp_path: Path) -> None:
    check_key(Keyring(tmp_path), [])
    assert not (tmp_path / "secret.key").exists()


def test_a_lost_key_file_is_refused_not_made_anew(tmp_path: Path) -> None:
    secrets = stored(Keyring(tmp_path), "db-password", "api-key")
    (tmp_path / "secret.key").unlink()
    with pytest.raises(StateError) as caught:
        check_key(Keyring(tmp_path), secrets)
    message = str(caught.value)
    assert f"the key file {tmp_path / 'secret.key'} is missing" in message
    assert "secret db-password of shop in production; secret api-key of shop in" in message
    assert "value of" not in message
    assert caught.value.hint is not None and "--accept-lost-secrets" in caught.value.hint
    assert "baepo secret set" in caught.value.hint
    assert not (tmp_path / "secret.key").exists()


def test_a_replaced_key_is_refused_naming_what_it_cannot_decrypt(tmp_path: Path) -> None:
    old = stored(Keyring(tmp_path), "db-password")
    (tmp_path / "secret.key").write_text(Fernet.generate_key().decode() + "\n")
    new = stored(Keyring(tmp_path), "api-key", env="staging")
    with pytest.raises(StateError, match="cannot decrypt them: secret db-password of shop in prod"):
        check_key(Keyring(tmp_path), old + new)
    check_key(Keyring(tmp_path), new)


def test_accepting_lost_secrets_makes_a_new_key_and_deletes_nothing(tmp_path: Path) -> None:
    secrets = stored(Keyring(tmp_path), "db-password")
    (tmp_path / "secret.key").unlink()
    ring = Keyring(tmp_path)
    check_key(ring, secrets, accept_lost=True)
    assert (tmp_path / "secret.key").exists()
    with pytest.raises(SecretUnreadable, match="encrypted with another key"):
        ring.decrypt(secrets[0][1])
