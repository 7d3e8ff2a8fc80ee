"""The router's admin interface: HTTP/1.1 + JSON on a unix socket (owner-only permissions).

``PUT /backends`` replaces the table and its rules (body ``{"backends": [...], "sticky": {...} |
null, "header_routes": [...]}``, validated by ``table.parse_table``, saved by ``state``, applied
by ``runtime``; the table already served is a no-op), ``GET /backends``, ``GET /stats``, ``GET
/inflight``, ``GET /healthz``. Small, bounded and independent of the proxy's hot path; the
client is ``adapter.BuiltinRouter`` (httpx over the socket). Started by ``worker`` on the
socket the master opened.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from baepo.routers.builtin import state
from baepo.routers.builtin.control_http import READ_TIMEOUT, parse_head, serve_connection
from baepo.routers.builtin.runtime import Runtime
from baepo.routers.builtin.table import TableError, parse_table, table_json

log = logging.getLogger("baepo.router")
MAX_HEAD = 64 * 1024
MAX_BODY = 4 * 1024 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS |= {413: "Content Too Large", 500: "Internal Server Error"}


class AdminServer:
    """Serves the admin API for one runtime."""

    def __init__(
        self,
        rt: Runtime,
        state_path: Path,
        info: Callable[[], dict[str, Any]],
        *,
        started: float | None = None,
    ) -> None:
        self.rt = rt
        self.state_path = state_path
        self.info = info
        self.started = time.monotonic() if started is None else started  # for ``uptime``
        self.server: asyncio.AbstractServer | None = None
        self.changing = asyncio.Lock()

    async def start(self, path: Path) -> None:
        if path.exists() or path.is_symlink():
            path.unlink()
        self.server = await asyncio.start_unix_server(self._serve, path=str(path), limit=MAX_HEAD)
        os.chmod(path, 0o600)

    async def serve_on(self, sock: socket.socket) -> None:
        """Serve on an already listening unix socket (the master's); closing leaves its file."""
        keep: dict[str, Any] = {"cleanup_socket": False} if sys.version_info >= (3, 13) else {}
        self.server = await asyncio.start_unix_server(
            self._serve, sock=sock, limit=MAX_HEAD, **keep
        )

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(
            reader,
            writer,
            lambda head: self._one(reader, writer, head),
            lambda: self._send(writer, 400, {"error": "request head too large"}, True),
            "admin",
        )

    async def _one(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
    ) -> bool:
        request = parse_head(head)
        if request is None:
            await self._send(writer, 400, {"error": "malformed request line"}, True)
            return False
        headers, close = request.headers, request.close
        if "transfer-encoding" in headers:
            await self._send(writer, 400, {"error": "send the body with Content-Length"}, True)
            return False
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            await self._send(writer, 413, {"error": f"body must be 0..{MAX_BODY} bytes"}, True)
            return False
        body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT) if length else b""
        status, payload = await self.handle(request.method, request.path, body)
        await self._send(writer, status, payload, close)
        return not close

    async def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Route one admin request; returns (status, JSON payload)."""
        rt = self.rt
        if path == "/backends":
            if method == "GET":
                return 200, table_json(rt.table) | {"version": rt.version}
            if method == "PUT":
                return await self._put_backends(body)
            return 405, {"error": "use GET or PUT on /backends"}
        if method != "GET":
            return 405, {"error": f"use GET on {path}"}
        if path == "/stats":
            return 200, rt.stats()
        if path == "/inflight":
            return 200, {"upstreams": rt.in_flight()}
        if path == "/healthz":
            uptime = round(time.monotonic() - self.started, 3)
            return 200, self.info() | {"uptime": uptime, "table_version": rt.version}
        return 404, {"error": f"no such resource {path!r}"}

    async def _put_backends(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            data = json.loads(body)
        except ValueError as exc:
            return 400, {"error": f"body: not valid JSON ({exc})"}
        try:
            table = parse_table(data)
        except TableError as exc:
            return 400, {"error": str(exc)}
        # One change at a time, so the file always holds the table served last.
        async with self.changing:
            if table == self.rt.table:
                return 200, table_json(table) | {"version": self.rt.version}  # already served
            try:
                # Saved before it is applied; the fsync runs beside the proxy, not in its way.
                await asyncio.to_thread(state.save_table, self.state_path, table)
            except OSError as exc:
                return 500, {"error": f"cannot save the table to {self.state_path}: {exc}"}
            self.rt.apply(table)
        log.info("table version %d: %s", self.rt.version, json.dumps(table_json(table)))
        return 200, table_json(table) | {"version": self.rt.version}

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter, status: int, payload: dict[str, Any], close: bool
    ) -> None:
        body = json.dumps(payload).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
