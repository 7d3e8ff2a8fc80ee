"""Small asyncio HTTP/1.1 upstream servers for the router's integration tests.

``UpstreamServer`` runs in a background thread with its own event loop and serves:
``/hello`` (name in body and ``X-Upstream``), ``/echo`` (method, path, headers and body as
JSON; chunked answer with ``?chunked=1``), ``/sse?n=&delay=`` (server-sent events),
``/slow?delay=`` (answers late), ``/big?size=`` and ``/ws`` (WebSocket echo). With
``idle_close`` it closes keep-alive connections after that many idle seconds, as real servers do.
``RouterProcess`` runs a real router process for a test; ``raw_exchange`` talks raw bytes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B65"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def eventually(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy and return it; ``timeout`` only bounds
    a hang (a busy machine is slow, never wrong)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"no {what} within {timeout} s")


class UpstreamServer:
    """An upstream on 127.0.0.1 in its own thread; use as a context manager."""

    def __init__(self, name: str, *, port: int = 0, idle_close: float | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.idle_close = idle_close
        self.requests = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> UpstreamServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await asyncio.wait_for(
                        reader.readuntil(b"\r\n\r\n"), self.idle_close or 60
                    )
                except (TimeoutError, asyncio.IncompleteReadError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, version = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if line:
                        key, _, value = line.partition(":")
                        headers[key.strip().lower()] = value.strip()
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = await self._read_body(reader, headers)
                self.requests += 1
                keep = await self._answer(method, target, version, headers, body, reader, writer)
                if not keep:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            out = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    return out
                out += await reader.readexactly(size)
                await reader.readexactly(2)
        length = int(headers.get("content-length", "0"))
        return await reader.readexactly(length) if length else b""

    async def _answer(
        self,
        method: str,
        target: str,
        version: str,
        headers: dict[str, str],
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        url = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        path = url.path
        if method == "HEAD":
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
            )
            return keep
        if path == "/ws" and headers.get("upgrade", "").lower() == "websocket":
            await self._websocket(headers, reader, writer)
            return False
        if path == "/slow":
            await asyncio.sleep(float(query.get("delay", "2")))
            path = "/hello"
        if path == "/sse":
            await self._sse(int(query.get("n", "3")), float(query.get("delay", "0.3")), writer)
            return keep
        if path == "/echo":
            payload = json.dumps(
                {"method": method, "path": target, "headers": headers, "body": body.decode()}
            ).encode()
            if query.get("chunked"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                for i in range(0, len(payload), 7):
                    part = payload[i : i + 7]
                    writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                return keep
            self._respond(writer, 200, payload, "application/json", keep)
        elif path == "/big":
            self._respond(writer, 200, b"x" * int(query.get("size", "100000")), "text/plain", keep)
        else:
            self._respond(writer, 200, f"hello from {self.name}\n".encode(), "text/plain", keep)
        await writer.drain()
        return keep

    def _respond(
        self, writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str, keep: bool
    ) -> None:
        head = (
            f"HTTP/1.1 {status} OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"X-Upstream: {self.name}\r\nConnection: {'keep-alive' if keep else 'close'}\r\n\r\n"
        )
        writer.write(head.encode() + body)

    @staticmethod
    async def _sse(n: int, delay: float, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for i in range(n):
            event = f"data: event {i}\n\n".encode()
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            await asyncio.sleep(delay)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    @staticmethod
    async def _websocket(
        headers: dict[str, str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        key = headers["sec-websocket-key"].encode()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        while True:
            opcode, payload = await read_ws_frame(reader)
            if opcode == 8:
                writer.write(ws_frame(8, b"", mask=False))
                await writer.drain()
                return
            writer.write(ws_frame(opcode, payload, mask=False))
            await writer.drain()


def ws_frame(opcode: int, payload: bytes, *, mask: bool) -> bytes:
    """One final WebSocket frame (clients must mask, servers must not)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = b"\x01\x02\x03\x04"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def read_ws_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    n = second & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    key = await reader.readexactly(4) if second & 0x80 else b""
    payload = await reader.readexactly(n)
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return first & 0x0F, payload


class RouterProcess:
    """A real router process (``python -m baepo.routers.builtin``) in a temporary folder."""

    def __init__(self, folder: Path, *extra: str, port: int = 0) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.admin = folder / "admin.sock"
        self.state = folder / "table.json"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RouterProcess:
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "baepo.routers.builtin", "--listen"]
        argv += [f"127.0.0.1:{self.port}", "--admin", str(self.admin), "--state", str(self.state)]
        log = (self.folder / "router.log").open("ab")
        self.proc = subprocess.Popen([*argv, *self.extra], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60  # bounds a hang only: a busy machine starts slowly
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5):
                    pass
                if self.admin.exists():
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        raise AssertionError("router did not start: " + self.log())

    def log(self) -> str:
        return (self.folder / "router.log").read_text(errors="replace")

    def admin_client(self) -> httpx.Client:
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.admin)), base_url="http://router"
        )

    def put(self, *backends: tuple[int, int, list[str]], **rules: Any) -> None:
        """Set the table; ``rules`` are ``sticky=`` and ``header_routes=`` as in the body."""
        body = {"backends": [{"revision": r, "weight": w, "upstreams": u} for r, w, u in backends]}
        with self.admin_client() as client:
            response = client.put("/backends", json=body | rules)
        assert response.status_code == 200, response.text

    def get(self, path: str) -> Any:
        with self.admin_client() as client:
            response = client.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(20)

    def __enter__(self) -> RouterProcess:
        return self.start()

    def workers(self) -> list[int]:
        """Pids of the router's workers (children of the master process)."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # The worker too: killed alone, the master would leave it draining for a while.
            workers = self.workers()
            self.proc.kill()
            self.proc.wait(10)
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def raw_exchange(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the router closes (or ``timeout``); the bytes received."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout) as sock:
        sock.sendall(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                piece = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                break
            if not piece:
                break
            out += piece
    return out


class UpstreamProcess:
    """An ``UpstreamServer`` in a process of its own, to be killed like an app process.

    ``received`` counts the requests it has read (it prints a line for each).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.received = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> UpstreamProcess:
        argv = [sys.executable, str(Path(__file__)), self.name, str(self.port)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
        threading.Thread(target=self._count, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"upstream {self.name} exited"
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5):
                    return self
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"upstream {self.name} did not start")

    def _count(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for _ in proc.stdout:
            self.received += 1

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


class _CountingServer(UpstreamServer):
    async def _answer(
        self,
        method: str,
        target: str,
        version: str,
        headers: dict[str, str],
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        print(method, target, flush=True)
        return await super()._answer(method, target, version, headers, body, reader, writer)


if __name__ == "__main__":
    with _CountingServer(sys.argv[1], port=int(sys.argv[2])):
        threading.Event().wait()
