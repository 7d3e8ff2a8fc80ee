"""One HTTP/1.1 request to a router's admin socket, on asyncio's unix streams.

The admin server (``admin``) answers with ``Content-Length`` bodies of JSON and closes when
asked to, so a client is a few lines; creating an httpx client for each call cost ≈ 3.5 ms,
most of a weight change's latency. Errors are ``OSError``/``TimeoutError`` (the socket) or
``AdminProtocolError`` (an answer that is not HTTP); ``adapter`` turns them into
``ExternalError``. Caller: ``adapter.BuiltinRouter``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_ANSWER = 16 * 1024 * 1024


class AdminProtocolError(Exception):
    """The admin socket answered something that is not a complete HTTP/1.1 response."""


@dataclass(frozen=True)
class AdminResponse:
    """Status code and body of one admin answer."""

    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


async def call(
    sock: Path, method: str, path: str, body: Any = None, *, timeout: float
) -> AdminResponse:
    """Send one request (``body`` as JSON when not None) and read the whole answer."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_unix_connection(str(sock), limit=MAX_ANSWER)
        try:
            data = b"" if body is None else json.dumps(body).encode()
            head = f"{method} {path} HTTP/1.1\r\nHost: router\r\nConnection: close\r\n"
            if body is not None:
                head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            writer.write(head.encode() + b"\r\n" + data)
            try:
                answer = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                raise AdminProtocolError("the router closed the admin connection") from exc
            lines = answer.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise AdminProtocolError(f"unexpected admin answer {lines[0][:80]!r}")
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length" and value.strip().isdigit():
                    length = int(value.strip())
            if length > MAX_ANSWER:
                raise AdminProtocolError(f"admin answer of {length} bytes is too large")
            try:
                content = await reader.readexactly(length)
            except asyncio.IncompleteReadError as exc:
                raise AdminProtocolError("the admin answer was cut short") from exc
            return AdminResponse(int(parts[1]), content)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
