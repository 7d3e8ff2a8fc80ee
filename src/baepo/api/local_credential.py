"""The local credential: a random token in ``<state dir>/local.token`` only its owner can read.

A server without ``--auth required`` accepts a request only with this token
(``Authorization: Bearer bpl_…``), an API token, or a dashboard session started with it. The
file is mode 0600 and its directory loses every group and other permission, so another user of
the machine can neither read it nor act on the server. The CLI reads the file of the state
directory it works on and sends the token (``cli.client``). Replicas sharing a state directory
(PostgreSQL) share the file: the first one to start writes it, the others read it.

The actor of a local request is the OS user who runs the server, as ``alice@host``
(``owner``). Callers: ``api.server`` (``ensure`` at start), ``api.auth`` (``PREFIX``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import socket
import stat
from pathlib import Path

TOKEN_FILE = "local.token"  # noqa: S105 (a file name)
PREFIX = "bpl_"
"""Local tokens start with this, API tokens with ``bp_``: the server tells them apart."""


def ensure(state_dir: Path) -> str:
    """The local token of ``state_dir``, written when missing.

    A file that others could read (group or other permission bits), that another user owns,
    or that does not hold a local token is replaced by a new token. Idempotent; safe when
    replicas start together (the file is linked into place whole, or not at all).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    _private(state_dir, 0o700)
    path = state_dir / TOKEN_FILE
    found = _read_own(path)
    if found is not None:
        return found
    token = PREFIX + secrets.token_urlsafe(32)
    tmp = state_dir / f".{TOKEN_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, f"{token}\n".encode())
    finally:
        os.close(fd)
    try:
        if path.exists():
            os.replace(tmp, path)  # not ours, or readable by others: a new one
        else:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # another replica may have written one first
    finally:
        tmp.unlink(missing_ok=True)
    written = _read_own(path)
    if written is None:
        raise PermissionError(f"cannot write a private {path}")
    return written


def read(state_dir: Path) -> str | None:
    """The local token of ``state_dir`` if this user can read it, else None."""
    try:
        text = (state_dir / TOKEN_FILE).read_text().strip()
    except OSError:
        return None
    return text if text.startswith(PREFIX) else None


def owner() -> str:
    """Who this process acts as: ``user@host``."""
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = f"uid {os.geteuid()}"
    return f"{user}@{socket.gethostname()}"


def _read_own(path: Path) -> str | None:
    """The token in ``path`` when this user owns the file and nobody else may read it."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    if (
        not stat.S_ISREG(info.st_mode)
        or info.st_uid != os.geteuid()
        or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    ):
        return None
    return read(path.parent)


def _private(path: Path, mode: int) -> None:
    """Take group and other permissions off ``path`` (a directory this user owns)."""
    info = path.stat()
    if info.st_uid == os.geteuid() and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        os.chmod(path, stat.S_IMODE(info.st_mode) & mode)
