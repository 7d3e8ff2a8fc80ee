"""Where an instance's secret environment variables come from, and what a reference may name.

``check_secrets`` is the static half of the rule (see ``secrets.references`` for the half that
needs the server): a file is a relative path inside the spec's folder (no ``..``, not
absolute), an environment variable or a stored secret is a plain name. Callers: ``spec.models``
(the ``secrets`` field), ``spec.loader`` (located problems); the controller resolves them when
it starts an instance.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath

from pydantic import Field

from baepo.spec.base import SpecModel

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
"""An environment variable's name."""
SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
"""A stored secret's name (as ``baepo secret set`` accepts it)."""


class SecretSource(SpecModel):
    """One of: a secret stored with `baepo secret set` for the same app and environment, an
    environment variable of the server that an admin allowed, or a file in the spec's folder."""

    secret: str | None = Field(
        default=None,
        description="The name of a secret stored for this app and environment.",
    )
    env: str | None = Field(
        default=None,
        description=(
            "An environment variable of the baepo server; the server must allow it by name "
            "(`baepo server start --allow-secret-env NAME` or `BAEPO_ALLOWED_SECRET_ENV`)."
        ),
    )
    file: str | None = Field(
        default=None,
        description=(
            "A file in the spec's folder whose content (without a final newline) is the value: "
            "a relative path without `..`; symlinks must stay inside the folder."
        ),
    )


SecretValue = str | SecretSource
"""A bare string names a stored secret."""


def check_secrets(
    secrets: Mapping[str, SecretValue],
) -> Iterator[tuple[tuple[int | str, ...], str]]:
    """``(key path, message)`` for every reference that can never be used, whatever the
    server: a file outside the spec's folder, a name that is not one."""
    for variable, entry in secrets.items():
        if isinstance(entry, str):
            if not SECRET_NAME_RE.match(entry):
                yield ("secrets", variable), _bad_secret_name(entry)
            continue
        given = [k for k in ("secret", "env", "file") if getattr(entry, k) is not None]
        if len(given) != 1:
            yield (
                ("secrets", variable),
                (
                    "give exactly one of secret, env or file"
                    + (f" (got {', '.join(given)})" if given else "")
                ),
            )
            continue
        if entry.secret is not None and not SECRET_NAME_RE.match(entry.secret):
            yield ("secrets", variable, "secret"), _bad_secret_name(entry.secret)
        if entry.env is not None and not ENV_NAME_RE.match(entry.env):
            yield (
                ("secrets", variable, "env"),
                (f"{entry.env!r} is not an environment variable name (letters, digits, _)"),
            )
        if entry.file is not None:
            problem = file_problem(entry.file)
            if problem:
                yield ("secrets", variable, "file"), problem


def file_problem(
    path: str, what: str = "a secret file", instead: str = "or store it with baepo secret set"
) -> str | None:
    """Why ``path`` cannot name a file inside the spec's folder, or None."""
    if not path or "\0" in path:
        return "expected a file name relative to the spec's folder"
    pure = PurePosixPath(path)
    if pure.is_absolute():
        return (
            f"{path} is an absolute path: {what} must be inside the spec's folder, named "
            f"relative to it (copy it there, {instead})"
        )
    if ".." in pure.parts:
        return (
            f"{path} goes up with '..': {what} must be inside the spec's folder (copy it "
            f"there, {instead})"
        )
    return None


def _bad_secret_name(name: str) -> str:
    return f"{name!r} is not a stored secret's name (letters, digits, _ . -; at most 128)"
