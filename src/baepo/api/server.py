"""``baepo server``: one process running the controller, the REST API and the dashboard.

With SQLite, one server per state directory: a lock file keeps a second one out. With
PostgreSQL, several replicas may share the database (and a state directory): all serve the
API, the one holding the leader lease drives rollouts (``controller.leader``), and
``GET /api/v1/server`` says which one that is. ``server.json`` tells clients where a server
listens (the leader rewrites it when it takes over). The data plane (router, instances) lives
in other processes and is re-adopted on start. Callers: the CLI (``baepo server start``, and
on demand).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import uvicorn
from fastapi import APIRouter, Request

from baepo import __version__
from baepo.api import discovery, local_credential, orphans, trusted_hosts
from baepo.api.app import create_app
from baepo.api.auth import principal
from baepo.api.runtime import Runtime
from baepo.controller import leader
from baepo.controller.desired import instance_spec
from baepo.controller.loop import Controller
from baepo.controller.reconciler import Reconciler
from baepo.controller.releases import Releases
from baepo.controller.steering import Steering
from baepo.errors import BaepoError, ConfigError, ExternalError, Problem, StateError
from baepo.notify import Notifier
from baepo.platforms.local.platform import LocalPlatform
from baepo.registry import make_platform, make_routers
from baepo.secrets import sealed
from baepo.secrets.keys import Encrypted, Keyring, check_key, stored_secrets
from baepo.secrets.references import SecretScope
from baepo.shell import accounts, statedir
from baepo.store import SqlStore, open_store, redact, sqlite_file, sqlite_url

log = logging.getLogger("baepo.server")

SERVER_FILE = discovery.SERVER_FILE
LOCK_FILE = discovery.LOCK_FILE


def read_server_file(state_dir: Path) -> dict[str, Any] | None:
    """What a running server wrote about itself, or None."""
    return discovery.read_record(state_dir / SERVER_FILE)


def write_server_file(state_dir: Path, info: dict[str, Any]) -> None:
    """Tell clients where this server listens (atomically; replicas may race to write).
    Raises ExternalError naming the file when it cannot be written (a full disk, say)."""
    server_file = state_dir / SERVER_FILE
    tmp = server_file.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(server_file)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise write_error(server_file, exc) from exc


def write_error(path: Path, exc: OSError) -> ExternalError:
    """The error for a state file that cannot be written, naming it (and a full disk)."""
    return ExternalError(
        f"cannot write {path}: {exc.strerror or exc}",
        hint=f"free space on the disk that holds {path.parent}"
        if exc.errno == errno.ENOSPC
        else f"check that {path.parent} is writable",
    )


class Announcement:
    """A leader's duty with a shared state dir: point ``server.json`` at the leading replica,
    so the CLI finds a live server after a failover."""

    def __init__(self, state_dir: Path, info: dict[str, Any]) -> None:
        self.state_dir = state_dir
        self.info = info

    def start(self) -> None:
        with contextlib.suppress(OSError):
            write_server_file(self.state_dir, self.info)

    async def stop(self) -> None:
        return None


router_of_server = APIRouter(prefix="/api/v1", tags=["server"])


@router_of_server.get("/server")
async def server_info(request: Request) -> dict[str, Any]:
    """This replica (pid, URL, version, database) and which replica leads the controller.

    ``leading`` is whether this one drives rollouts; ``leader`` names the replica holding the
    lease (host/pid and API URL), null while nobody does.
    """
    await asyncio.to_thread(principal, request)
    runtime: Runtime = request.app.state.runtime
    controller = runtime.controller
    elector = controller.elector
    return {
        **request.app.state.server_info,
        "leading": controller.leading,
        "leader": await elector.holder(),
        "lease": elector.lease.kind,
        "leader_since": elector.since.isoformat() if elector.since else None,
        "terms": elector.terms,
        "took_over_at": _iso(controller.took_over_at),
        "first_pass_at": _iso(controller.first_pass_at),
        "controller_passes": controller.passes,
        "events_dropped": controller.dropped_events.count,
        "events_dropped_cause": controller.dropped_events.last_cause,
    }


def _iso(unix: float | None) -> str | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC).isoformat()


@contextlib.contextmanager
def exclusive(state_dir: Path) -> Iterator[IO[str]]:
    """Hold the state directory's server lock for the life of the process; the lock file
    holds this server's record (``api.discovery``), its pid at once."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = (state_dir / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        running = discovery.live_server(state_dir) or {}
        raise StateError(
            f"a baepo server already runs for {state_dir} (pid {running.get('pid', '?')})",
            hint="use it, or stop it with baepo server stop",
        ) from exc
    try:
        try:
            discovery.write_lock_record(handle, {"pid": os.getpid()})
        except OSError as exc:
            raise write_error(state_dir / LOCK_FILE, exc) from exc
        try:
            yield handle
        except BaepoError as exc:
            # The CLI that started this server shows why it did not start.
            with contextlib.suppress(OSError):
                record = {"pid": os.getpid(), "error": discovery.error_record(exc)}
                discovery.write_lock_record(handle, record)
            raise
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
    run_as: accounts.Settings | None = None,
    workdir: Path | None = None,
    allowed_secret_env: frozenset[str] = frozenset(),
    adopt_orphans: bool = False,
    accept_lost_secrets: bool = False,
    public_names: Sequence[str] = (),
) -> None:
    """Run the server in the foreground until SIGTERM or Ctrl-C.

    Without ``auth_required`` it listens on loopback only, and a request needs the local
    credential (``local.token`` in the state dir) or an API token; anything else is refused
    before it starts. It answers only requests addressed to its own names
    (``api.trusted_hosts``): its loopback names and ``public_names``. ``run_as`` says which
    OS account a spec's commands run as when the server is root (see ``shell.accounts``).
    ``workdir`` is the app's home (default: the state directory's parent, where the CLI keeps
    ``.baepo``); ``allowed_secret_env`` names the server variables a spec may read.
    A database that does not explain what the state directory shows ran here is refused
    (``api.orphans``) unless ``adopt_orphans``, and a secret key that cannot decrypt the
    stored secrets unless ``accept_lost_secrets`` (``secrets.keys.check_key``).
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
    home = (workdir or state_dir.parent).resolve()
    if not home.is_dir():
        raise ConfigError(
            f"the app folder {home} is not a directory",
            problems=[Problem("--workdir", "must be an existing folder")],
        )
    url = database_url or sqlite_url(state_dir / "state.db")
    # SQLite: one server per state dir. PostgreSQL: replicas may share one; the lease decides
    # which of them acts.
    shared = not url.startswith("sqlite")
    settings = run_as or accounts.Settings.from_environment()
    if os.geteuid() == 0:
        accounts.run_as(settings.default_user, settings, field="--run-user")
    accounts.configure(settings)
    # Everything this process and its children write in the state dir is its owner's alone.
    os.umask(statedir.PRIVATE_UMASK)
    # First: a token others could read is replaced, before secure() would hide that it was.
    try:
        local_token = None if auth_required else local_credential.ensure(state_dir)
    except OSError as exc:
        raise write_error(state_dir / local_credential.TOKEN_FILE, exc) from exc
    opened_up = statedir.secure(state_dir)
    if opened_up:
        log.warning(
            "made %d path(s) of %s private to their owner (0700 folders, 0600 files), e.g. %s",
            len(opened_up),
            state_dir,
            opened_up[0],
        )
    with contextlib.nullcontext() if shared else exclusive(state_dir) as held:
        sock = _bind(host, port)
        bound_host, bound_port = sock.getsockname()[:2]
        api_url = f"http://{_url_host(bound_host)}:{bound_port}"
        identity = f"{socket.gethostname()}/{os.getpid()} {api_url}"
        keyring = Keyring(state_dir)
        # Revisions from before schema 0007 get their secret-looking run.env values sealed.
        store = _open_explaining(
            state_dir, url, adopt_orphans, seal=lambda value: sealed.seal(value, keyring)
        )
        try:
            check_key(keyring, _encrypted(store), accept_lost=accept_lost_secrets)
        except BaepoError:
            store.close()
            raise
        platform = make_platform("local", state_dir)
        router = make_routers(state_dir)
        lease = store.lease(leader.LEASE_NAME, identity, ttl=leader.TTL)
        elector = leader.elector_for(lease, identity, shared=shared)
        controller = Controller(store, platform, router, keyring=keyring, elector=elector)
        lock = threading.Lock()
        releases = Releases(
            store, controller.wake, lock=lock, keyring=controller.reconciler.keyring
        )
        scope = SecretScope(allowed_secret_env, private=(str(state_dir),))
        releases.secret_scope = scope
        # Local instances taken over after a lost database keep their numbers to themselves.
        releases.unrecorded_revision = LocalPlatform(state_dir).highest_revision

        def setup(reconciler: Reconciler) -> None:
            reconciler.secret_scope = scope
            reconciler.gates.secret_scope = scope
            reconciler.analysis.allowed_env = allowed_secret_env
            reconciler.on_watch_trip = lambda app, env, reason: releases.undo(
                app, env, "baepo (rollback guard)", message=reason
            )
            reconciler.gates.state_dir = state_dir
            reconciler.gates.on_failure_undo = lambda app, env, reason: releases.undo(
                app, env, "baepo (checks.after)", message=reason
            )

        controller.configure(setup)
        # A channel's url_env reads only the server variables an admin allowed.
        allowed_environ = {k: v for k, v in os.environ.items() if k in allowed_secret_env}
        controller.while_leading(lambda: Notifier(store, api_url, environ=allowed_environ))
        steering = Steering(store, controller.wake, lock=lock)
        runtime = Runtime(state_dir, store, platform, router, controller, releases, steering)
        runtime.auth_required = auth_required
        runtime.workdir = home
        runtime.local_token = local_token
        runtime.owner = local_credential.owner()
        runtime.hosts = trusted_hosts.names_of(host, bound_port, public_names)
        info = {
            "pid": os.getpid(),
            "url": api_url,
            "version": __version__,
            "database": redact(url),
            "auth": auth_required,
            "workdir": str(home),
            "allowed_secret_env": sorted(allowed_secret_env),
            "started_at": datetime.now(UTC).isoformat(),
        }
        write_server_file(state_dir, info)
        if held is not None:
            try:
                discovery.write_lock_record(held, info)
            except OSError as exc:
                raise write_error(state_dir / LOCK_FILE, exc) from exc
        if shared:
            controller.while_leading(lambda: Announcement(state_dir, info))
        log.warning(
            "baepo server %s listening on %s (state %s, apps in %s, database %s); %s",
            __version__,
            api_url,
            state_dir,
            home,
            redact(url),
            "every request needs an API token"
            if auth_required
            else f"loopback only; requests need an API token or the local credential in "
            f"{state_dir / local_credential.TOKEN_FILE} (they act as {runtime.owner})",
        )
        elector.prime()
        app = create_app(runtime)
        app.state.server_info = info
        app.include_router(router_of_server)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            with contextlib.suppress(FileNotFoundError):
                if read_server_file(state_dir) == info:
                    (state_dir / SERVER_FILE).unlink()
            store.close()


def _open_explaining(
    state_dir: Path, url: str, adopt_orphans: bool, *, seal: Callable[[str], str]
) -> SqlStore:
    """Open the store, refusing (before a missing SQLite file is made anew) a database that
    knows nothing of the apps the state directory shows ran here."""
    traces = [] if adopt_orphans else orphans.find_traces(state_dir)
    database = sqlite_file(url)
    if traces and database is not None and not database.exists():
        found = orphans.unexplained(traces, ())
        if found:
            raise orphans.refusal(found, state_dir, redact(url), database, missing=True)
    store = open_store(url, seal=seal)
    if traces:
        known = [(app.app, app.env) for app in store.list_apps()]
        found = orphans.unexplained(traces, known)
        if found:
            store.close()
            raise orphans.refusal(found, state_dir, redact(url), database, missing=False)
    return store


def _encrypted(store: SqlStore) -> list[Encrypted]:
    """What the secret key must decrypt: every stored secret, and the sealed ``run.env``
    values of each app's stable revision (what a restarted instance needs)."""
    found = stored_secrets(store.all_secrets())
    for app in store.list_apps():
        if app.stable_revision is None:
            continue
        revision = store.get_revision(app.app, app.env, app.stable_revision)
        _, closed = sealed.split_env(instance_spec(revision).env_vars)
        for name, value in sorted(closed.items()):
            what = f"run.env {name} of {app.app} in {app.env} (revision {revision.number})"
            found.append((what, sealed.token(value)))
    return found


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
