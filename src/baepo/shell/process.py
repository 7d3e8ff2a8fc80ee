"""Starting and signalling processes. The only module that creates processes.

Commands arrive as argv lists built by pure functions elsewhere; nothing here uses a shell.
Callers: platforms (instance supervisors), routers (the router process), the CLI (the
on-demand server), the ``job`` metric provider (:func:`run_command`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baepo.errors import CommandFailed, ExternalError
from baepo.shell.accounts import Account


def switch_to(account: Account | None) -> dict[str, Any]:
    """Popen keyword arguments that run the child as ``account`` (nothing for None): its uid,
    its primary group and no supplementary group of the server's."""
    if account is None:
        return {}
    return {"user": account.uid, "group": account.gid, "extra_groups": []}


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

    Output goes to ``output`` (appended; created 0600) or /dev/null; stdin is /dev/null.
    Returns the pid,
    which is also the process-group id. Raises ExternalError when the program cannot start.
    """
    stdout: Any = subprocess.DEVNULL
    handle = None
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        handle = os.fdopen(os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
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


@dataclass(frozen=True)
class CommandResult:
    """How a command run by :func:`run_command` ended.

    ``exit_code`` is the exit status, or minus the signal number when a signal ended it (as
    after a timeout). ``output`` is stdout and stderr interleaved, decoded as UTF-8, at most
    the last ``output_limit`` bytes of it.
    """

    exit_code: int
    output: str
    timed_out: bool


# After the command exits, how long its output may take to drain before leftover processes
# of its group (which may hold the pipe open) are killed.
_DRAIN_GRACE = 0.5
_EXIT_POLL = 0.02


async def run_command(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float,
    output_limit: int = 64 * 1024,
    account: Account | None = None,
    umask: int = -1,
) -> CommandResult:
    """Run ``argv`` without a shell in a new session and wait for it, at most ``timeout`` s.

    With ``account`` it runs as that OS account, with ``HOME``, ``USER`` and ``LOGNAME`` set
    to the account's (see ``accounts``). ``umask`` is the child's (-1: this process's).

    Stdin is /dev/null. On timeout (or when the caller is cancelled) the whole process group
    is killed with SIGKILL; processes the command left running in its group after it exited
    are killed too. Raises ExternalError naming the program when it cannot start (not found,
    not executable, ``cwd`` missing). Never blocks the event loop.
    """
    program = argv[0] if argv else ""
    environment = dict(env) if env is not None else None
    if account is not None:
        environment = {**(environment or os.environ), **account.environment()}
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            umask=umask,
            **switch_to(account),
        )
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        who = f" as {account.name!r}" if account is not None else ""
        raise ExternalError(f"cannot start {program!r}{who}: {reason}") from exc
    tail = bytearray()

    async def collect() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            tail.extend(chunk)
            if len(tail) > 2 * output_limit:
                del tail[:-output_limit]

    reader = asyncio.create_task(collect())
    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            await _exited(proc)
    except TimeoutError:
        timed_out = True
    finally:
        if proc.returncode is not None and not timed_out:
            await asyncio.wait({reader}, timeout=_DRAIN_GRACE)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await _exited(proc)
        await asyncio.wait({reader}, timeout=_DRAIN_GRACE)
        if not reader.done():
            reader.cancel()
    output = bytes(tail[-output_limit:]).decode("utf-8", errors="replace")
    assert proc.returncode is not None
    return CommandResult(exit_code=proc.returncode, output=output, timed_out=timed_out)


async def _exited(proc: asyncio.subprocess.Process) -> None:
    """Return once ``proc`` has exited.

    ``Process.wait()`` is not used: it also waits for the output pipe to close, which a
    process the command left running in the background can keep open indefinitely.
    """
    while proc.returncode is None:
        await asyncio.sleep(_EXIT_POLL)
