"""Response head rewriting of the built-in router (``wire.rewrite_response_head``)."""

from __future__ import annotations

import pytest

from baepo.routers.builtin import wire

STATUS = b"HTTP/1.1 200 OK\r\n"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        # No hop-by-hop header at all: unchanged.
        (b"Content-Length: 5\r\n", b"Content-Length: 5\r\n"),
        # What most servers send.
        (
            b"Server: x\r\nConnection: keep-alive\r\nContent-Length: 5\r\n",
            b"Server: x\r\nContent-Length: 5\r\n",
        ),
        (b"Content-Length: 5\r\nConnection: keep-alive\r\n", b"Content-Length: 5\r\n"),
        # Other spellings and other hop-by-hop headers.
        (
            b"connection: Keep-Alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n",
            b"Content-Length: 5\r\n",
        ),
        (b"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nX: 1\r\n", b"X: 1\r\n"),
        (b"Proxy-Authenticate: Basic\r\nTE: trailers\r\nUpgrade: h2c\r\nX: 1\r\n", b"X: 1\r\n"),
        # Headers named in Connection go too.
        (b"Connection: close, X-Secret\r\nX-Secret: s\r\nX: 1\r\n", b"X: 1\r\n"),
        # Words in values or longer names are not headers to drop.
        (
            b"X-Note: connection upgrade te\r\nTEXT: 1\r\nUpgraded: no\r\n",
            b"X-Note: connection upgrade te\r\nTEXT: 1\r\nUpgraded: no\r\n",
        ),
    ],
)
def test_hop_by_hop_headers_are_dropped(head: bytes, expected: bytes) -> None:
    assert wire.rewrite_response_head(STATUS + head, False) == STATUS + expected + b"\r\n"


def test_close_is_announced() -> None:
    head = STATUS + b"Connection: keep-alive\r\nContent-Length: 5\r\n"
    expected = STATUS + b"Content-Length: 5\r\nConnection: close\r\n\r\n"
    assert wire.rewrite_response_head(head, True) == expected
    plain = STATUS + b"Content-Length: 5\r\n"
    assert wire.rewrite_response_head(plain, True) == expected
