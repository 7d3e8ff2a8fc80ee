"""``HAProxyRouter``: a real HAProxy per listener of an app+environment (``core.ports.Router``).

Files live in ``state_dir/routers/haproxy/{app}.{env}.{listener}/``: ``haproxy.cfg`` (rendered
by ``render``), ``haproxy.pid`` (the master), ``admin.sock`` (the runtime API), ``table.json``
(the table served), ``settings.json`` and ``access.log`` (HAProxy's stdout: one JSON line per
request, counted by ``stats``). HAProxy runs detached in master-worker mode, so it outlives the
controller; a new ``HAProxyRouter`` adopts it from the pid file.

Table changes never reload: servers are added (``add server``, then ``enable server``),
reweighted (``set weight``) and drained (``set server ... state drain``) through the admin
socket, in an order that never lowers capacity first: new and heavier servers before lighter
ones, drains last. A drained server is deleted once it has no connection left (checked at the
next change or stats read), so in-flight requests finish on it. Sticky sessions and header
routes (``rules``) add a backend per revision, whose servers change the same way, and a bucket
map swapped at runtime. Only a new listen address, timeouts, new rules or a revision without a
backend of its own rewrite the configuration, applied with a seamless reload (SIGUSR2 to the
master; the listening sockets pass to the new worker). ``table.json`` also records the rules
the configuration was rendered with. Callers: the controller, via ``registry.Routers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import io
import json
import os
import re
import signal
import time
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from baepo.core.ports import Backend, HeaderRoute, RevisionStats, RouterConfig, Sticky
from baepo.errors import ConfigError, ExternalError, Problem
from baepo.routers import proxyfiles
from baepo.routers.builtin.stats import BOUNDS
from baepo.routers.haproxy import rules as routing
from baepo.routers.haproxy.render import (
    BACKEND,
    Server,
    Settings,
    render,
    revision_of,
    revision_servers,
    servers,
)
from baepo.routers.nginx import accesslog
from baepo.routers.proxyfiles import MAIN, read_json, write_json
from baepo.shell import process

PID_FILE = "haproxy.pid"
START_TIMEOUT = 5.0
SUN_PATH_MAX = 97  # HAProxy binds through a temporary name 10 bytes longer


def find_binary(configured: str | None) -> str:
    """The haproxy executable: ``router.binary``, else ``haproxy`` on PATH, else /usr/sbin."""
    hint = "install HAProxy 2.4 or newer (Debian: apt-get install haproxy) or set router.binary"
    return proxyfiles.find_binary("haproxy", configured, hint)


def admin_socket(folder: Path) -> Path:
    """The admin socket (HAProxy binds through a temporary name 10 bytes longer)."""
    return proxyfiles.socket_path(folder, "admin.sock", limit=SUN_PATH_MAX, prefix="haproxy")


async def command(sock: Path, line: str, *, timeout: float = 5.0) -> str:
    """Send one line (commands separated by ``;``) to HAProxy's admin socket; its answer."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(sock)), timeout)
    except (OSError, TimeoutError) as exc:
        raise ExternalError(f"cannot reach HAProxy's admin socket {sock}: {exc}") from exc
    try:
        writer.write(line.encode() + b"\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    except (OSError, TimeoutError) as exc:
        raise ExternalError(f"HAProxy's admin socket {sock} did not answer: {exc}") from exc
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return data.decode(errors="replace")


def parse_stat(text: str) -> list[dict[str, str]]:
    """``show stat`` CSV as one dict per row (the header line starts with ``# ``)."""
    body = text.lstrip("# ").strip()
    if not body:
        return []
    return list(csv.DictReader(io.StringIO(body)))


def count_line(revisions: dict[str, dict[str, Any]], line: bytes) -> None:
    """Add one of HAProxy's JSON log lines to ``revisions`` (see ``render.LOG_FORMAT``)."""
    try:
        entry = json.loads(line)
        revision = revision_of(str(entry["u"]))
        status = int(entry["s"])
        seconds = max(0, int(entry["t"])) / 1000
        answered = int(entry["h"]) >= 0
    except (ValueError, KeyError, TypeError):
        return
    if revision is None:
        return
    counters = revisions.setdefault(str(revision), accesslog.empty_counters())
    counters["requests"] += 1
    counters["status"][accesslog.status_class(status, "0" if answered else "-")] += 1
    counters["buckets"][bisect_left(BOUNDS, seconds)] += 1
    counters["latency_sum"] += seconds


class HAProxyRouter:
    """Runs and drives one HAProxy per listener of an app+environment."""

    def __init__(self, state_dir: Path, *, start_timeout: float = START_TIMEOUT) -> None:
        self.state_dir = Path(state_dir)
        self.start_timeout = start_timeout

    def folder(self, app: str, env: str, listener: str = MAIN) -> Path:
        return proxyfiles.folder(self.state_dir, "haproxy", app, env, listener)

    # -- lifecycle -----------------------------------------------------------------------

    async def ensure_running(self, config: RouterConfig) -> None:
        """Start HAProxy for ``config.listener``, adopt the running one, or reload it when its
        address or timeouts changed. Keeps the table."""
        folder = self.folder(config.app, config.env, config.listener)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExternalError(f"cannot create {folder}: {exc.strerror or exc}") from exc
        binary = find_binary(config.binary)
        wanted = {
            "app": config.app,
            "env": config.env,
            "listener": config.listener,
            "listen": config.listen,
            "upstream_timeout": float(config.upstream_timeout),
            "idle_timeout": float(config.idle_timeout),
            "drain_timeout": float(config.drain_timeout),
            "binary": binary,
        }
        record = read_json(folder / "settings.json")
        pid = self._running_pid(folder)
        if pid is not None and record == wanted:
            return
        table = self._table(folder)
        rules = _stored_rules(folder, read_json(folder / "table.json"))
        await self._write_config(folder, wanted, table, rules)
        if pid is None:
            await self._start(folder, wanted)
        elif record.get("binary") != binary:
            await self._quit(pid, float(record.get("drain_timeout", 30.0)))
            await self._start(folder, wanted)
        else:
            await self._reload(folder, pid, wanted)
        write_json(folder / "settings.json", wanted)

    async def stop(self, app: str, env: str, *, listener: str = MAIN) -> None:
        """Soft stop (SIGUSR1: finish in-flight requests, at most drain_timeout), then SIGKILL.
        Idempotent; other listeners keep running."""
        folder = self.folder(app, env, listener)
        pid = self._running_pid(folder)
        if pid is not None:
            drain = float(read_json(folder / "settings.json").get("drain_timeout", 30.0))
            await self._quit(pid, drain)
        with contextlib.suppress(OSError):
            (folder / PID_FILE).unlink()

    async def listeners(self, app: str, env: str) -> list[str]:
        """Listeners of app+env whose HAProxy runs, ``"main"`` first (pid files + liveness)."""
        return proxyfiles.running_listeners(
            self.state_dir, "haproxy", app, env, lambda path: self._running_pid(path) is not None
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
        """Apply the table through the admin socket. Idempotent.

        Weights and servers change at runtime, never with a reload. Sticky sessions and
        header routes (see ``rules``) are frontend rules: new or changed rules, or a revision
        that has no backend of its own yet, rewrite the configuration (checked with
        ``haproxy -c``) and reload seamlessly first; their bucket map changes at runtime.
        """
        folder = self.folder(app, env, listener)
        pid = self._require(folder, app, env, listener)
        if sticky is not None or header_routes:
            routing.validate(backends, sticky, header_routes)
        sock = admin_socket(folder)
        stored = read_json(folder / "table.json")
        served = _stored_rules(folder, stored)
        rules = None
        if sticky is not None or header_routes:
            revisions = {b.revision for b in backends}
            if (
                served is not None
                and (served.sticky, served.header_routes) == (sticky, tuple(header_routes))
                and revisions <= set(served.revisions)
            ):
                rules = served
            else:
                rules = routing.Rules(sticky, tuple(header_routes), tuple(sorted(revisions)),
                                      folder / routing.MAP_FILE)  # fmt: skip
        buckets = routing.bucket_map(backends) if rules is not None and rules.sticky else {}
        if rules != served:
            record = read_json(folder / "settings.json")
            await self._write_config(folder, record, backends, rules)
            await self._reload(folder, pid, record)
        rows = await self._rows(sock)
        current = rows.get(BACKEND, {})
        wanted = {s.name: s for s in servers(backends)}
        first, then, drain = changes(BACKEND, wanted, current)
        by_revision = revision_servers(backends)
        for revision in rules.revisions if rules is not None else ():
            name = routing.backend_name(revision)
            more = changes(name, {s.name: s for s in by_revision.get(revision, [])},
                           rows.get(name, {}))  # fmt: skip
            first += more[0]
            drain += more[2]
        await self._run(sock, first)
        if rules is not None and rules.sticky and rules == served and buckets != _buckets(stored):
            await self._set_map(sock, rules.map_file, buckets)
        for batch in (then, drain):
            await self._run(sock, batch)
        write_json(
            folder / "table.json",
            {
                "backends": [_backend_json(b) for b in backends],
                "rules": rules.to_json() if rules is not None else None,
                "buckets": {str(k): v for k, v in buckets.items()},
            },
        )
        await self._collect(sock, BACKEND, wanted, current)
        for revision in rules.revisions if rules is not None else ():
            name = routing.backend_name(revision)
            await self._collect(sock, name, {s.name: s for s in by_revision.get(revision, [])},
                                rows.get(name, {}))  # fmt: skip

    async def get_backends(self, app: str, env: str, *, listener: str = MAIN) -> list[Backend]:
        folder = self.folder(app, env, listener)
        self._require(folder, app, env, listener)
        return self._table(folder)

    async def in_flight(self, app: str, env: str, *, listener: str = MAIN) -> dict[str, int]:
        """Requests in flight per upstream address (HAProxy's ``scur``; non-zero only)."""
        folder = self.folder(app, env, listener)
        if self._running_pid(folder) is None:
            return {}
        flights: dict[str, int] = {}
        for rows in (await self._rows(admin_socket(folder))).values():
            for row in rows.values():
                if int(row.get("scur") or 0) > 0 and row.get("addr"):
                    flights[row["addr"]] = flights.get(row["addr"], 0) + int(row["scur"])
        return flights

    async def stats(self, app: str, env: str, *, listener: str = MAIN) -> list[RevisionStats]:
        """Per-revision counters from HAProxy's request log; empty when it is not running."""
        folder = self.folder(app, env, listener)
        if self._running_pid(folder) is None:
            return []
        revisions = await asyncio.to_thread(
            accesslog.update, folder / "access.log", folder / "stats.json", count=count_line
        )
        sock = admin_socket(folder)
        backends = await self._rows(sock)
        flights: dict[int, int] = {}
        for rows in backends.values():
            for name, row in rows.items():
                revision = revision_of(name)
                if revision is not None:
                    flights[revision] = flights.get(revision, 0) + int(row.get("scur") or 0)
        table = self._table(folder)
        await self._collect(sock, BACKEND, {s.name: s for s in servers(table)},
                            backends.get(BACKEND, {}))  # fmt: skip
        by_revision = revision_servers(table)
        for name, rows in backends.items():
            revision = revision_of(name)
            if name != BACKEND and revision is not None:
                wanted = {s.name: s for s in by_revision.get(revision, [])}
                await self._collect(sock, name, wanted, rows)
        return accesslog.to_stats(revisions, flights)

    # -- internals -----------------------------------------------------------------------

    async def _servers(self, sock: Path) -> dict[str, dict[str, str]]:
        """The backend's servers as ``show stat`` reports them, by name."""
        return (await self._rows(sock)).get(BACKEND, {})

    async def _rows(self, sock: Path) -> dict[str, dict[str, dict[str, str]]]:
        """The servers of ``app`` and of each revision's backend, by backend and name."""
        out: dict[str, dict[str, dict[str, str]]] = {}
        for row in parse_stat(await command(sock, "show stat")):
            backend = row.get("pxname") or ""
            if row.get("svname") in ("BACKEND", "FRONTEND"):
                continue
            if backend == BACKEND or revision_of(backend) is not None:
                out.setdefault(backend, {})[row["svname"]] = row
        return out

    async def _set_map(self, sock: Path, map_file: Path, entries: dict[int, str]) -> None:
        """Replace the bucket map in one atomic swap (a new version, filled, committed)."""
        answer = await command(sock, f"prepare map {map_file}")
        match = re.search(r"New version created: (\d+)", answer)
        if match is None:
            raise ExternalError(f"HAProxy refused a map change: {answer.strip()}")
        answer = await command(sock, ";".join(routing.map_commands(map_file, match[1], entries)))
        refused = [line for line in answer.splitlines() if line.strip()]
        if refused:
            raise ExternalError(f"HAProxy refused a map change: {refused[0]}")

    async def _run(self, sock: Path, commands: list[str]) -> None:
        if not commands:
            return
        answer = await command(sock, ";".join(commands))
        refused = [
            line
            for line in answer.splitlines()
            if line.strip()
            and not line.startswith(("New server registered", "Server "))
            and "leaving forced maintenance" not in line
        ]
        if refused:
            raise ExternalError(f"HAProxy refused a change: {refused[0]}", hint=f"sent: {commands}")

    async def _collect(
        self, sock: Path, backend: str, wanted: dict[str, Server], rows: dict[str, dict[str, str]]
    ) -> None:
        """Delete drained servers that have no connection left (their requests finished)."""
        idle = [
            name
            for name, row in rows.items()
            if name not in wanted and row.get("status") in ("DRAIN", "MAINT")
            and int(row.get("scur") or 0) == 0
        ]  # fmt: skip
        for name in idle:
            target = f"{backend}/{name}"
            # A server with idle keep-alive connections refuses deletion; the next call retries.
            await command(sock, f"set server {target} state maint;del server {target}")

    async def _write_config(
        self,
        folder: Path,
        wanted: dict[str, Any],
        table: Sequence[Backend],
        rules: routing.Rules | None,
    ) -> None:
        """Render and check (``haproxy -c``) the configuration (and the bucket map it reads),
        then put it in place."""
        settings = Settings(
            listen=str(wanted["listen"]),
            admin_socket=admin_socket(folder),
            upstream_timeout=float(wanted["upstream_timeout"]),
            idle_timeout=float(wanted["idle_timeout"]),
        )
        tmp = folder / ".haproxy.cfg.new"
        if rules is not None and rules.sticky is not None:
            buckets = folder / ".buckets.map.new"
            buckets.write_text(routing.render_map(routing.bucket_map(table)))
            os.replace(buckets, rules.map_file)
        check = [str(wanted["binary"]), "-c", "-f", str(tmp)]
        tmp.write_text(render(settings, servers(table), rules, table))
        result = await process.run_command(check, timeout=30)
        if result.exit_code != 0 and "idle-close-on-response" in result.output:
            settings = dataclasses.replace(settings, idle_close_on_response=False)  # before 2.6
            tmp.write_text(render(settings, servers(table), rules, table))
            result = await process.run_command(check, timeout=30)
        if result.exit_code != 0:
            lines = [line for line in result.output.splitlines() if "ALERT" in line]
            reason = (lines[0] if lines else result.output.strip()) or "invalid configuration"
            raise ConfigError(
                f"HAProxy rejected the configuration of {folder.name}: {reason}",
                problems=[Problem("router", reason)],
            )
        os.replace(tmp, folder / "haproxy.cfg")

    async def _start(self, folder: Path, wanted: dict[str, Any]) -> None:
        sock = admin_socket(folder)
        with contextlib.suppress(OSError):
            sock.unlink()  # left by a killed HAProxy
        argv = [str(wanted["binary"]), "-W", "-db", "-f", str(folder / "haproxy.cfg")]
        argv += ["-p", str(folder / PID_FILE)]
        pid = process.spawn_detached(argv, cwd=folder, output=folder / "access.log")
        deadline = time.monotonic() + self.start_timeout
        while True:
            process.reap_children()
            if not process.pid_alive(pid):
                raise ExternalError(
                    f"HAProxy of {folder.name} exited at once: {_last_alert(folder)}",
                    hint=f"see {folder / 'access.log'}",
                )
            if self._running_pid(folder) == pid and await _worker_pid(sock) is not None:
                return
            if time.monotonic() > deadline:
                await self._quit(pid, 0.5)
                raise ExternalError(
                    f"HAProxy of {folder.name} is not serving after {self.start_timeout:g} s",
                    hint=f"see {folder / 'access.log'}",
                )
            await asyncio.sleep(0.02)

    async def _reload(self, folder: Path, pid: int, wanted: dict[str, Any]) -> None:
        """Seamless reload: a new worker takes the listening sockets; the table is re-applied
        (servers added at runtime are not in the configuration's old copy)."""
        sock = admin_socket(folder)
        old = await _worker_pid(sock)
        os.kill(pid, signal.SIGUSR2)
        deadline = time.monotonic() + self.start_timeout
        while True:
            worker = await _worker_pid(sock)
            if worker is not None and worker != old:
                return
            if time.monotonic() > deadline:
                raise ExternalError(
                    f"HAProxy of {folder.name} did not reload: {_last_alert(folder)}",
                    hint=f"see {folder / 'access.log'}",
                )
            await asyncio.sleep(0.02)

    async def _quit(self, pid: int, drain: float) -> None:
        """SIGUSR1 (soft stop) to the master; SIGKILL the group after ``drain`` + 2 s."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + drain + 2
        while time.monotonic() < deadline:
            process.reap_children()
            if not process.pid_alive(pid):
                return
            await asyncio.sleep(0.05)
        process.signal_group(pid, signal.SIGKILL)
        for _ in range(40):
            process.reap_children()
            if not process.pid_alive(pid):
                return
            await asyncio.sleep(0.05)

    def _require(self, folder: Path, app: str, env: str, listener: str) -> int:
        pid = self._running_pid(folder)
        if pid is None:
            where = f"{app}.{env}" if listener == MAIN else f"{app}.{env} (listener {listener})"
            raise ExternalError(
                f"the haproxy router of {where} is not running (no live {folder}/{PID_FILE})"
            )
        return pid

    @staticmethod
    def _running_pid(folder: Path) -> int | None:
        """The pid in the pid file when it is alive and runs this folder's configuration."""
        try:
            pid = int((folder / PID_FILE).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if not process.pid_alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return pid
        return pid if os.fsencode(folder / "haproxy.cfg") in cmdline else None

    @staticmethod
    def _table(folder: Path) -> list[Backend]:
        data = read_json(folder / "table.json")
        try:
            return [
                Backend(int(b["revision"]), int(b["weight"]), tuple(b["upstreams"]))
                for b in data.get("backends", [])
            ]
        except (KeyError, TypeError, ValueError):
            return []


async def _worker_pid(sock: Path) -> int | None:
    """The pid of the worker answering on the admin socket, None when nothing answers."""
    try:
        answer = await command(sock, "show info", timeout=1.0)
    except ExternalError:
        return None
    match = re.search(r"^Pid: (\d+)$", answer, re.M)
    return int(match.group(1)) if match else None


def _last_alert(folder: Path) -> str:
    try:
        lines = (folder / "access.log").read_text(errors="replace").splitlines()
    except OSError:
        return "no output"
    alerts = [line for line in lines[-50:] if "ALERT" in line]
    if not alerts:
        return "no output"
    # Every alert of the last run (its pid in parentheses): the last one alone is often the
    # generic "Some protocols failed to start their listeners", the one before it says why
    # ("cannot bind socket (Address already in use)").
    run = alerts[-1].split(":", 1)[0].replace("[ALERT]", "").strip()
    same = [line for line in alerts if run and run in line.split(":", 1)[0]]
    return "; ".join(same) or alerts[-1]


def changes(
    backend: str, wanted: dict[str, Server], current: dict[str, dict[str, str]]
) -> tuple[list[str], list[str], list[str]]:
    """Admin commands that turn ``current`` (``show stat`` rows) into ``wanted``: new servers
    and raised weights, then lowered weights, then drains (capacity never dips first)."""
    first: list[str] = []
    then: list[str] = []
    for name, server in wanted.items():
        row = current.get(name)
        target = f"{backend}/{name}"
        if row is None:
            first.append(f"add server {target} {server.address} weight {server.weight}")
            first.append(f"enable server {target}")
            continue
        weight = int(row.get("weight") or 0)
        if row.get("status") in ("MAINT", "DRAIN"):
            first.append(f"set weight {target} {server.weight}")
            first.append(f"set server {target} state ready")
        elif server.weight > weight:
            first.append(f"set weight {target} {server.weight}")
        elif server.weight < weight:
            then.append(f"set weight {target} {server.weight}")
    drain = [
        f"set server {backend}/{name} state drain"
        for name, row in current.items()
        if name not in wanted and row.get("status") not in ("MAINT", "DRAIN")
    ]
    return first, then, drain


def _stored_rules(folder: Path, stored: dict[str, Any]) -> routing.Rules | None:
    """The rules the running configuration was rendered with (``table.json``), else None."""
    data = stored.get("rules")
    if not isinstance(data, dict):
        return None
    try:
        sticky_data = data.get("sticky")
        sticky = (
            Sticky(sticky_data.get("cookie"), sticky_data.get("header")) if sticky_data else None
        )
        routes = tuple(HeaderRoute(str(h), str(v), int(r)) for h, v, r in data["header_routes"])
        revisions = tuple(int(r) for r in data["revisions"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return routing.Rules(sticky, routes, revisions, folder / routing.MAP_FILE)


def _buckets(stored: dict[str, Any]) -> dict[int, str]:
    try:
        return {int(k): str(v) for k, v in stored.get("buckets", {}).items()}
    except (AttributeError, TypeError, ValueError):
        return {}


def _backend_json(backend: Backend) -> dict[str, Any]:
    return {"revision": backend.revision, "weight": backend.weight,
            "upstreams": list(backend.upstreams)}  # fmt: skip
