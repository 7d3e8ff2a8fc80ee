"""The secret environment variables of an instance, resolved from the spec's ``secrets``.

Each variable comes from a stored secret (decrypted with the keyring), an environment
variable of the server, or a file (relative to the spec's folder; one final newline is
dropped). Errors name the variable and its source, never a value. Callers: the controller's
reconciler, when it starts an instance.
"""

from __future__ import annotations

import os
from pathlib import Path

from baepo.core.ports import Store
from baepo.errors import StateError
from baepo.secrets.keys import Keyring
from baepo.spec.models import Spec
from baepo.spec.secrets import SecretSource


def secret_env(
    store: Store, keyring: Keyring, spec: Spec, app: str, env: str, spec_dir: str | Path
) -> dict[str, str]:
    """``{variable: value}`` for every entry of ``spec.secrets``."""
    values: dict[str, str] = {}
    for variable, entry in spec.secrets.items():
        source = SecretSource(secret=entry) if isinstance(entry, str) else entry
        if source.secret is not None:
            stored = store.get_secret(app, env, source.secret)
            if stored is None:
                raise StateError(
                    f"{variable}: the secret {source.secret} is not set for {app} in {env}",
                    hint=f"baepo secret set {source.secret} -e {env} < FILE",
                )
            values[variable] = keyring.decrypt(stored.ciphertext)
        elif source.env is not None:
            value = os.environ.get(source.env)
            if value is None:
                raise StateError(
                    f"{variable}: the server's environment variable {source.env} is not set"
                )
            values[variable] = value
        elif source.file is not None:
            path = Path(spec_dir) / source.file
            try:
                text = path.read_text()
            except OSError as exc:
                raise StateError(
                    f"{variable}: cannot read the secret file {path}: {exc.strerror or exc}"
                ) from exc
            values[variable] = text[:-1] if text.endswith("\n") else text
        else:
            raise StateError(f"{variable}: a secret needs one of secret, env or file")
    return values
