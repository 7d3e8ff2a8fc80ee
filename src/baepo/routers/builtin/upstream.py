"""Upstream side of the built-in router: one ``Upstream`` per address, with a keep-alive pool.

``UpstreamConnection`` is the asyncio protocol of one connection to an app instance. While it
serves an exchange it parses the response with httptools only to find where it ends (so the
connection can be reused) and forwards the bytes to the client as they arrive, rewriting only
the response head (hop-by-hop headers; a sticky rule's ``Set-Cookie``); a final head that
arrives whole in one read (nearly every response) is rewritten and sent with the bytes after it
in one write. A 101 turns it into a blind byte pipe. Callers: ``forwarding.Forwarder``, the base
of ``client.ClientConnection`` (attach, send, events back) and ``runtime.Runtime`` (pools,
sweeps).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from baepo.routers.builtin import wire

if TYPE_CHECKING:
    from baepo.routers.builtin.forwarding import Forwarder

_now = time.monotonic
MAX_IDLE_PER_UPSTREAM = 128


class Upstream:
    """One app instance address: requests in flight and idle keep-alive connections."""

    __slots__ = ("address", "down_until", "host", "idle", "in_flight", "port", "removed")

    def __init__(self, address: str, host: str, port: int) -> None:
        self.address = address
        self.host = host
        self.port = port
        self.in_flight = 0
        self.idle: list[UpstreamConnection] = []
        self.removed = False
        # Monotonic time until which new requests avoid it (a connect to it failed).
        self.down_until = 0.0

    def take_idle(self) -> UpstreamConnection | None:
        """The most recently used idle connection, if any (closed ones leave the pool)."""
        idle = self.idle
        return idle.pop() if idle else None

    def release(self, conn: UpstreamConnection) -> None:
        """Put a finished connection back in the pool (or close it if the pool is not wanted)."""
        if self.removed or conn.closed or len(self.idle) >= MAX_IDLE_PER_UPSTREAM:
            conn.close()
        else:
            conn.idle_since = _now()
            self.idle.append(conn)

    def close_idle(self, older_than: float | None = None) -> None:
        """Close idle connections (all, or those idle since before ``older_than``)."""
        keep: list[UpstreamConnection] = []
        for conn in self.idle:
            if older_than is None or conn.idle_since < older_than:
                conn.close()
            elif not conn.closed:
                keep.append(conn)
        self.idle = keep


class UpstreamConnection(asyncio.Protocol):
    """One connection to an upstream; serves one exchange at a time for a client connection."""

    __slots__ = (
        "bad",
        "client",
        "closed",
        "done",
        "got_bytes",
        "hbuf",
        "head_done",
        "head_request",
        "idle_since",
        "last",
        "parser",
        "reusable",
        "reused",
        "status",
        "transport",
        "tunnel",
        "upstream",
    )

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.client: Forwarder | None = None
        self.parser = HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.last = 0.0
        self.reused = False
        self.reusable = False
        self.tunnel = False
        self._reset(False)

    def _reset(self, head_request: bool) -> None:
        self.got_bytes = False
        self.head_done = False
        self.done = False
        self.reusable = False
        self.bad = False
        self.status = 0
        self.hbuf = b""
        self.head_request = head_request

    # -- driven by the client side -------------------------------------------------------

    def attach(self, client: Forwarder, head_request: bool, now: float) -> None:
        """Start serving one exchange for ``client``.

        A pooled connection finished its last exchange cleanly (``hbuf`` empty, not ``bad``,
        ``reusable``), so only the per-exchange flags are reset.
        """
        self.client = client
        self.got_bytes = False
        self.head_done = False
        self.done = False
        self.status = 0
        self.head_request = head_request
        self.last = now

    def detach(self) -> None:
        self.client = None
        if self.head_request:
            # llhttp cannot be told a response had no body: start the next one afresh.
            self.parser = HttpResponseParser(self)

    def close(self) -> None:
        self.closed = True
        self.client = None
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.client = None
        if self.transport is not None:
            self.transport.abort()

    # -- httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.done:
            self.bad = True  # a second response to one request

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status >= 200 or status == 101:
            self.done = True
            self.reusable = self.parser.should_keep_alive()

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client is None:
            self.close()  # unsolicited bytes on an idle connection: it cannot be trusted
            return
        self.last = _now()
        self.got_bytes = True
        if self.tunnel:
            client.transport.write(data)  # type: ignore[union-attr]
            return
        upgraded = False
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade:
            upgraded = True
        except HttpParserError:
            self.bad = True
        if self.bad:
            client.upstream_broken(self, "the upstream sent an invalid HTTP response")
            return
        if self.head_done:
            client.transport.write(data)  # type: ignore[union-attr]
        elif (
            not self.hbuf
            and not self.head_request
            and (end := data.find(b"\r\n\r\n")) > 0
            and data[9:10] in b"2345"
            and data[9:12].isdigit()
        ):
            # Fast path: a whole final head in this chunk (nearly every response).
            self.head_done = True
            self.status = int(data[9:12])
            ex = client.cur
            close = ex is None or not ex.keep_alive or ex.upgrade or client.eof or client.rt.closing
            out = wire.rewrite_response_head(data[: end + 2], close)
            if ex is not None and ex.cookie is not None:
                out = out[:-2] + ex.cookie + b"\r\n"
            client.transport.write(out + data[end + 4 :])  # type: ignore[union-attr]
        elif not self._forward_head(client, data):
            return
        if upgraded and self.status == 101:
            self.tunnel = True
            client.upgraded(self)
        elif self.done or (self.head_request and self.head_done):
            client.response_done(self)

    def _forward_head(self, client: Forwarder, data: bytes) -> bool:
        """Forward interim and final heads as they complete; False when the response is bad.

        Used when a head is split over reads, follows 1xx answers or answers a HEAD request.
        """
        buf = self.hbuf + data if self.hbuf else data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > wire.MAX_HEAD:
                    client.upstream_broken(self, "the upstream sent a response head over 64 KiB")
                    return False
                self.hbuf = buf
                return True
            head = buf[: end + 2]
            rest = buf[end + 4 :]
            try:
                status = int(head[9:12])
            except ValueError:
                client.upstream_broken(self, "the upstream sent an invalid status line")
                return False
            if status == 101:
                out = head + b"\r\n"
            else:
                out = wire.rewrite_response_head(head, client.will_close())
            if 100 <= status < 200 and status != 101:
                client.transport.write(out)  # type: ignore[union-attr]
                buf = rest
                if not buf:
                    self.hbuf = b""
                    return True
                continue
            ex = client.cur
            if ex is not None and ex.cookie is not None:
                out = out[:-2] + ex.cookie + b"\r\n"
            self.hbuf = b""
            self.head_done = True
            self.status = status
            if self.head_request:
                # A response to HEAD has no body; bytes after its head mean a confused upstream.
                self.reusable = not rest and self.parser.should_keep_alive()
                rest = b""
            client.transport.write(out + rest if rest else out)  # type: ignore[union-attr]
            return True

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        client = self.client
        self.client = None
        if client is not None:
            client.upstream_lost(self)
        elif self in self.upstream.idle:
            self.upstream.idle.remove(self)  # the upstream closed it while idle

    def pause_writing(self) -> None:
        if self.client is not None:
            self.client.pause_for_upstream()

    def resume_writing(self) -> None:
        if self.client is not None:
            self.client.resume_for_upstream()
