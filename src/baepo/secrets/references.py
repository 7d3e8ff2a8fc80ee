"""What a spec's secret reference may name, checked before a deploy and again at read time.

A secret reference names one of three things, and nothing else:

- a secret stored for the same app and environment (``baepo secret set``);
- a file inside the app's folder (the server's ``--workdir``): a relative path without ``..``
  whose real path, symlinks followed, stays inside that folder;
- an environment variable of the server that an admin allowed by name
  (``baepo server start --allow-secret-env NAME`` or ``BAEPO_ALLOWED_SECRET_ENV``).

The allowed names are the only server variables a spec reaches in any way: a secret's ``env``,
a ``url_env`` (notifications, backups) and a ``{{env.NAME}}`` placeholder (HTTP checks, metric
queries, URLs and headers). ``reference_problems`` is the deploy-time check (located problems,
so the API answers 422 naming ``secrets.X.env`` and the like); ``read_secret_file`` is the
read-time one, done on the opened file so a symlink made after the deploy cannot lead it out.
Callers: ``controller.releases`` (deploy, dry run, undo), ``api.backup_routes``,
``secrets.resolve``, ``gates.run``, ``analysis.measure`` and ``cli.server_commands`` (the
allowed names).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from baepo.core.ports import Store
from baepo.errors import ConfigError, Problem, StateError
from baepo.spec.models import Spec
from baepo.spec.secrets import ENV_NAME_RE, SecretSource

ALLOW_ENV_VAR = "BAEPO_ALLOWED_SECRET_ENV"
"""The server's environment variable listing the allowed names (comma or space separated)."""
ALLOW_FLAG = "--allow-secret-env"
MAX_FILE_BYTES = 1 << 20
"""A secret file larger than this is refused (a secret is a password or a key, not a disk)."""


@dataclass(frozen=True)
class SecretScope:
    """What the specs of one server may reach besides their app+environment's stored
    secrets. The server builds it at start; the deploy check and every read use it."""

    allowed_env: frozenset[str] = frozenset()
    """The server variables an admin allowed specs to name."""
    private: tuple[str, ...] = ()
    """Folders no spec may name a file in, even inside the app's folder: the server's state
    directory (the master key, the database)."""


def allow_hint(name: str) -> str:
    return (
        f"an admin allows it when starting the server: baepo server start {ALLOW_FLAG} {name} "
        f"(or {ALLOW_ENV_VAR}={name} in the server's environment); a running server must be "
        "restarted (baepo server stop)"
    )


def allowed_env_names(flags: Iterable[str], environ: str | None) -> frozenset[str]:
    """The names from ``--allow-secret-env`` (each may also be a comma list) and from
    ``BAEPO_ALLOWED_SECRET_ENV``; a ConfigError naming the option when one is not a name."""
    problems: list[Problem] = []
    names: set[str] = set()
    for where, raw in [*((ALLOW_FLAG, f) for f in flags), (ALLOW_ENV_VAR, environ or "")]:
        for name in re.split(r"[,\s]+", raw.strip()):
            if not name:
                continue
            if ENV_NAME_RE.match(name):
                names.add(name)
            else:
                problems.append(
                    Problem(where, f"{name!r} is not an environment variable name (A-Z, 0-9, _)")
                )
    if problems:
        raise ConfigError("bad list of allowed secret variables", problems=problems)
    return frozenset(names)


ENV_PLACEHOLDER = re.compile(r"\{\{\s*env\.([A-Za-z0-9_.-]*)\s*\}\}")
"""A ``{{env.NAME}}`` placeholder, as ``gates.run`` and ``analysis.measure`` fill them."""


def source_of(entry: str | SecretSource) -> SecretSource:
    return SecretSource(secret=entry) if isinstance(entry, str) else entry


def reference_problems(
    store: Store, spec: Spec, app: str, env: str, home: str | Path, scope: SecretScope
) -> list[Problem]:
    """Every secret reference, server variable or file of ``spec`` that a deploy of ``app``
    to ``env`` may not use."""
    problems = server_env_problems(spec, scope.allowed_env)
    for variable, entry in spec.secrets.items():
        source = source_of(entry)
        if source.secret is not None:
            if store.get_secret(app, env, source.secret) is None:
                where = f"secrets.{variable}" + ("" if isinstance(entry, str) else ".secret")
                problems.append(
                    Problem(
                        where,
                        f"the secret {source.secret} is not set for {app} in {env} (a stored "
                        f"secret belongs to one app and environment); set it with: "
                        f"baepo secret set {source.secret} -e {env}",
                    )
                )
        elif source.env is not None:
            if source.env not in scope.allowed_env:
                problems.append(Problem(f"secrets.{variable}.env", _not_allowed(source.env)))
        elif source.file is not None:
            try:
                read_secret_file(home, source.file, scope.private)
            except StateError as exc:
                problems.append(Problem(f"secrets.{variable}.file", str(exc)))
    return problems


def server_env_problems(spec: Spec, allowed_env: Collection[str]) -> list[Problem]:
    """Each ``url_env`` and ``{{env.NAME}}`` of ``spec`` that names a server variable an admin
    did not allow (a backup's ``url_env`` may also name a ``run.env`` or ``secrets`` variable)."""
    own = {*spec.run.env, *spec.secrets}
    problems: list[Problem] = []
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    for path, value in _strings(data, ""):
        if path == "secrets" or path.startswith("secrets."):
            continue
        if path.endswith(".url_env") or path == "url_env":
            if value not in allowed_env and not (path.startswith("backup.") and value in own):
                problems.append(Problem(path, _not_allowed(value)))
            continue
        for name in ENV_PLACEHOLDER.findall(value):
            if name not in allowed_env:
                problems.append(Problem(path, f"{{{{env.{name}}}}}: {_not_allowed(name)}"))
    return problems


def _not_allowed(name: str) -> str:
    return f"the server does not allow specs to read its environment variable {name}; " + (
        allow_hint(name)
    )


def _strings(data: object, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(data, str):
        yield path, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _strings(value, f"{path}[{index}]")


def check_references(
    store: Store, spec: Spec, app: str, env: str, home: str | Path, scope: SecretScope
) -> None:
    """Raise a ConfigError (one located problem per reference) unless every one may be used."""
    problems = reference_problems(store, spec, app, env, home, scope)
    if problems:
        raise ConfigError(
            f"the spec's secrets cannot be used for {app} in {env}", problems=problems
        )


def read_secret_file(home: str | Path, relative: str, private: Iterable[str] = ()) -> str:
    """The text of ``relative`` inside ``home`` (one final newline dropped), or a StateError.

    The path must be relative without ``..``; the file is opened first and then proven to be
    the one its real path names, inside the real ``home`` and outside every ``private``
    folder, so a symlink swapped in at any moment cannot lead the read out. Only regular
    files, up to ``MAX_FILE_BYTES``.
    """
    if not relative or os.path.isabs(relative) or ".." in Path(relative).parts:
        raise StateError(
            f"{relative!r} is not a relative path inside the app's folder (no .., no /...)"
        )
    root = os.path.realpath(home)
    path = os.path.join(root, relative)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise StateError(
            f"cannot read {relative} in the app's folder: {exc.strerror or exc}"
        ) from exc
    try:
        opened = os.fstat(fd)
        real = os.path.realpath(path)
        inside = _within(real, root) and real != root
        named = _same_file(real, opened)
        if not inside or not named:
            raise StateError(
                f"{relative} leads out of the app's folder (a symlink?): a secret file must "
                "be inside the folder"
            )
        if any(_within(real, os.path.realpath(folder)) for folder in private):
            raise StateError(
                f"{relative} is in the server's state directory, which no spec may read"
            )
        if not stat.S_ISREG(opened.st_mode):
            raise StateError(f"{relative} is not a regular file")
        if opened.st_size > MAX_FILE_BYTES:
            raise StateError(f"{relative} is larger than {MAX_FILE_BYTES} bytes")
        data = os.read(fd, MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise StateError(f"cannot read {relative}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    text = data.decode(errors="replace")
    return text[:-1] if text.endswith("\n") else text


def inside(path: str | Path, home: str | Path) -> bool:
    """Whether ``path``, symlinks followed, is inside ``home`` (for files that are not read
    here, e.g. a release archive; a reader must use ``read_secret_file``)."""
    root = os.path.realpath(home)
    real = os.path.realpath(path)
    return _within(real, root) and real != root


def _within(path: str, folder: str) -> bool:
    return os.path.commonpath([folder, path]) == folder


def _same_file(path: str, opened: os.stat_result) -> bool:
    try:
        named = os.stat(path)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)
