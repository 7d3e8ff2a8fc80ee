"""``NginxRouter``: real nginx per listener of an app+environment (``core.ports.Router``).

Each listener runs two nginx masters, both with their files in
``state_dir/routers/nginx/{app}.{env}.{listener}/`` (their ``-p`` prefix):

- the **back** (``nginx.conf``, ``nginx.pid``): the routing table (``render.render``), served on
  ``back.sock``, reloaded on every change; ``status.sock`` answers ``/generation`` and
  ``/status``; ``access.log`` (JSON lines, read by ``accesslog``) feeds ``stats``;
- the **front** (``front.conf``, ``front.pid``): listens on the app's address and forwards to
  the back over keep-alive connections (``render.render_front``); reloaded only when the
  address or a timeout changes. It resends a request that meets a back connection closed by a
  reload, so a table change fails no client request.

``table.json`` is the table served, ``settings.json`` the listen address, timeouts, binary and
config generation. Both masters run detached (``shell.process.spawn_detached``, ``daemon
off``) so they outlive the controller; a new ``NginxRouter`` adopts them from the pid files.

Every change renders a whole configuration, checks it with ``nginx -t`` (a rejected one is
never applied; ConfigError quotes nginx), replaces the file atomically, sends SIGHUP to the
master and returns once only new workers accept connections (the back's status server
answers the new generation). An unchanged table reloads nothing.
Callers: the controller, via ``registry.Routers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from baepo.core.ports import Backend, HeaderRoute, RevisionStats, RouterConfig, Sticky
from baepo.errors import BaepoError, ConfigError, ExternalError, Problem
from baepo.routers import proxyfiles
from baepo.routers.nginx import accesslog, procfs
from baepo.routers.nginx.render import Settings, Table, render, render_front, validate
from baepo.routers.proxyfiles import MAIN, read_json, write_json
from baepo.shell import process

BACK_PID = "nginx.pid"
FRONT_PID = "front.pid"
START_TIMEOUT = 5.0
RELOAD_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
SUN_PATH_MAX = 107


def find_binary(configured: str | None) -> str:
    """The nginx executable: ``router.binary``, else ``nginx`` on PATH, else /usr/sbin."""
    hint = "install nginx (Debian: apt-get install nginx-light) or set router.binary"
    return proxyfiles.find_binary("nginx", configured, hint)


def socket_path(folder: Path, name: str) -> Path:
    """A unix socket of the folder's nginx (see ``proxyfiles.socket_path``)."""
    return proxyfiles.socket_path(folder, name, limit=SUN_PATH_MAX, prefix="nginx")


class NginxRouter:
    """Runs and drives one nginx per listener of an app+environment."""

    def __init__(self, state_dir: Path, *, start_timeout: float = START_TIMEOUT) -> None:
        self.state_dir = Path(state_dir)
        self.start_timeout = start_timeout
        # One change at a time per listener (a reload waits for the previous one).
        self._locks: dict[Path, asyncio.Lock] = {}

    def _lock(self, folder: Path) -> asyncio.Lock:
        return self._locks.setdefault(folder, asyncio.Lock())

    def folder(self, app: str, env: str, listener: str = MAIN) -> Path:
        """The prefix folder of a listener's nginx (configuration, pid files, logs)."""
        return proxyfiles.folder(self.state_dir, "nginx", app, env, listener)

    # -- lifecycle -----------------------------------------------------------------------

    async def ensure_running(self, config: RouterConfig) -> None:
        """Start nginx for ``config.listener``, adopt the running one, or reload it when its
        address or timeouts changed (restart when the binary changed). Keeps the table."""
        folder = self.folder(config.app, config.env, config.listener)
        async with self._lock(folder):
            await self._ensure_running(folder, config)

    async def _ensure_running(self, folder: Path, config: RouterConfig) -> None:
        try:
            (folder / "temp").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExternalError(f"cannot create {folder}: {exc.strerror or exc}") from exc
        binary = find_binary(config.binary)
        record = read_json(folder / "settings.json")
        wanted = self._wanted(config, binary)
        pid = self._running_pid(folder)
        front = self._running_pid(folder, FRONT_PID)
        if record.get("binary") != binary:
            for running in (front, pid):
                if running is not None:
                    await self._quit(running, float(record.get("drain_timeout", 30.0)))
            pid = front = None
        table = self._table(folder)
        generation = int(record.get("generation", 0)) + 1
        if front is None:
            self._kill_orphans(folder, FRONT_PID)
        if pid is None:
            self._kill_orphans(folder, BACK_PID)
            await self._start(folder, wanted, generation, table)
            try:
                await self._ensure_front(folder, wanted, front)
            except BaepoError:
                await self.stop(config.app, config.env, listener=config.listener)
                raise
            return
        # The front first: when it cannot take the new address, nothing has changed.
        await self._ensure_front(folder, wanted, front)
        if any(record.get(k) != v for k, v in wanted.items()):
            await self._apply(folder, pid, wanted, generation, table)

    async def stop(self, app: str, env: str, *, listener: str = MAIN) -> None:
        """Graceful quit (SIGQUIT: finish in-flight requests, at most drain_timeout), then
        SIGKILL. Idempotent; other listeners keep running."""
        folder = self.folder(app, env, listener)
        drain = float(read_json(folder / "settings.json").get("drain_timeout", 30.0))
        for name in (FRONT_PID, BACK_PID):  # the front first: it drains its clients
            pid = self._running_pid(folder, name)
            if pid is not None:
                await self._quit(pid, drain)
            self._kill_orphans(folder, name)
            with contextlib.suppress(OSError):
                (folder / name).unlink()

    async def listeners(self, app: str, env: str) -> list[str]:
        """Listeners of app+env whose nginx runs, ``"main"`` first (pid files + liveness)."""
        return proxyfiles.running_listeners(
            self.state_dir,
            "nginx",
            app,
            env,
            lambda path: bool(self._running_pid(path) and self._running_pid(path, FRONT_PID)),
        )

    # -- table and stats -----------------------------------------------------------------

    async def set_backends(
        self,
        app: str,
        env: str,
        backends: Sequence[Backend],
        *,
        sticky: Sticky | None = None,
        header_routes: Sequence[HeaderRoute] = (),
        listener: str = MAIN,
    ) -> None:
        """Render, check and reload; returns once new workers serve the table. Idempotent:
        the table already served reloads nothing. ConfigError names what nginx rejects."""
        table = validate(backends, sticky, header_routes)
        folder = self.folder(app, env, listener)
        async with self._lock(folder):
            pid = self._require(folder, app, env, listener)
            if self._table(folder).same_routing(table):
                return
            record = read_json(folder / "settings.json")
            wanted = {k: v for k, v in record.items() if k != "generation"}
            generation = int(record.get("generation", 0)) + 1
            await self._apply(folder, pid, wanted, generation, table)

    async def get_backends(self, app: str, env: str, *, listener: str = MAIN) -> list[Backend]:
        folder = self.folder(app, env, listener)
        self._require(folder, app, env, listener)
        return list(self._table(folder).backends)

    async def get_rules(
        self, app: str, env: str, *, listener: str = MAIN
    ) -> tuple[Sticky | None, tuple[HeaderRoute, ...]]:
        """The sticky rule and header routes nginx applies now."""
        folder = self.folder(app, env, listener)
        self._require(folder, app, env, listener)
        table = self._table(folder)
        return table.sticky, table.header_routes

    async def in_flight(self, app: str, env: str, *, listener: str = MAIN) -> dict[str, int]:
        """Open connections from nginx's back workers per upstream address (non-zero only).

        Counted from /proc (TCP connections of the master's workers other than those of
        clients): this includes a current worker's idle keep-alive connections; an upstream
        removed from the table keeps its count until the old workers serving requests to it
        finish them and exit.
        """
        folder = self.folder(app, env, listener)
        pid = self._running_pid(folder)
        if pid is None:
            return {}
        listen = str(read_json(folder / "settings.json").get("listen", ""))
        port = int(listen.rpartition(":")[2] or 0)
        return await asyncio.to_thread(procfs.connections, pid, port)

    async def stats(self, app: str, env: str, *, listener: str = MAIN) -> list[RevisionStats]:
        """Per-revision counters from the access log; empty when nginx is not running."""
        folder = self.folder(app, env, listener)
        pid = self._running_pid(folder)
        if pid is None:
            return []

        def reopen() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)

        revisions = await asyncio.to_thread(
            accesslog.update, folder / "access.log", folder / "stats.json", reopen=reopen
        )
        flights = await self.in_flight(app, env, listener=listener)
        by_revision: dict[int, int] = {}
        for backend in self._table(folder).backends:
            by_revision[backend.revision] = sum(flights.get(a, 0) for a in backend.upstreams)
        return accesslog.to_stats(revisions, by_revision)

    # -- internals -----------------------------------------------------------------------

    @staticmethod
    def _wanted(config: RouterConfig, binary: str) -> dict[str, Any]:
        return {
            "app": config.app,
            "env": config.env,
            "listener": config.listener,
            "listen": config.listen,
            "upstream_timeout": float(config.upstream_timeout),
            "idle_timeout": float(config.idle_timeout),
            "drain_timeout": float(config.drain_timeout),
            "binary": binary,
        }

    @staticmethod
    def _settings(folder: Path, wanted: dict[str, Any], generation: int) -> Settings:
        user = None
        if os.geteuid() == 0:
            # Workers run as the owner of the state folder, who can reach the temp paths.
            try:
                user = pwd.getpwuid(folder.stat().st_uid).pw_name
            except (KeyError, OSError):
                user = "root"
        return Settings(
            folder=folder,
            listen=str(wanted["listen"]),
            status_socket=socket_path(folder, "status.sock"),
            back_socket=socket_path(folder, "back.sock"),
            upstream_timeout=float(wanted["upstream_timeout"]),
            idle_timeout=float(wanted["idle_timeout"]),
            drain_timeout=float(wanted["drain_timeout"]),
            connect_timeout=CONNECT_TIMEOUT,
            user=user,
            workers=max(1, min(4, os.cpu_count() or 1)),
            generation=generation,
            name=f"{wanted['app']}.{wanted['env']} {wanted['listener']}",
        )

    async def _check(self, binary: str, folder: Path, conf: Path) -> None:
        """``nginx -t`` of ``conf``; ConfigError quoting nginx when it is rejected."""
        argv = [binary, "-t", "-q", "-p", f"{folder}/", "-e", str(folder / "error.log")]
        result = await process.run_command([*argv, "-c", str(conf)], timeout=30)
        if result.exit_code != 0:
            lines = [line for line in result.output.splitlines() if "[emerg]" in line]
            reason = (lines[0] if lines else result.output.strip()).replace("nginx: ", "")
            raise ConfigError(
                f"nginx rejected the configuration of {folder.name}: {reason}",
                problems=[Problem("router", reason)],
            )

    async def _prepare(
        self, folder: Path, wanted: dict[str, Any], generation: int, table: Table
    ) -> tuple[Settings, Path]:
        """Render and ``nginx -t`` the configuration; the checked file, not yet in place."""
        settings = self._settings(folder, wanted, generation)
        tmp = folder / ".nginx.conf.new"
        tmp.write_text(render(settings, table))
        await self._check(str(wanted["binary"]), folder, tmp)
        return settings, tmp

    def _commit(self, folder: Path, wanted: dict[str, Any], generation: int, table: Table) -> None:
        write_json(folder / "table.json", table.to_json())
        write_json(folder / "settings.json", {**wanted, "generation": generation})

    async def _apply(
        self, folder: Path, pid: int, wanted: dict[str, Any], generation: int, table: Table
    ) -> None:
        """Check, swap in and reload; return once only new workers accept connections."""
        settings, tmp = await self._prepare(folder, wanted, generation, table)
        conf = folder / "nginx.conf"
        previous = conf.read_bytes() if conf.exists() else b""
        old_workers = procfs.serving_workers(pid)
        errors = self._size(folder / "error.log")
        os.replace(tmp, conf)
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while True:
            served = await self._generation(settings.status_socket)
            if served == generation and not procfs.serving_workers(pid) & old_workers:
                break
            failure = self._new_errors(folder / "error.log", errors)
            if failure or time.monotonic() > deadline:
                tmp.write_bytes(previous)
                os.replace(tmp, conf)
                raise ExternalError(
                    f"nginx of {folder.name} did not load generation {generation}: "
                    + (failure or f"no new workers within {RELOAD_TIMEOUT:g} s"),
                    hint=f"see {folder / 'error.log'}",
                )
            await asyncio.sleep(0.005)
        self._commit(folder, wanted, generation, table)

    async def _start(
        self, folder: Path, wanted: dict[str, Any], generation: int, table: Table
    ) -> None:
        settings, tmp = await self._prepare(folder, wanted, generation, table)
        os.replace(tmp, folder / "nginx.conf")
        for sock in (settings.status_socket, settings.back_socket):
            with contextlib.suppress(OSError):
                if sock is not None:
                    sock.unlink()  # left by a killed nginx; would block the bind
        errors = self._size(folder / "error.log")
        argv = [str(wanted["binary"]), "-p", f"{folder}/", "-e", str(folder / "error.log")]
        argv += ["-c", str(folder / "nginx.conf"), "-g", "daemon off;"]
        pid = process.spawn_detached(argv, cwd=folder, output=folder / "nginx.out")
        deadline = time.monotonic() + self.start_timeout
        while True:
            process.reap_children()
            if not process.pid_alive(pid) or time.monotonic() > deadline:
                reason = self._new_errors(folder / "error.log", errors) or (
                    "it exited at once"
                    if not process.pid_alive(pid)
                    else f"not serving within {self.start_timeout:g} s"
                )
                if process.pid_alive(pid):
                    await self._quit(pid, 0.5)
                raise ExternalError(
                    f"nginx of {folder.name} could not start: {reason}",
                    hint=f"see {folder / 'error.log'}",
                )
            if (
                await self._generation(settings.status_socket) == generation
                and self._running_pid(folder) == pid
            ):
                break
            await asyncio.sleep(0.02)
        self._commit(folder, wanted, generation, table)

    async def _ensure_front(self, folder: Path, wanted: dict[str, Any], pid: int | None) -> None:
        """Start the front, or reload it when its configuration changed (listen address,
        timeouts); a front already serving ``front.conf``'s text is left alone."""
        settings = self._settings(folder, wanted, 0)
        text = render_front(settings)
        conf = folder / "front.conf"
        if pid is not None and conf.exists() and conf.read_text() == text:
            return
        tmp = folder / ".front.conf.new"
        tmp.write_text(text)
        await self._check(str(wanted["binary"]), folder, tmp)
        errors = self._size(folder / "front-error.log")
        if pid is not None:
            previous = conf.read_bytes() if conf.exists() else b""
            old_workers = procfs.serving_workers(pid)
            os.replace(tmp, conf)
            os.kill(pid, signal.SIGHUP)
        else:
            os.replace(tmp, conf)
            argv = [
                str(wanted["binary"]),
                "-p",
                f"{folder}/",
                "-e",
                str(folder / "front-error.log"),
            ]
            argv += ["-c", str(conf), "-g", "daemon off;"]
            pid = process.spawn_detached(argv, cwd=folder, output=folder / "nginx.out")
            previous, old_workers = b"", set()
        deadline = time.monotonic() + max(self.start_timeout, RELOAD_TIMEOUT)
        while True:
            process.reap_children()
            workers = procfs.serving_workers(pid)
            if (
                self._running_pid(folder, FRONT_PID) == pid
                and workers
                and not workers & old_workers
                and await _accepts(settings.listen)
            ):
                return
            failure = self._new_errors(folder / "front-error.log", errors)
            if not process.pid_alive(pid) and not failure:
                failure = "it exited at once"
            if failure or time.monotonic() > deadline:
                if old_workers:
                    tmp.write_bytes(previous)
                    os.replace(tmp, conf)
                elif process.pid_alive(pid):
                    await self._quit(pid, 0.5)
                raise ExternalError(
                    f"nginx front of {folder.name} could not serve {settings.listen}: "
                    + (failure or "not serving in time"),
                    hint=f"see {folder / 'front-error.log'}",
                )
            await asyncio.sleep(0.01)

    @staticmethod
    def _size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    @staticmethod
    def _new_errors(log: Path, offset: int) -> str:
        """The first [emerg] line nginx wrote to ``log`` after ``offset``, else ''."""
        try:
            with log.open("rb") as handle:
                handle.seek(offset)
                text = handle.read().decode(errors="replace")
        except OSError:
            return ""
        for line in text.splitlines():
            if "[emerg]" in line:
                return line.split("[emerg]", 1)[1].strip()
        return ""

    @staticmethod
    async def _generation(sock: Path) -> int | None:
        """The generation the status server answers, None when it does not answer."""
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(sock)), 1.0)
        except (OSError, TimeoutError):
            return None
        try:
            writer.write(b"GET /generation HTTP/1.0\r\nHost: status\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), 1.0)
        except (OSError, TimeoutError):
            return None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200") or not body.strip().isdigit():
            return None
        return int(body.strip())

    async def _quit(self, pid: int, drain: float) -> None:
        """SIGQUIT the master; SIGKILL the group if it is still alive after ``drain`` + 2 s."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + drain + 2
        while time.monotonic() < deadline:
            process.reap_children()
            if not process.pid_alive(pid):
                break
            await asyncio.sleep(0.05)
        else:
            process.signal_group(pid, signal.SIGKILL)
            for _ in range(40):
                process.reap_children()
                if not process.pid_alive(pid):
                    break
                await asyncio.sleep(0.05)
        for child in procfs.children(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)

    @staticmethod
    def _kill_orphans(folder: Path, name: str) -> None:
        """SIGKILL the workers a killed master left behind (its process group, still holding
        the listening sockets), so that a new master can bind them."""
        try:
            pgid = int((folder / name).read_text().strip())
        except (OSError, ValueError):
            return
        for pid in procfs.group(pgid):
            if procfs.title(pid).startswith("nginx: "):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _require(self, folder: Path, app: str, env: str, listener: str) -> int:
        pid = self._running_pid(folder)
        if pid is None:
            where = f"{app}.{env}" if listener == MAIN else f"{app}.{env} (listener {listener})"
            raise ExternalError(
                f"the nginx router of {where} is not running (no live {folder}/nginx.pid)"
            )
        return pid

    @staticmethod
    def _running_pid(folder: Path, name: str = "nginx.pid") -> int | None:
        """The pid in ``name`` when it is alive and is this folder's nginx master."""
        try:
            pid = int((folder / name).read_text().strip())
        except (OSError, ValueError):
            return None
        if not process.pid_alive(pid):
            return None
        name = procfs.title(pid)
        if name and ("master process" not in name or str(folder) not in name):
            return None
        return pid

    def _table(self, folder: Path) -> Table:
        data = read_json(folder / "table.json")
        try:
            return Table.from_json(data)
        except (KeyError, TypeError, ValueError):
            return Table()


async def _accepts(listen: str) -> bool:
    """True when ``host:port`` accepts a TCP connection."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host in ("0.0.0.0", "::", "*"):
        host = "127.0.0.1"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
