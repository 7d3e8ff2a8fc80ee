"""Forwarding half of a client connection: exchanges in flight, upstream events, endings.

``Forwarder`` is the base class of ``client.ClientConnection``. It holds what an exchange needs
once its request head is parsed: the current ``Exchange`` and the pipelined ones behind it,
picking an upstream (by weight, or through ``rules.Matcher`` when the table has rules), sending
and re-sending request bytes, the events an ``upstream.UpstreamConnection`` reports back
(response done, upgraded, lost, broken), retries, router-generated answers (from ``wire``) and
timeouts. Retries: ``retry.decide`` says whether a request whose upstream failed before
answering goes again, to another instance of its revision or the same one; an instance a
connect failed to is avoided for ``DOWN_FOR`` seconds. No task or timer is created per
request; ``runtime.Runtime`` calls ``sweep`` a few times a second. Callers: ``client`` (parsing
side), ``upstream`` (events), ``runtime`` (connect results, sweeps).
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections import deque
from typing import TYPE_CHECKING

from baepo.routers.builtin import retry, wire
from baepo.routers.builtin.exchange import Exchange
from baepo.routers.builtin.stats import BOUNDS, ERROR
from baepo.routers.builtin.table import pick_least_loaded
from baepo.routers.builtin.upstream import MAX_IDLE_PER_UPSTREAM

if TYPE_CHECKING:
    from baepo.routers.builtin.rules import Matcher
    from baepo.routers.builtin.runtime import RouteState, Runtime
    from baepo.routers.builtin.upstream import Upstream, UpstreamConnection

_now = time.monotonic
RETRY_KEEP = 64 * 1024  # request bytes kept to resend an idempotent request
PENDING_LIMIT = 1024 * 1024  # body bytes buffered while connecting before reading pauses
PAUSE_PIPELINE, PAUSE_UPSTREAM, PAUSE_PENDING = 1, 2, 4
DOWN_FOR = 1.0  # seconds new requests avoid an instance after a connect to it failed


class Forwarder(asyncio.Protocol):
    """The forwarding state of one client connection (see ``client.ClientConnection``)."""

    __slots__ = ("cur", "eof", "last", "paused", "queue", "rt", "stepping", "transport", "tunnel")

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.transport: asyncio.Transport | None = None
        self.cur: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self.tunnel: UpstreamConnection | None = None
        self.last = _now()
        self.paused = 0
        self.eof = False
        self.stepping = False

    # -- sending requests ----------------------------------------------------------------

    def _start(self, ex: Exchange) -> None:
        rt = self.rt
        route = rt.cycle.next() if rt.rules is None else self._choose(ex, rt.rules)
        if route is None:
            self._answer(ex, 503, "no instance is ready to serve this request")
        else:
            self._route(ex, route)

    def _choose(self, ex: Exchange, rules: Matcher[RouteState]) -> RouteState | None:
        """The route by the table's rules (header routes, sticky bucket, then weights)."""
        pieces = ex.pieces
        assert pieces is not None  # a new exchange holds its head
        route, ex.cookie = rules.choose(pieces[0], self.rt.cycle.next)
        return route

    def _route(self, ex: Exchange, route: RouteState) -> None:
        """Send ``ex`` to an upstream of ``route`` (the least loaded, ties round-robin)."""
        ex.route = route
        ups = route.upstreams
        if len(ups) == 1:
            up = ups[0]
        else:
            up = pick_least_loaded(ups, route.rr)
            route.rr += 1
            if up.down_until and up.down_until > _now():
                up = _avoid_down(ups, up)
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
        """Body bytes of ``ex``: to its upstream if connected, kept while a retry is possible."""
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
        """The response on ``conn`` ended: count it, pool the connection, start the next one."""
        ex = self.cur
        if ex is None or ex.conn is not conn:
            return
        route = ex.route
        if route is not None:
            # RevisionCounters.record, inlined: this runs once per request.
            klass = conn.status // 100
            latency = conn.last - ex.started
            counters = route.counters
            counters.requests += 1
            counters.status[klass if 0 < klass < 6 else 5] += 1
            counters.buckets[bisect_left(BOUNDS, latency)] += 1
            counters.latency_sum += latency
        up = ex.upstream
        ex.upstream = ex.conn = None
        conn.client = None
        if conn.head_request:
            conn.detach()
        if up is None:
            conn.close()
        else:
            up.in_flight -= 1
            idle = up.idle
            if (
                conn.reusable
                and ex.complete
                and not ex.upgrade
                and not up.removed
                and not conn.closed
                and len(idle) < MAX_IDLE_PER_UPSTREAM
            ):
                conn.idle_since = conn.last  # Upstream.release, inlined
                idle.append(conn)
            else:
                conn.close()
        # _finish, with the common case (keep-alive, nothing queued) first.
        self.cur = None
        if ex.keep_alive and ex.complete and not (ex.upgrade or self.eof or self.rt.closing):
            if self.queue and not self.stepping:
                self._next()
        else:
            self._close()

    def upgraded(self, conn: UpstreamConnection) -> None:
        ex = self.cur
        if ex is None:
            return
        self._record(ex, 1, conn.last)
        ex.pieces = None
        self.tunnel = conn
        self._tunnel_started()

    def _tunnel_started(self) -> None:
        """Hook for the parsing side: request bytes now go through the tunnel unparsed."""

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
        else:
            up = ex.upstream
            self._release(ex)
            if up is None or not self._retry(ex, up, True, conn.got_bytes, conn.reused):
                self._answer(ex, 502, "the upstream closed the connection without answering")

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
        """Connecting to ``up`` failed: nothing was sent; retry (``retry.decide``) or 502/504."""
        if self.cur is not ex or ex.upstream is not up or ex.answered:
            return
        self._release(ex)
        up.down_until = _now() + DOWN_FOR
        if not self._retry(ex, up, False, False, False):
            status = 504 if timed_out else 502
            self._answer(ex, status, f"could not connect to the upstream ({message})")

    def _retry(self, ex: Exchange, up: Upstream, sent: bool, received: bool, pooled: bool) -> bool:
        """Send ``ex`` again after its attempt on ``up`` failed, if ``retry.decide`` allows it;
        False when it does not (the caller answers with an error). ``ex`` holds no upstream.
        """
        tried = ex.tried
        if tried is None:
            tried = ex.tried = set()
        tried.add(up)
        other = self.rt.alternative(ex.route, tried)
        failure = retry.Failure(
            sent=sent,
            received=received,
            idempotent=ex.idempotent,
            replayable=ex.pieces is not None,
            pooled=pooled,
            other_ready=other is not None,
            resent=ex.resent,
        )
        choice = retry.decide(failure)
        if choice is retry.Retry.FAIL:
            return False
        if ex.route is not None:
            ex.route.counters.retries += 1
        if choice is retry.Retry.OTHER and other is not None:
            if not sent:
                self._send(ex, other)
                return True
            up = other
        ex.resent = True
        # A new connection: a pooled one may be stale, and this is the request's last chance.
        ex.upstream = up
        up.in_flight += 1
        self.rt.connect(self, ex, up)
        return True

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
        if not self.stepping:
            self._next()

    def _next(self) -> None:
        """Start the pipelined requests queued behind the one that just ended, in order."""
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


def _avoid_down(ups: list[Upstream], picked: Upstream) -> Upstream:
    """The first instance of ``ups`` not marked down, or ``picked`` when all are."""
    now = _now()
    for up in ups:
        if up.down_until <= now and not up.removed:
            return up
    return picked
