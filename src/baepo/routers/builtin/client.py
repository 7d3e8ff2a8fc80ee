"""Client side of the built-in router: one ``ClientConnection`` per accepted TCP connection.

It parses requests with httptools and rewrites each head for the upstream (hop-by-hop headers
out, ``X-Forwarded-For`` appended, ``X-Forwarded-Proto``/``-Host`` set); a simple request that
arrives whole (``_SIMPLE``) is forwarded as it came plus those headers, without the parser's
per-header callbacks. Either way the request becomes an ``exchange.Exchange`` handed to the
forwarding half this class inherits (``forwarding``), which picks an upstream and answers in
order. Body bytes follow as they are parsed (chunked bodies re-chunked); after an upgrade the
bytes go to the upstream unparsed. Requests that cannot be parsed or forwarded get 400, 405
or 431 from ``wire``. Callers: ``worker`` (creates one per accepted connection), ``runtime``
(connect results, sweeps, drain) and ``upstream`` (events).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser

from baepo.routers.builtin import wire
from baepo.routers.builtin.exchange import Exchange, Reject
from baepo.routers.builtin.forwarding import PAUSE_PENDING, PAUSE_PIPELINE, RETRY_KEEP, Forwarder

if TYPE_CHECKING:
    from baepo.routers.builtin.runtime import Runtime

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
now = time.monotonic

# The overwhelmingly common request, whole in one read with nothing after it: a bodiless
# GET/HEAD/OPTIONS/DELETE over HTTP/1.1 whose first header is Host, then only headers that
# pass through unchanged, in the canonical "Name: value" form, and at most one
# "Connection: keep-alive" (dropped, as the parser path drops it). Anything else (other
# methods, any body framing, other Connection values, Upgrade, X-Forwarded-*, hop-by-hop or
# Proxy-* headers, unusual spacing or characters, pipelined bytes) goes through httptools.
# The pattern accepts a subset of what llhttp accepts, so a request it matches is valid.
_VALUE = rb"[!-~](?:[ \t!-~]*[!-~])?"
_PLAIN_LINE = (
    rb"(?:(?!(?i:host|connection|upgrade|x-forwarded-|transfer-encoding|content-length"
    rb"|keep-alive|proxy-|te:))[!#$%&'*+\-.^_`|~0-9A-Za-z]+: " + _VALUE + rb"\r\n)*"
)
_SIMPLE = re.compile(
    rb"(GET|HEAD|OPTIONS|DELETE) /[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]* HTTP/1\.1\r\n"
    rb"[Hh]ost: ("
    + _VALUE
    + rb")\r\n"
    + _PLAIN_LINE
    + rb"([Cc]onnection: (?i:keep-alive)\r\n)?"
    + _PLAIN_LINE
    + rb"\r\n"
).fullmatch
SIMPLE_MAX = 16 * 1024
_LINE_11 = b" HTTP/1.1\r\n"
_LINE_10 = b" HTTP/1.0\r\n"


class ClientConnection(Forwarder):
    """An accepted client connection: parses requests, forwards them, answers in order."""

    __slots__ = (
        "chunked",
        "conn_value",
        "fwd",
        "hdrs",
        "head_bytes",
        "head_size",
        "host",
        "in_head",
        "parser",
        "parsing",
        "upgrade_ex",
        "upgrade_value",
        "url",
        "xff",
    )

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt)
        self.parser = HttpRequestParser(self)
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
        self.parsing: Exchange | None = None
        self.upgrade_ex: Exchange | None = None

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
        self.last = now()
        if (
            self.cur is None
            and self.in_head
            and not self.head_bytes
            and self.upgrade_ex is None
            and len(data) <= SIMPLE_MAX
        ):
            simple = _SIMPLE(data)
            if simple is not None:
                self._simple_request(simple, data)
                return
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

    def _tunnel_started(self) -> None:
        self.upgrade_ex = None

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
        conn_value = self.conn_value
        if conn_value is None and parser.should_keep_alive():
            # Keep-alive without a Connection header is HTTP/1.1 only (llhttp accepts 0.9,
            # 1.0, 1.1 and 2.0): no need for get_http_version, which formats a string.
            keep_alive = True
            line_end = _LINE_11
        elif parser.get_http_version() == "1.1":
            keep_alive = parser.should_keep_alive()
            line_end = _LINE_11
        else:
            keep_alive = False
            line_end = _LINE_10
        hdrs[0] = method + b" " + (self.url or b"/") + line_end
        if conn_value is not None:
            self._drop_named(hdrs, conn_value)
        xff = self.xff
        if xff is None:
            hdrs.append(self.fwd)
        else:
            hdrs.append(self.fwd.replace(b"For: ", b"For: " + xff + b", ", 1))
        if self.host:
            hdrs += (b"\r\nX-Forwarded-Host: ", self.host)
        upgrade = parser.should_upgrade()
        if upgrade:
            hdrs += (b"\r\nConnection: upgrade\r\nUpgrade: ", self.upgrade_value)
        hdrs.append(b"\r\n\r\n")
        ex = Exchange(b"".join(hdrs), self.last)
        ex.keep_alive = keep_alive
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
        if self.cur is not None:
            self.queue.append(ex)
            self._pause(PAUSE_PIPELINE)
            return
        self.cur = ex
        self._dispatch(ex)

    def _simple_request(self, simple: re.Match[bytes], data: bytes) -> None:
        """A whole request that ``_SIMPLE`` matched: forward its head as it came, plus ours.

        The bytes sent upstream are the ones the parser callbacks would have built: the
        request line and every header line unchanged but ``Connection: keep-alive``, then
        the ``X-Forwarded-*`` headers.
        """
        if simple[3] is None:
            head = data[:-2]
        else:
            start, end = simple.span(3)
            head = data[:start] + data[end:-2]
        ex = Exchange(
            head + self.fwd + b"\r\nX-Forwarded-Host: " + simple[2] + b"\r\n\r\n", self.last
        )
        ex.complete = True
        ex.is_head = simple[1] == b"HEAD"
        self.cur = ex
        self._dispatch(ex)

    def _dispatch(self, ex: Exchange) -> None:
        """Send the current exchange: _start and _send, inlined for the common case."""
        rt = self.rt
        route = rt.cycle.next() if rt.rules is None else self._choose(ex, rt.rules)
        if route is None:
            self._answer(ex, 503, "no instance is ready to serve this request")
            return
        ups = route.upstreams
        up = ups[0]
        idle = up.idle
        if len(ups) != 1 or not idle:
            self._route(ex, route)
            return
        ex.route = route
        ex.upstream = up
        up.in_flight += 1
        conn = idle.pop()
        conn.reused = True
        ex.conn = conn
        conn.attach(self, ex.is_head, self.last)
        conn.transport.write(ex.pieces[0])  # type: ignore[union-attr,index]
        if not ex.idempotent or ex.kept > RETRY_KEEP:
            ex.pieces = None
        if self.paused & PAUSE_PENDING:
            self._resume(PAUSE_PENDING)

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
