"""Starting and signalling processes. The only module that creates processes.

Commands arrive as argv lists built by pure functions elsewhere; nothing here uses a shell.
Callers: platforms (instance supervisors), routers (the router process), the CLI (the
on-demand server).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from baepo.errors import CommandFailed, ExternalError


def python_module_argv(module: str, *args: str) -> list[str]:
    """argv that runs ``python -m module args...`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def spawn_detached(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    output: Path | None = None,
) -> int:
    """Start ``argv`` in a new session (its own process group) that outlives this process.

    Output goes to ``output`` (appended) or /dev/null; stdin is /dev/null. Returns the pid,
    which is also the process-group id. Raises ExternalError when the program cannot start.
    """
    stdout: Any = subprocess.DEVNULL
    handle = None
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        handle = output.open("ab")
        stdout = handle
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise ExternalError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
    finally:
        if handle is not None:
            handle.close()
    _detached.append(proc)
    reap_children()
    return proc.pid


# Detached children this process started: polled so that finished ones do not stay zombies.
_detached: list[subprocess.Popen[bytes]] = []


def reap_children() -> None:
    """Collect exit statuses of finished detached children. Cheap; call it now and then."""
    _detached[:] = [proc for proc in _detached if proc.poll() is None]


def pid_alive(pid: int) -> bool:
    """True when a process with ``pid`` exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to a whole process group. False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError as exc:
        raise ExternalError(f"not allowed to signal process group {pgid}") from exc
    return True


def run(argv: Sequence[str], *, cwd: str | Path | None = None, timeout: float = 60.0) -> str:
    """Run a command to completion; return its output or raise CommandFailed."""
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExternalError(f"cannot run {argv[0]!r}: {exc}") from exc
    if done.returncode != 0:
        raise CommandFailed(list(argv), done.returncode, done.stdout + done.stderr)
    return done.stdout
