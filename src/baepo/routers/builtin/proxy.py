"""Client side of the built-in router: one ``ClientConnection`` per accepted TCP connection.

It parses requests with httptools, rewrites the head for the upstream (hop-by-hop headers,
``X-Forwarded-*``), picks a revision and an upstream from the runtime's table, and streams the
body on. Pipelined requests are queued and answered in order; router-generated answers (502,
503, 504, 400, 431) come from ``wire``. Retries: a request is sent again only when nothing was
received for it and either nothing was sent (connect failure) or it is idempotent and kept.
No task or timer is created per request; ``runtime.Runtime`` sweeps timeouts. Callers:
``runtime`` (accepts connections, sweeps) and ``upstream.UpstreamConnection`` (events).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from baepo.routers.builtin import wire
from baepo.routers.builtin.exchange import Exchange, Reject
from baepo.routers.builtin.stats import ERROR
from baepo.routers.builtin.table import pick_least_loaded

if TYPE_CHECKING:
    from baepo.routers.builtin.runtime import Runtime
    from baepo.routers.builtin.upstream import Upstream, UpstreamConnection

_now = time.monotonic
RETRY_KEEP = 64 * 1024  # request bytes kept to resend an idempotent request
PENDING_LIMIT = 1024 * 1024  # body bytes buffered while connecting before reading pauses
PAUSE_PIPELINE, PAUSE_UPSTREAM, PAUSE_PENDING = 1, 2, 4

# on_header dispatch: 0 drop, 1 connection, 2 upgrade, 3 x-forwarded-for, 4 host,
# 5 transfer-encoding. Names not listed are forwarded as they are.
_SPECIAL = dict.fromkeys(wire.HOP_BY_HOP, 0) | {
    b"connection": 1,
    b"upgrade": 2,
    b"x-forwarded-for": 3,
    b"host": 4,
    b"transfer-encoding": 5,
    b"x-forwarded-proto": 0,
    b"x-forwarded-host": 0,
}


class ClientConnection(asyncio.Protocol):
    """An accepted client connection: parses requests, forwards them, answers in order."""

    __slots__ = (
        "chunked",
        "conn_value",
        "cur",
        "eof",
        "fwd",
        "hdrs",
        "head_bytes",
        "head_size",
        "host",
        "in_head",
        "last",
        "parser",
        "parsing",
        "paused",
        "queue",
        "rt",
        "stepping",
        "transport",
        "tunnel",
        "upgrade_ex",
        "upgrade_value",
        "url",
        "xff",
    )

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.parser = HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.fwd = b""
        self.url = b""
        self.hdrs: list[bytes] = [b""]
        self.xff: bytes | None = None
        self.host = b""
        self.conn_value: bytes | None = None
        self.upgrade_value = b""
        self.chunked = False
        self.head_size = 0
        self.head_bytes = 0
        self.in_head = True
        self.cur: Exchange | None = None
        self.parsing: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self.upgrade_ex: Exchange | None = None
        self.tunnel: UpstreamConnection | None = None
        self.last = _now()
        self.paused = 0
        self.eof = False
        self.stepping = False

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        ip = (peer[0] if isinstance(peer, tuple) else "unknown").encode()
        self.fwd = b"X-Forwarded-Proto: http\r\nX-Forwarded-For: " + ip
        self.rt.clients.add(self)
        if self.rt.closing:
            transport.close()

    def data_received(self, data: bytes) -> None:
        self.last = _now()
        if self.tunnel is not None:
            self.tunnel.transport.write(data)  # type: ignore[union-attr]
            return
        if self.upgrade_ex is not None:
            self._push(self.upgrade_ex, data)
            return
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as exc:
            self._upgrade_rest(data[exc.args[0] :])
            return
        except Reject as exc:
            self._reject(exc.status, exc.message)
            return
        except HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, Reject):
                self._reject(cause.status, cause.message)
            else:
                self._reject(400, "malformed HTTP request")
            return
        if self.in_head and self.head_bytes > wire.MAX_HEAD:
            self._reject(431, f"request line and headers exceed {wire.MAX_HEAD} bytes")

    def _upgrade_rest(self, rest: bytes) -> None:
        """Bytes after an upgrade request's head go to the upstream as they are."""
        if self.upgrade_ex is not None and rest:
            self._push(self.upgrade_ex, rest)

    def eof_received(self) -> bool | None:
        if self.cur is None or self.tunnel is not None:
            return None
        self.eof = True  # half-closed after sending a request: answer it, then close
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.rt.clients.discard(self)
        self.queue.clear()
        if self.tunnel is not None:
            self.tunnel.close()
            self.tunnel = None
        ex = self.cur
        self.cur = None
        if ex is not None:
            if ex.conn is not None:
                ex.conn.abort()
                ex.conn = None
            self._release(ex)

    def pause_writing(self) -> None:
        conn = self.tunnel or (self.cur.conn if self.cur is not None else None)
        if conn is not None and conn.transport is not None:
            conn.transport.pause_reading()

    def resume_writing(self) -> None:
        conn = self.tunnel or (self.cur.conn if self.cur is not None else None)
        if conn is not None and conn.transport is not None:
            conn.transport.resume_reading()

    # -- httptools callbacks -------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_size += len(name) + len(value) + 4
        lname = name.lower()
        kind = _SPECIAL.get(lname)
        if kind is None:
            if not lname.startswith(b"proxy-"):
                self.hdrs += (name, b": ", value, b"\r\n")
        elif kind == 4:
            self.host = value
            self.hdrs += (name, b": ", value, b"\r\n")
        elif kind == 1:
            self.conn_value = value if self.conn_value is None else self.conn_value + b"," + value
        elif kind == 3:
            self.xff = value if self.xff is None else self.xff + b", " + value
        elif kind == 5:
            self.chunked = value.rstrip().lower().endswith(b"chunked")
            self.hdrs += (name, b": ", value, b"\r\n")
        elif kind == 2:
            self.upgrade_value = value

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        if self.head_size > wire.MAX_HEAD:
            raise Reject(431, f"request line and headers exceed {wire.MAX_HEAD} bytes")
        parser = self.parser
        method = parser.get_method()
        if method == b"CONNECT":
            raise Reject(405, "CONNECT is not supported by this reverse proxy")
        hdrs = self.hdrs
        v11 = parser.get_http_version() == "1.1"
        line_end = b" HTTP/1.1\r\n" if v11 else b" HTTP/1.0\r\n"
        hdrs[0] = method + b" " + (self.url or b"/") + line_end
        if self.conn_value is not None:
            self._drop_named(hdrs, self.conn_value)
        if self.xff is None:
            hdrs.append(self.fwd)
        else:
            hdrs.append(self.fwd.replace(b"For: ", b"For: " + self.xff + b", ", 1))
        if self.host:
            hdrs += (b"\r\nX-Forwarded-Host: ", self.host)
        upgrade = parser.should_upgrade()
        if upgrade:
            hdrs += (b"\r\nConnection: upgrade\r\nUpgrade: ", self.upgrade_value)
        hdrs.append(b"\r\n\r\n")
        ex = Exchange(b"".join(hdrs), self.last)
        ex.keep_alive = v11 and parser.should_keep_alive()
        ex.chunked = self.chunked
        ex.is_head = method == b"HEAD"
        ex.idempotent = method in wire.IDEMPOTENT
        ex.upgrade = upgrade
        self.hdrs = [b""]
        self.url = b""
        self.host = b""
        self.xff = self.conn_value = None
        self.chunked = False
        self.head_size = 0
        self.parsing = ex
        if upgrade:
            self.upgrade_ex = ex
        if self.cur is None:
            self.cur = ex
            self._start(ex)
        else:
            self.queue.append(ex)
            self._pause(PAUSE_PIPELINE)

    def on_body(self, body: bytes) -> None:
        ex = self.parsing
        if ex is not None and not ex.answered:
            self._push(ex, wire.chunk(body) if ex.chunked else body)

    def on_message_complete(self) -> None:
        ex = self.parsing
        self.parsing = None
        self.in_head = True
        if ex is None:
            return
        ex.complete = True
        if ex.answered:
            if ex is self.cur:
                self._finish(ex)
        elif ex.chunked:
            self._push(ex, wire.LAST_CHUNK)

    # -- forwarding ----------------------------------------------------------------------

    def _start(self, ex: Exchange) -> None:
        route = self.rt.cycle.next()
        if route is None:
            self._answer(ex, 503, "no instance is ready to serve this request")
            return
        ex.route = route
        ups = route.upstreams
        if len(ups) == 1:
            up = ups[0]
        else:
            up = pick_least_loaded(ups, route.rr)
            route.rr += 1
        self._send(ex, up)

    def _send(self, ex: Exchange, up: Upstream) -> None:
        ex.upstream = up
        up.in_flight += 1
        idle = up.idle
        if not idle:
            self.rt.connect(self, ex, up)
            return
        conn = idle.pop()
        conn.reused = True
        # _attach, inlined for the common case.
        ex.conn = conn
        conn.attach(self, ex.is_head, self.last)
        pieces = ex.pieces
        assert pieces is not None
        conn.transport.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))  # type: ignore[union-attr]
        if not ex.idempotent or ex.kept > RETRY_KEEP:
            ex.pieces = None
        if self.paused & PAUSE_PENDING:
            self._resume(PAUSE_PENDING)

    def connected(self, ex: Exchange, up: Upstream, conn: UpstreamConnection) -> None:
        """A fresh connection for ``ex`` is ready (called by the runtime's connect task)."""
        if self.cur is not ex or ex.upstream is not up or ex.answered:
            up.release(conn)
            return
        conn.reused = False
        self._attach(ex, conn)

    def _attach(self, ex: Exchange, conn: UpstreamConnection) -> None:
        ex.conn = conn
        conn.attach(self, ex.is_head, _now())
        pieces = ex.pieces
        assert pieces is not None
        conn.transport.write(pieces[0] if len(pieces) == 1 else b"".join(pieces))  # type: ignore[union-attr]
        if not ex.idempotent or ex.kept > RETRY_KEEP:
            ex.pieces = None
        if self.paused & PAUSE_PENDING:
            self._resume(PAUSE_PENDING)

    def _push(self, ex: Exchange, data: bytes) -> None:
        conn = ex.conn
        if conn is not None:
            conn.transport.write(data)  # type: ignore[union-attr]
            conn.last = self.last
        pieces = ex.pieces
        if pieces is not None:
            ex.kept += len(data)
            if conn is None:
                pieces.append(data)
                if ex.kept > PENDING_LIMIT:
                    self._pause(PAUSE_PENDING)
            elif ex.kept > RETRY_KEEP:
                ex.pieces = None
            else:
                pieces.append(data)

    # -- events from the upstream connection ---------------------------------------------

    def will_close(self) -> bool:
        """Whether this connection closes after the current response (sets Connection: close)."""
        ex = self.cur
        return ex is None or not ex.keep_alive or ex.upgrade or self.eof or self.rt.closing

    def response_done(self, conn: UpstreamConnection) -> None:
        ex = self.cur
        if ex is None or ex.conn is not conn:
            return
        route = ex.route
        if route is not None:
            klass = conn.status // 100
            route.counters.record(klass if 0 < klass < 6 else 5, conn.last - ex.started)
        up = ex.upstream
        ex.upstream = ex.conn = None
        if up is not None:
            up.in_flight -= 1
        conn.client = None
        if conn.head_request:
            conn.detach()
        if conn.reusable and ex.complete and not ex.upgrade and up is not None:
            up.release(conn)
        else:
            conn.close()
        self._finish(ex)

    def upgraded(self, conn: UpstreamConnection) -> None:
        ex = self.cur
        if ex is None:
            return
        self._record(ex, 1, conn.last)
        ex.pieces = None
        self.tunnel = conn
        self.upgrade_ex = None

    def upstream_lost(self, conn: UpstreamConnection) -> None:
        if self.tunnel is conn:
            self.tunnel = None
            if self.cur is not None:
                self._release(self.cur)
                self.cur = None
            self._close()
            return
        ex = self.cur
        if ex is None or ex.conn is not conn:
            return
        ex.conn = None
        if conn.head_done:
            # Close-delimited body ends here; a framed one was cut short. Either way the
            # client learns where it ends from the close.
            self._record(ex, conn.status // 100, _now())
            self._release(ex)
            self.cur = None
            self._close()
        elif conn.reused and not conn.got_bytes and ex.pieces is not None:
            up = ex.upstream
            assert up is not None
            self.rt.connect(self, ex, up)  # a pooled connection closed while idle: retry once
        else:
            self._upstream_failed(ex, 502, "the upstream closed the connection without answering")

    def upstream_broken(self, conn: UpstreamConnection, message: str) -> None:
        ex = self.cur
        conn.abort()
        if ex is None or ex.conn is not conn:
            return
        ex.conn = None
        if conn.head_done:
            self._record(ex, ERROR, _now())
            self._release(ex)
            self.cur = None
            if self.transport is not None:
                self.transport.abort()
        else:
            self._upstream_failed(ex, 502, message)

    def connect_failed(self, ex: Exchange, up: Upstream, message: str, timed_out: bool) -> None:
        """Connecting to ``up`` failed: nothing was sent, so try another upstream, then 502."""
        if self.cur is not ex or ex.upstream is not up or ex.answered:
            return
        self._release(ex)
        tried = ex.tried
        if tried is None:
            tried = ex.tried = set()
        tried.add(up)
        alternative = self.rt.alternative(ex.route, tried)
        if alternative is None:
            status = 504 if timed_out else 502
            self._answer(ex, status, f"could not connect to the upstream ({message})")
            return
        ex.route, nxt = alternative
        self._send(ex, nxt)

    def pause_for_upstream(self) -> None:
        self._pause(PAUSE_UPSTREAM)

    def resume_for_upstream(self) -> None:
        self._resume(PAUSE_UPSTREAM)

    # -- endings -------------------------------------------------------------------------

    def sweep(self, now: float, idle_timeout: float, upstream_timeout: float) -> None:
        """Enforce the idle and upstream timeouts (called by the runtime about 4x a second)."""
        if self.tunnel is not None:
            return
        ex = self.cur
        if ex is None:
            if now - self.last > idle_timeout:
                self._close()
            return
        conn = ex.conn
        if conn is not None and now - conn.last > upstream_timeout:
            conn.abort()
            ex.conn = None
            if conn.head_done:
                self._record(ex, ERROR, now)
                self._release(ex)
                self.cur = None
                if self.transport is not None:
                    self.transport.abort()
            else:
                seconds = f"{upstream_timeout:g}"
                self._upstream_failed(ex, 504, f"the upstream did not answer within {seconds} s")

    def _upstream_failed(self, ex: Exchange, status: int, message: str) -> None:
        self._release(ex)
        self._answer(ex, status, message)

    def _answer(self, ex: Exchange, status: int, message: str) -> None:
        """Answer ``ex`` with a router-generated error; the exchange ends when its body has."""
        ex.answered = True
        ex.pieces = None
        if ex.route is not None:
            ex.route.counters.record(ERROR, _now() - ex.started)
        else:
            self.rt.unrouted += 1
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        close = not ex.keep_alive or ex.upgrade or self.eof or self.rt.closing or status == 400
        transport.write(wire.error_response(status, message, close=close, head_only=ex.is_head))
        if ex.complete:
            self._finish(ex)

    def _reject(self, status: int, message: str) -> None:
        """Answer a request that cannot be parsed or forwarded, then close."""
        if self.cur is not None or self.transport is None:
            self._close()  # an answer is under way: the client only learns by the close
            return
        self.transport.write(wire.error_response(status, message, close=True))
        self.rt.unrouted += 1
        self._close()

    def _finish(self, ex: Exchange) -> None:
        if self.cur is ex:
            self.cur = None
        if not ex.keep_alive or not ex.complete or ex.upgrade or self.eof or self.rt.closing:
            self._close()
            return
        if self.stepping:
            return
        self.stepping = True
        try:
            queue = self.queue
            while self.cur is None and queue:
                nxt = queue.popleft()
                if not queue:
                    self._resume(PAUSE_PIPELINE)
                self.cur = nxt
                self._start(nxt)
        finally:
            self.stepping = False

    def _release(self, ex: Exchange) -> None:
        up = ex.upstream
        if up is not None:
            up.in_flight -= 1
            ex.upstream = None

    def _record(self, ex: Exchange, klass: int, end: float) -> None:
        route = ex.route
        if route is not None:
            route.counters.record(klass if 0 < klass < 6 else 5, end - ex.started)

    def _close(self) -> None:
        self.queue.clear()
        if self.transport is not None:
            self.transport.close()

    def _pause(self, flag: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= flag

    def _resume(self, flag: int) -> None:
        was = self.paused
        self.paused &= ~flag
        if was and not self.paused and self.transport is not None:
            self.transport.resume_reading()

    @staticmethod
    def _drop_named(hdrs: list[bytes], value: bytes) -> None:
        """Remove headers the client named in its Connection header (rare slow path)."""
        named = set(wire.connection_tokens(value)) - {b"", b"close", b"keep-alive", b"upgrade"}
        if not named:
            return
        kept = [hdrs[0]]
        for i in range(1, len(hdrs), 4):
            if hdrs[i].lower() not in named:
                kept += hdrs[i : i + 4]
        hdrs[:] = kept
