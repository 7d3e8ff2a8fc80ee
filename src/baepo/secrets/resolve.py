"""The secret environment variables of an instance, resolved from the spec's ``secrets``.

Each variable comes from a stored secret of the same app and environment (decrypted with the
keyring), an environment variable of the server that an admin allowed by name, or a file inside
the app's folder (one final newline is dropped); ``secrets.references`` holds those rules and
is asked again here, at read time. Errors name the variable and its source, never a value.
Callers: the controller's reconciler (instance start) and gates (hooks), the backup routes.

``secret_versions`` says which version of each variable a revision's instances read, without
any value: a stored secret's version number, or a keyed fingerprint of an environment
variable or file; ``secret_changes`` compares two revisions' versions for history diffs.
Callers: ``controller.operations`` (every new revision), the history API and dashboard.
"""

from __future__ import annotations

import os
from pathlib import Path

from baepo.core.ports import Store
from baepo.errors import StateError
from baepo.secrets import references
from baepo.secrets.keys import Keyring
from baepo.spec.models import Spec


def secret_env(
    store: Store,
    keyring: Keyring,
    spec: Spec,
    app: str,
    env: str,
    spec_dir: str | Path,
    *,
    scope: references.SecretScope,
) -> dict[str, str]:
    """``{variable: value}`` for every entry of ``spec.secrets``, within ``scope`` (the server
    variables an admin allowed, the folders no file may be in)."""
    values: dict[str, str] = {}
    for variable, entry in spec.secrets.items():
        source = references.source_of(entry)
        if source.secret is not None:
            stored = store.get_secret(app, env, source.secret)
            if stored is None:
                raise StateError(
                    f"{variable}: the secret {source.secret} is not set for {app} in {env}",
                    hint=f"baepo secret set {source.secret} -e {env} < FILE",
                )
            values[variable] = keyring.decrypt(stored.ciphertext)
        elif source.env is not None:
            if source.env not in scope.allowed_env:
                raise StateError(
                    f"{variable}: the server does not allow secrets from its environment "
                    f"variable {source.env}",
                    hint=references.allow_hint(source.env),
                )
            value = os.environ.get(source.env)
            if value is None:
                raise StateError(
                    f"{variable}: the server's environment variable {source.env} is not set"
                )
            values[variable] = value
        elif source.file is not None:
            try:
                values[variable] = references.read_secret_file(spec_dir, source.file, scope.private)
            except StateError as exc:
                raise StateError(f"{variable}: {exc}") from exc
        else:
            raise StateError(f"{variable}: a secret needs one of secret, env or file")
    return values


def secret_versions(
    store: Store,
    keyring: Keyring | None,
    spec: Spec,
    app: str,
    env: str,
    spec_dir: str | Path,
    *,
    scope: references.SecretScope,
) -> dict[str, str]:
    """``{variable: version}`` for every entry of ``spec.secrets``, never a value.

    A stored secret gives ``"secret NAME vN"``; an environment variable or a file gives
    ``"env NAME <fingerprint>"`` or ``"file PATH <fingerprint>"`` (a keyed digest, so a changed
    value shows as changed). Something missing or refused is recorded as missing, not raised:
    the deploy's check (``secrets.references``) or the instance start reports it.
    """
    versions: dict[str, str] = {}
    for variable, entry in spec.secrets.items():
        source = references.source_of(entry)
        if source.secret is not None:
            stored = store.get_secret(app, env, source.secret)
            state = f"v{stored.version}" if stored is not None else "(not set)"
            versions[variable] = f"secret {source.secret} {state}"
            continue
        if source.env is not None:
            allowed = source.env in scope.allowed_env
            label, value = f"env {source.env}", os.environ.get(source.env) if allowed else None
        elif source.file is not None:
            label, value = f"file {source.file}", _read(spec_dir, source.file, scope.private)
        else:
            continue
        if value is None:
            versions[variable] = f"{label} (missing)"
        else:
            versions[variable] = f"{label} {keyring.fingerprint(value)}" if keyring else label
    return versions


def _read(spec_dir: str | Path, relative: str, private: tuple[str, ...]) -> str | None:
    try:
        return references.read_secret_file(spec_dir, relative, private)
    except StateError:
        return None


def secret_changes(old: dict[str, str] | None, new: dict[str, str]) -> dict[str, str]:
    """``{variable: "added" | "removed" | "changed" | "unchanged"}`` from ``old`` to ``new``.

    Without an earlier revision (``old`` None) every variable is ``added``.
    """
    before = old or {}
    changes: dict[str, str] = {}
    for variable in sorted(before.keys() | new.keys()):
        if variable not in before:
            changes[variable] = "added"
        elif variable not in new:
            changes[variable] = "removed"
        else:
            changes[variable] = "unchanged" if before[variable] == new[variable] else "changed"
    return changes


def secret_labels(versions: dict[str, str]) -> dict[str, str]:
    """Versions as shown to users: fingerprints dropped (``"env API_KEY"``)."""
    shown: dict[str, str] = {}
    for variable, version in versions.items():
        kind, _, rest = version.partition(" ")
        if kind == "run.env":  # a secret-looking value written in run.env, sealed
            shown[variable] = "run.env, sealed"
            continue
        if kind in ("env", "file") and not rest.endswith("(missing)"):
            rest = rest.rsplit(" ", 1)[0] if " " in rest else rest
        shown[variable] = f"{kind} {rest}"
    return shown
