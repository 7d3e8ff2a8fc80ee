"""Secret-looking ``run.env`` values, sealed in a revision and opened only to run.

A revision keeps the config it runs, so a spec that writes ``API_TOKEN: s3cr3t`` in ``run.env``
(instead of ``secrets:``) would put the value in the database, the history and every view. On
deploy, :func:`seal_spec` replaces each such value (:func:`baepo.spec.sensitive.is_secret_name`)
in the resolved config and in the spec as written by ``baepo-sealed:v1:<fingerprint>:<token>``:
the Fernet token of the keyring (``secrets.keys``) and its keyed fingerprint, so equal values
give equal config hashes and a changed value shows as changed, and nobody without the key can
read or test a guess against either. An already sealed value is kept as it is, so undo and
``promote-release`` carry the very same value. :func:`open_env` gives the real values back,
only where something runs with them: an instance (as its ``secret_env``, which no platform
record keeps), a hook, a migration.

Callers: ``controller.releases`` (deploy), ``controller.operations`` (versions for the
history), ``controller.reconciler``, ``controller.gates``, ``api.migrate_routes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from baepo.secrets.keys import Keyring
from baepo.spec import sensitive


def seal(value: str, keyring: Keyring) -> str:
    """``value`` sealed: its keyed fingerprint and its Fernet token behind the prefix."""
    return f"{sensitive.SEALED_PREFIX}{keyring.fingerprint(value)}:{keyring.encrypt(value)}"


def seal_spec(data: Mapping[str, Any], keyring: Keyring) -> dict[str, Any]:
    """A copy of a spec mapping (resolved or as written) with every secret-looking ``run.env``
    value sealed, in the base and in every overlay. Values already sealed stay as they are;
    the keyring is not touched when there is nothing to seal."""
    return sensitive.seal_values(data, lambda value: seal(value, keyring))


def split_env(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """``(plain, sealed)``: the variables whose values are not sealed, and those that are."""
    plain = {k: v for k, v in env.items() if not sensitive.is_sealed(v)}
    return plain, {k: v for k, v in env.items() if sensitive.is_sealed(v)}


def token(value: str) -> str:
    """The Fernet token of a sealed value (what the key must decrypt)."""
    return value[len(sensitive.SEALED_PREFIX) :].split(":", 1)[1]


def open_value(value: str, keyring: Keyring) -> str:
    """The real value of a sealed one (a value that is not sealed is returned as it is)."""
    if not sensitive.is_sealed(value):
        return value
    return keyring.decrypt(token(value))


def open_env(env: Mapping[str, str], keyring: Keyring) -> dict[str, str]:
    """``env`` with every sealed value opened: what a process started with it must see."""
    return {name: open_value(value, keyring) for name, value in env.items()}
