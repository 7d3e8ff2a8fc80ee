"""HTTP/1.1 behaviour of the built-in router: a real router process, real upstreams."""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from upstreams import RouterProcess, UpstreamServer, free_port, raw_exchange, ws_frame

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with UpstreamServer("a") as server:
        yield server


@pytest.fixture(scope="module")
def router(
    tmp_path_factory: pytest.TempPathFactory, upstream: UpstreamServer
) -> Iterator[RouterProcess]:
    folder = tmp_path_factory.mktemp("router")
    with RouterProcess(folder, "--upstream-timeout", "1", "--idle-timeout", "2") as proc:
        proc.put((1, 100, [upstream.address]))
        yield proc


@pytest.fixture
def client(router: RouterProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=router.url, timeout=10) as c:
        yield c


def test_content_length_bodies_both_ways(client: httpx.Client) -> None:
    body = os.urandom(200_000).hex()
    response = client.post("/echo", content=body.encode())
    assert response.status_code == 200
    assert response.json()["body"] == body
    assert response.json()["headers"]["content-length"] == str(len(body))


def test_chunked_bodies_both_ways(client: httpx.Client) -> None:
    parts = [b"first-", b"second-", b"third"]
    response = client.post("/echo?chunked=1", content=iter(parts))
    assert response.status_code == 200
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.json()["body"] == "first-second-third"
    assert response.json()["headers"]["transfer-encoding"] == "chunked"


def test_large_response_streams_through(client: httpx.Client) -> None:
    response = client.get("/big?size=3000000")
    assert response.status_code == 200
    assert len(response.content) == 3_000_000


def test_server_sent_events_arrive_one_by_one(router: RouterProcess) -> None:
    arrivals: list[float] = []
    with (
        httpx.Client(base_url=router.url, timeout=10) as c,
        c.stream("GET", "/sse?n=4&delay=0.4") as response,
    ):
        assert response.headers["content-type"] == "text/event-stream"
        for line in response.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.monotonic())
    assert len(arrivals) == 4
    # Events were forwarded as they came, not buffered to the end of the stream.
    assert arrivals[-1] - arrivals[0] > 0.6


def test_websocket_echo(router: RouterProcess) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /ws HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", router.port), 5) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        assert b"upgrade: websocket" in head.lower()
        rest = head.split(b"\r\n\r\n", 1)[1]
        for message in (b"hello", b"x" * 70_000):
            sock.sendall(ws_frame(1, message, mask=True))
            expected = len(ws_frame(1, message, mask=False))
            data = rest
            while len(data) < expected:
                data += sock.recv(65536)
            assert data[:expected].endswith(message)
            rest = data[expected:]


def test_forwarded_headers(client: httpx.Client) -> None:
    response = client.get(
        "/echo",
        headers={
            "X-Forwarded-For": "10.0.0.1",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "secret",
            "Connection": "keep-alive, X-Drop-Me",
            "X-Drop-Me": "1",
            "TE": "trailers",
        },
    )
    headers = response.json()["headers"]
    assert headers["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == headers["host"]
    for name in ("keep-alive", "proxy-authorization", "x-drop-me", "te", "connection"):
        assert name not in headers
    # Hop-by-hop headers of the upstream's answer are not passed to the client either.
    assert "connection" not in response.headers


def test_no_backends_is_503(tmp_path: Path) -> None:
    with RouterProcess(tmp_path) as proc, httpx.Client(base_url=proc.url) as c:
        response = c.get("/")
        assert response.status_code == 503
        assert "no instance is ready" in response.text
        proc.put((1, 0, ["127.0.0.1:9"]))
        assert c.get("/").status_code == 503


def test_dead_upstream_is_502(tmp_path: Path) -> None:
    with RouterProcess(tmp_path) as proc, httpx.Client(base_url=proc.url) as c:
        proc.put((1, 1, [f"127.0.0.1:{free_port()}"]))
        response = c.get("/")
        assert response.status_code == 502
        assert "could not connect" in response.text
        assert proc.get("/stats")["revisions"][0]["status"]["error"] == 1


def test_connect_failure_retries_another_instance_of_the_same_revision_only(
    tmp_path: Path, upstream: UpstreamServer
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with RouterProcess(tmp_path) as proc, httpx.Client(base_url=proc.url) as c:
        proc.put((1, 1, [dead, upstream.address]), (2, 1, [dead]))
        statuses = [c.post("/echo", content=b"not idempotent").status_code for _ in range(10)]
        # Revision 1 sends to its live instance what its dead one refused (nothing was sent, so
        # even a POST); revision 2 has no other instance and fails rather than leak to 1.
        assert sorted(statuses) == [200] * 5 + [502] * 5
        revisions = {item["revision"]: item for item in proc.get("/stats")["revisions"]}
        assert revisions[1]["status"]["2xx"] == 5
        assert revisions[2]["status"]["error"] == 5


def test_slow_upstream_is_504(client: httpx.Client) -> None:
    started = time.monotonic()
    response = client.get("/slow?delay=4")
    assert response.status_code == 504
    assert "did not answer within 1 s" in response.text
    assert time.monotonic() - started < 3.5
    assert client.get("/hello").status_code == 200


def test_header_too_large_is_431(router: RouterProcess) -> None:
    big = "x" * 70_000
    request = f"GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n".encode()
    answer = raw_exchange(router.port, request)
    assert answer.startswith(b"HTTP/1.1 431")
    many = "".join(f"X-H{i}: {'y' * 100}\r\n" for i in range(700))
    answer = raw_exchange(router.port, f"GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 431")


def test_malformed_request_is_400(router: RouterProcess) -> None:
    answer = raw_exchange(router.port, b"GARBAGE\x00\x01 / HTTP/9\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"Connection: close" in answer


def test_pipelined_requests_answered_in_order(router: RouterProcess) -> None:
    requests = (
        b"".join(f"GET /echo?n={i} HTTP/1.1\r\nHost: a\r\n\r\n".encode() for i in range(5))
        + b"GET /echo?n=last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    answer = raw_exchange(router.port, requests)
    assert answer.count(b"HTTP/1.1 200") == 6
    order = [answer.index(f"n={i}".encode()) for i in [*range(5), "last"]]
    assert order == sorted(order)


def test_http10_client_gets_a_closed_answer(router: RouterProcess) -> None:
    answer = raw_exchange(router.port, b"GET /hello HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"hello from a\n")
    assert b"chunked" not in answer.lower()


def test_expect_100_continue_passes_through(router: RouterProcess) -> None:
    with socket.create_connection(("127.0.0.1", router.port), 5) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(b"hello")
        data = interim
        while chunk := sock.recv(65536):
            data += chunk
    assert b"HTTP/1.1 200" in data
    assert b'"body": "hello"' in data


def test_head_request_keeps_connection_usable(router: RouterProcess) -> None:
    requests = (
        b"HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\n"
        b"GET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    )
    answer = raw_exchange(router.port, requests)
    assert answer.count(b"HTTP/1.1 200") == 2
    assert answer.endswith(b"hello from a\n")
    assert answer.count(b"hello from a") == 1


def test_idle_client_connection_is_closed(router: RouterProcess) -> None:
    with socket.create_connection(("127.0.0.1", router.port), 10) as sock:
        started = time.monotonic()
        assert sock.recv(10) == b""
        assert 1.5 < time.monotonic() - started < 6


def test_upstream_closing_idle_connections_fails_nothing(tmp_path: Path) -> None:
    with UpstreamServer("idle", idle_close=0.2) as up, RouterProcess(tmp_path) as proc:
        proc.put((1, 1, [up.address]))
        with httpx.Client(base_url=proc.url) as c:
            for i in range(12):
                method = "POST" if i % 2 else "GET"
                assert c.request(method, "/echo", content=b"x").status_code == 200
                time.sleep(0.25 if i % 3 == 0 else 0.01)
