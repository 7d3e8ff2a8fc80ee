"""The built-in router's fast paths send the same bytes as its general paths.

A request that arrives whole in one read may skip httptools (``client._SIMPLE``); a response
head that arrives whole is rewritten and sent in one write (``upstream``). Feeding the same
bytes one at a time forces the general paths, so each case runs both ways through real
``ClientConnection``/``UpstreamConnection`` objects on recording transports and compares what
the upstream and the client receive, the counters and the connection's fate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from baepo.routers.builtin import client as client_module
from baepo.routers.builtin.client import ClientConnection
from baepo.routers.builtin.runtime import Limits, Runtime
from baepo.routers.builtin.table import HeaderRule, Route, StickyRule, Table
from baepo.routers.builtin.upstream import UpstreamConnection

OK = b"HTTP/1.1 200 OK\r\nServer: t\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"


class Recorder(asyncio.Transport):
    """A transport that keeps what is written and whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False

    def write(self, data: Any) -> None:
        self.out += data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("10.0.0.7", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Harness:
    """One client connection and one pooled upstream connection, both on recorders."""

    def __init__(self, table: Table | None = None) -> None:
        self.rt = Runtime(Limits())
        self.rt.apply(table or [Route(1, 100, ("127.0.0.1:9",))])
        up = self.rt.states[0].upstreams[0]
        self.up_conn = UpstreamConnection(up)
        self.up_transport = Recorder()
        self.up_conn.connection_made(self.up_transport)
        up.idle.append(self.up_conn)
        self.client = ClientConnection(self.rt)
        self.client_transport = Recorder()
        self.client.connection_made(self.client_transport)

    def send(self, data: bytes, whole: bool) -> None:
        for piece in pieces(data, whole):
            self.client.data_received(piece)

    def answer(self, data: bytes, whole: bool) -> None:
        for piece in pieces(data, whole):
            self.up_conn.data_received(piece)

    def outcome(self) -> tuple[bytes, bytes, bool, bool, list[int], int]:
        counters = self.rt.states[0].counters
        return (
            bytes(self.up_transport.out),
            bytes(self.client_transport.out),
            self.client_transport.closed,
            self.up_transport.closed,
            counters.status,
            counters.requests,
        )


def pieces(data: bytes, whole: bool) -> Iterator[bytes]:
    """``data`` in one read, or its first head a byte at a time and the rest in one read."""
    if whole:
        yield data
        return
    end = data.index(b"\r\n\r\n") + 4
    for i in range(end):
        yield data[i : i + 1]
    if data[end:]:
        yield data[end:]


def run(
    request: bytes,
    response: bytes,
    whole_request: bool,
    whole_response: bool,
    table: Table | None = None,
) -> Any:
    h = Harness(table)
    h.send(request, whole_request)
    h.answer(response, whole_response)
    return h.outcome()


SIMPLE = [
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
    b"GET /a/b?c=d&e=%20f HTTP/1.1\r\nhost: example.com\r\nAccept: */*\r\nUser-Agent: x y\r\n\r\n",
    b"OPTIONS /x HTTP/1.1\r\nHost: h\r\nX-Forwarded: not-the-same\r\nTEA: 1\r\n\r\n",
    b"DELETE /item/7 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nConnection: keep-alive\r\nCookie: a=b\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: h\r\nconnection: Keep-Alive\r\n\r\n",
]

GENERAL = [
    # Not HTTP/1.1, not first Host, odd spacing, a Connection or X-Forwarded-For header.
    b"GET / HTTP/1.0\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nAccept: */*\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A:  spaced\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nProxy-Authorization: x\r\nTE: trailers\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: keep-alive\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, upgrade\r\n\r\n",
    # Bodies: Content-Length and chunked.
    b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", SIMPLE)
def test_simple_requests_take_the_fast_path_and_send_the_same_bytes(request_bytes: bytes) -> None:
    assert client_module._SIMPLE(request_bytes) is not None
    fast = run(request_bytes, OK, True, True)
    general = run(request_bytes, OK, False, True)
    assert fast == general
    upstream_bytes = fast[0]
    assert b"\r\nX-Forwarded-For: 10.0.0.7\r\n" in upstream_bytes
    assert b"\r\nX-Forwarded-Proto: http\r\n" in upstream_bytes
    body = b"" if request_bytes.startswith(b"HEAD") else b"hello"  # no body after HEAD
    assert fast[1].endswith(b"\r\n\r\n" + body) and not fast[2]


@pytest.mark.parametrize("request_bytes", GENERAL)
def test_other_requests_fall_back_to_the_parser(request_bytes: bytes) -> None:
    assert client_module._SIMPLE(request_bytes) is None
    assert run(request_bytes, OK, True, True) == run(request_bytes, OK, False, True)


def test_fast_path_answers_keep_the_connection_usable() -> None:
    h = Harness()
    for _ in range(3):
        h.send(SIMPLE[0], True)
        h.answer(OK, True)
    assert h.client_transport.out.count(b"hello") == 3
    assert not h.client_transport.closed
    assert h.rt.states[0].counters.requests == 3
    assert h.rt.states[0].upstreams[0].in_flight == 0


def test_pipelined_requests_go_through_the_parser_in_order() -> None:
    h = Harness()
    h.send(SIMPLE[0] + SIMPLE[3], True)  # two requests in one read
    assert h.client.queue  # the second waits behind the first
    h.answer(OK, True)
    h.answer(OK.replace(b"hello", b"world"), True)
    out = bytes(h.client_transport.out)
    assert out.index(b"hello") < out.index(b"world")
    assert h.rt.states[0].counters.requests == 2


def test_request_after_a_split_head_uses_the_parser_state() -> None:
    h = Harness()
    h.send(SIMPLE[0][:10], True)  # the parser holds a partial head: no fast path now
    h.send(SIMPLE[0][10:], True)
    h.answer(OK, True)
    assert h.client_transport.out.endswith(b"hello")
    h.send(SIMPLE[1], True)
    h.answer(OK, True)
    assert h.rt.states[0].counters.requests == 2


RESPONSES = [
    OK,
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n\r\nno",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
]


@pytest.mark.parametrize("response", RESPONSES)
@pytest.mark.parametrize("request_bytes", [SIMPLE[0], b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"])
def test_whole_and_split_responses_reach_the_client_alike(
    request_bytes: bytes, response: bytes
) -> None:
    if request_bytes.startswith(b"HEAD"):
        # A response to HEAD has no body, whatever its framing says.
        head, _, _ = response.rpartition(b"\r\n\r\n")
        response = head + b"\r\n\r\n"
    whole = run(request_bytes, response, True, True)
    split = run(request_bytes, response, True, False)
    assert whole == split
    assert whole[5] == 1  # counted once


def test_connection_close_request_closes_after_the_answer() -> None:
    h = Harness()
    h.send(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", True)
    h.answer(OK, True)
    assert b"Connection: close\r\n" in h.client_transport.out
    assert h.client_transport.closed


STICKY = Table((Route(1, 100, ("127.0.0.1:9",)),), StickyRule(cookie="bucket"))
CANARY = Table(
    (Route(1, 100, ("127.0.0.1:9",)),), header_routes=(HeaderRule("X-Canary", "always", 1),)
)


def test_without_rules_the_matcher_is_never_asked() -> None:
    h = Harness()
    assert h.rt.rules is None
    for request in SIMPLE[:3] + GENERAL[:3]:
        h.send(request, True)
        h.answer(OK, True)
    assert h.rt.stats()["rules"] == dict.fromkeys(
        ("header_routed", "sticky_routed", "weighted", "cookies_set"), 0
    )
    assert b"Set-Cookie" not in h.client_transport.out


@pytest.mark.parametrize("response", RESPONSES)
@pytest.mark.parametrize("request_bytes", [SIMPLE[0], SIMPLE[4], GENERAL[0], GENERAL[9]])
def test_sticky_cookie_is_set_alike_on_fast_and_general_paths(
    request_bytes: bytes, response: bytes
) -> None:
    fast = run(request_bytes, response, True, True, STICKY)
    general = run(request_bytes, response, False, False, STICKY)
    assert fast == general
    head = fast[1].split(b"\r\n\r\n", 1)[0] if not response.startswith(b"HTTP/1.1 100") else b""
    if head:
        assert b"\r\nSet-Cookie: bucket=0; Path=/; HttpOnly; SameSite=Lax" in head


def test_rules_read_headers_on_both_paths() -> None:
    with_cookie = b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a=1; bucket=42\r\n\r\n"
    for whole in (True, False):
        h = Harness(STICKY)
        h.send(with_cookie, whole)
        h.answer(OK, True)
        assert b"Set-Cookie" not in h.client_transport.out
        assert h.rt.stats()["rules"]["sticky_routed"] == 1
        h = Harness(CANARY)
        h.send(b"GET / HTTP/1.1\r\nHost: h\r\nx-canary: always\r\n\r\n", whole)
        h.answer(OK, True)
        assert h.rt.stats()["rules"]["header_routed"] == 1
