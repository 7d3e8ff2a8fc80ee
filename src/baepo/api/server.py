"""``baepo server``: one process running the controller, the REST API (and later the dashboard).

One server per state directory: a lock file keeps a second one out, and ``server.json`` tells
clients where it listens. The data plane (router, instances) lives in other processes and is
re-adopted on start. Callers: the CLI (``baepo server start``, and on demand).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import uvicorn

from baepo import __version__
from baepo.api.app import create_app
from baepo.api.runtime import Runtime
from baepo.controller.loop import Controller
from baepo.controller.releases import Releases
from baepo.controller.steering import Steering
from baepo.errors import ConfigError, ExternalError, Problem, StateError
from baepo.notify import Notifier
from baepo.registry import make_platform, make_routers
from baepo.secrets.keys import Keyring
from baepo.store import open_store, redact, sqlite_url

log = logging.getLogger("baepo.server")

SERVER_FILE = "server.json"
LOCK_FILE = "server.lock"


def read_server_file(state_dir: Path) -> dict[str, Any] | None:
    """What a running server wrote about itself, or None."""
    try:
        data = json.loads((state_dir / SERVER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def exclusive(state_dir: Path) -> Iterator[IO[str]]:
    """Hold the state directory's server lock for the life of the process."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = (state_dir / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        running = read_server_file(state_dir) or {}
        raise StateError(
            f"a baepo server already runs for {state_dir} (pid {running.get('pid', '?')})",
            hint="use it, or stop it with baepo server stop",
        ) from exc
    try:
        yield handle
    finally:
        handle.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ExternalError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="choose another address with --listen",
        ) from exc
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def serve(
    state_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    database_url: str | None = None,
    auth_required: bool = False,
) -> None:
    """Run the server in the foreground until SIGTERM or Ctrl-C.

    Without ``auth_required`` it listens on loopback only and every request without a token
    is the local user's; anything else is refused before it starts.
    """
    if host not in ("127.0.0.1", "localhost", "::1") and not auth_required:
        raise ConfigError(
            f"refusing to listen on {host} without authentication",
            problems=[
                Problem("--listen", "only loopback addresses without --auth required"),
            ],
            hint="create an admin token first (baepo token create --role admin --env '*'), "
            "then start with --auth required",
        )
    state_dir = state_dir.resolve()
    with exclusive(state_dir):
        url = database_url or sqlite_url(state_dir / "state.db")
        store = open_store(url)
        platform = make_platform("local", state_dir)
        router = make_routers(state_dir)
        controller = Controller(store, platform, router, keyring=Keyring(state_dir))
        lock = threading.Lock()
        releases = Releases(
            store, controller.wake, lock=lock, keyring=controller.reconciler.keyring
        )
        controller.reconciler.on_watch_trip = lambda app, env, reason: releases.undo(
            app, env, "baepo (rollback guard)", message=reason
        )
        controller.reconciler.gates.state_dir = state_dir
        controller.reconciler.gates.on_failure_undo = lambda app, env, reason: releases.undo(
            app, env, "baepo (checks.after)", message=reason
        )
        steering = Steering(store, controller.wake, lock=lock)
        runtime = Runtime(state_dir, store, platform, router, controller, releases, steering)
        runtime.notifier = Notifier(store)
        runtime.auth_required = auth_required
        sock = _bind(host, port)
        bound_host, bound_port = sock.getsockname()[:2]
        api_url = f"http://{_url_host(bound_host)}:{bound_port}"
        runtime.notifier.server_url = api_url
        info = {
            "pid": os.getpid(),
            "url": api_url,
            "version": __version__,
            "database": redact(url),
            "auth": auth_required,
            "started_at": datetime.now(UTC).isoformat(),
        }
        server_file = state_dir / SERVER_FILE
        tmp = server_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(server_file)
        log.warning(
            "baepo server %s listening on %s (state %s, database %s); %s",
            __version__,
            api_url,
            state_dir,
            redact(url),
            "every request needs an API token"
            if auth_required
            else "no authentication: loopback only, requests without a token act as the local user",
        )
        config = uvicorn.Config(
            create_app(runtime), log_level="warning", access_log=False, lifespan="on"
        )
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            with contextlib.suppress(FileNotFoundError):
                if read_server_file(state_dir) == info:
                    server_file.unlink()
            store.close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
