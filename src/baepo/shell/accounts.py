"""The OS account that every command of a spec runs as (``run.user``).

A spec is written by anyone holding a deployer token for one environment, so what it runs
(instances, hooks, checks, migrations, command backups, ``job`` metrics) must not be able to
read the server's state directory, whose ``secret.key`` decrypts every environment's secrets.
When the server runs as root, spec commands therefore run as ``run.user`` (default: the
server's ``--run-user``, ``nobody`` unless set), never as root unless the server was started
with ``--allow-root-instances``. A server that is not root cannot switch users: spec commands
run as the server's own account, and ``run.user`` may only name that account.

Stdlib only (the instance supervisor imports it). Callers: ``process`` (switching), the local
platform (instances), the controller (deploy-time check), ``baepo server start`` (settings).
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from baepo.errors import ConfigError

DEFAULT_USER = "nobody"
FIELD = "run.user"

INHERITED = frozenset(
    {"PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SSL_CERT_FILE", "SSL_CERT_DIR"}
)
"""The server variables every spec command inherits: where programs are, language, time zone
and the CA bundle. Nothing else of the server's environment reaches a spec's code: not
``BAEPO_SECRET_KEY``, ``BAEPO_DATABASE_URL`` or a token, and not a variable an admin allowed
(a spec names those in ``secrets:``, which passes each one under the spec's own name)."""


def inherited_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` (the server's) that a spec command starts with: ``INHERITED``
    and the locale's ``LC_*``. Pure."""
    return {k: v for k, v in environ.items() if k in INHERITED or k.startswith("LC_")}


@dataclass(frozen=True)
class Account:
    """A resolved OS account: what a child process switches to before it runs."""

    name: str
    uid: int
    gid: int
    home: str

    def environment(self) -> dict[str, str]:
        """The variables that name the account, set over the server's own."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}


@dataclass(frozen=True)
class Settings:
    """The server's choices: the account for specs without ``run.user``, and whether an
    account with uid 0 may be used at all."""

    default_user: str = DEFAULT_USER
    allow_root: bool = False

    @classmethod
    def from_environment(cls) -> Settings:
        """The settings ``BAEPO_RUN_USER`` and ``BAEPO_ALLOW_ROOT_INSTANCES`` give (the
        variables ``baepo server start`` also reads for its options)."""
        allow = os.environ.get("BAEPO_ALLOW_ROOT_INSTANCES", "").strip().lower()
        return cls(
            default_user=os.environ.get("BAEPO_RUN_USER") or DEFAULT_USER,
            allow_root=allow in ("1", "true", "yes", "on"),
        )


_settings: Settings | None = None


def configure(settings: Settings | None) -> None:
    """Set the process-wide settings (``baepo server start`` does, once, before serving);
    None goes back to the environment's."""
    global _settings
    _settings = settings


def current() -> Settings:
    """The configured settings, or else the environment's."""
    return _settings if _settings is not None else Settings.from_environment()


def run_as(
    user: str | None, settings: Settings | None = None, *, field: str = FIELD
) -> Account | None:
    """The account spec commands run as; None when no switch is needed (the server is not
    root, and ``user`` is absent or the server's own account; or root is allowed and chosen).

    Raises ConfigError located at ``field`` for an unknown account, for root without
    ``--allow-root-instances``, and for a non-root server asked to switch to someone else.
    ``settings`` default to the process-wide ones.
    """
    settings = settings or current()
    euid = os.geteuid()
    if euid != 0:
        if user is None:
            return None
        me = _name_of(euid)
        found = _lookup(user, field)
        if found.pw_uid == euid:
            return None
        raise _error(
            field,
            f"the server runs as {me!r}, so the spec's commands run as {me!r}; it cannot "
            f"switch to {user!r}",
            hint=f"remove run.user (or set it to {me!r}), or run the server as root",
        )
    found = _lookup(user or settings.default_user, field)
    if found.pw_uid == 0 and not settings.allow_root:
        raise _error(
            field,
            f"{found.pw_name!r} has uid 0: the spec's commands would be able to read the "
            "state directory and its master key, so this server refuses it",
            hint="name an unprivileged account; an admin who accepts the risk starts the "
            "server with --allow-root-instances",
        )
    if found.pw_uid == euid:
        return None  # root, allowed: nothing to switch
    return Account(name=found.pw_name, uid=found.pw_uid, gid=found.pw_gid, home=found.pw_dir)


def may_run(account: Account, program: str) -> bool:
    """Whether ``account`` (with no supplementary group, as spec commands run) may execute
    the file ``program``: search permission on every folder on its way, and on the way to
    the file a symlink points to, and execute permission on that file."""
    path = Path(os.path.abspath(program))
    target = Path(os.path.realpath(path))
    folders = {*path.parents, *target.parents}
    if not all(_allowed(account, folder, stat.S_IXUSR) for folder in folders):
        return False
    return target.is_file() and _allowed(account, target, stat.S_IXUSR)


def _allowed(account: Account, path: Path, owner_bit: int) -> bool:
    """Whether ``account`` has the permission ``owner_bit`` names (as an owner's bit) on
    ``path``, by the owner, group and other bits that apply to it."""
    try:
        info = path.stat()
    except OSError:
        return False
    if account.uid == 0:
        return True
    if info.st_uid == account.uid:
        return bool(info.st_mode & owner_bit)
    if info.st_gid == account.gid:
        return bool(info.st_mode & (owner_bit >> 3))
    return bool(info.st_mode & (owner_bit >> 6))


def _lookup(name: str, field: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise _error(
            field,
            f"no account {name!r} on this machine",
            hint=f"create it (useradd --system {name}) or name an existing account",
        ) from None


def _name_of(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _error(field: str, message: str, *, hint: str) -> ConfigError:
    return ConfigError(f"{field}: {message}", hint=hint)
