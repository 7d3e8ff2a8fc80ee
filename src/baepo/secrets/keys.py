"""The keyring that encrypts stored secrets (Fernet), with a key that never enters the database.

The key comes from ``BAEPO_SECRET_KEY`` (one Fernet key, or several separated by commas: the
first encrypts, every one decrypts, so a key can be rotated), else from the file named by
``BAEPO_SECRET_KEY_FILE``, else from ``<state dir>/secret.key``, created with mode 0600 on
first use. A key is never made while secrets are stored that it would have to decrypt:
``check_key`` refuses, at server start, a key that is missing or cannot decrypt every stored
secret (invariant 12). Callers: ``api.server`` (one keyring per server, checked at start),
``api.secret_routes``, ``secrets.resolve``.
"""

from __future__ import annotations

import base64
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from baepo.core.model import Secret
from baepo.errors import ConfigError, StateError

KEY_ENV = "BAEPO_SECRET_KEY"
KEY_FILE_ENV = "BAEPO_SECRET_KEY_FILE"
KEY_FILE = "secret.key"
ACCEPT_FLAG = "--accept-lost-secrets"


class SecretUnreadable(StateError):
    """A stored secret the key cannot decrypt (another key, or a lost one): nothing will
    change that but the right key or the secret stored again, so a rollout needing it fails
    at once instead of retrying."""


class Keyring:
    """Encrypts and decrypts secret values. The key is read (or created) on first use."""

    def __init__(self, state_dir: Path | None = None, *, keys: list[str] | None = None) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._keys = keys
        self._fernet: MultiFernet | None = None
        self._primary: bytes | None = None

    def encrypt(self, value: str) -> str:
        return self._load().encrypt(value.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._load().decrypt(ciphertext.encode()).decode()
        except (InvalidToken, ValueError) as exc:
            raise SecretUnreadable(
                "cannot decrypt a stored secret: it was encrypted with another key",
                hint=f"set {KEY_ENV} (or {KEY_FILE_ENV}) to the key the secret was stored "
                "with, or store the secret again",
            ) from exc

    def fingerprint(self, value: str) -> str:
        """A short keyed digest of ``value`` (HMAC-SHA256 with the newest key): equal values
        give equal fingerprints, and without the key nobody can test a guess against one."""
        self._load()
        assert self._primary is not None
        digest = hmac.new(self._primary, b"baepo-secret-fingerprint\0" + value.encode(), "sha256")
        return digest.hexdigest()[:12]

    def source(self) -> str:
        """Where the key comes from, for messages (never the key itself)."""
        if self._keys is not None:
            return "given keys"
        if os.environ.get(KEY_ENV):
            return KEY_ENV
        if os.environ.get(KEY_FILE_ENV):
            return os.environ[KEY_FILE_ENV]
        return str(self._default_file())

    def missing(self) -> bool:
        """True when the key would have to be made: no key given and no key file yet."""
        if self._keys is not None or os.environ.get(KEY_ENV, "").strip():
            return False
        if os.environ.get(KEY_FILE_ENV, "").strip():
            return False  # a named file that is missing is an error of its own when read
        return self.state_dir is None or not self._default_file().exists()

    def _load(self) -> MultiFernet:
        if self._fernet is None:
            keys = self._keys if self._keys is not None else self._read_keys()
            try:
                self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
                self._primary = base64.urlsafe_b64decode(keys[0].strip().encode())
            except ValueError as exc:
                raise ConfigError(
                    f"the secret key from {self.source()} is not a Fernet key",
                    hint="a key is 32 url-safe base64-encoded bytes; make one with "
                    "python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'",
                ) from exc
        return self._fernet

    def _read_keys(self) -> list[str]:
        value = os.environ.get(KEY_ENV, "").strip()
        if value:
            return [key for key in value.split(",") if key.strip()]
        named = os.environ.get(KEY_FILE_ENV, "").strip()
        if named:
            try:
                text = Path(named).read_text()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the secret key file {named} ({KEY_FILE_ENV}): "
                    f"{exc.strerror or exc}"
                ) from exc
            return [key for key in text.replace(",", "\n").split() if key]
        return [self._default_key()]

    def _default_file(self) -> Path:
        if self.state_dir is None:
            raise ConfigError(f"no secret key: set {KEY_ENV} or {KEY_FILE_ENV}")
        return self.state_dir / KEY_FILE

    def _default_key(self) -> str:
        path = self._default_file()
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            key = Fernet.generate_key()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first: read that one
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(key + b"\n")
        return path.read_text().strip()


Encrypted = tuple[str, str]
"""Something encrypted with the key: what it is (for messages, never a value), its ciphertext."""


def stored_secrets(secrets: list[Secret]) -> list[Encrypted]:
    """The stored secrets as ``check_key`` takes them."""
    return [(f"secret {s.name} of {s.app} in {s.env}", s.ciphertext) for s in secrets]


def check_key(keyring: Keyring, encrypted: list[Encrypted], *, accept_lost: bool = False) -> None:
    """Refuse a key that cannot decrypt every stored secret (and sealed ``run.env`` value), or
    none at all while some are stored (a ``secret.key`` deleted or replaced): a new key made
    silently would leave them unreadable and the next deploy that needs them failing. With
    nothing encrypted the key is still made on first use. ``accept_lost`` starts anyway (a
    missing key file is made anew; nothing is deleted) so the secrets can be stored again with
    ``baepo secret set``. Loads the key, so it is fixed for the life of the process."""
    if not encrypted:
        return
    source = keyring.source()
    if keyring.missing():
        if accept_lost:
            keyring.encrypt("")  # makes the new key file
            return
        raise _refusal(f"the key file {source} is missing", encrypted, source)
    unreadable = []
    for item in encrypted:
        try:
            keyring.decrypt(item[1])
        except SecretUnreadable:
            unreadable.append(item)
    if unreadable and not accept_lost:
        raise _refusal(f"the key from {source} cannot decrypt them", unreadable, source)


def _refusal(why: str, items: list[Encrypted], source: str) -> StateError:
    named = "; ".join(what for what, _ in items[:20])
    more = f"; and {len(items) - 20} more" if len(items) > 20 else ""
    return StateError(
        f"refusing to start: {len(items)} stored value(s) were encrypted with a key, but "
        f"{why}: {named}{more}. A new key would leave them unreadable",
        hint=f"put the key back ({source}), or give it with {KEY_ENV} or {KEY_FILE_ENV}; "
        f"or start with baepo server start {ACCEPT_FLAG} (a new key is made if none exists; "
        "nothing is deleted), then store each secret again with baepo secret set (and deploy "
        "sealed run.env values again)",
    )
