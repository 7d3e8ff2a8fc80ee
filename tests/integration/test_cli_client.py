"""The CLI's HTTP client against a real local HTTP server: a connection kept alive after the
short health check does not impose that check's 2 s timeout on the requests that follow."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from baepo.cli.client import Client


class Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the baepo server answers

    def do_GET(self) -> None:
        if self.path.startswith("/api/v1/slow"):
            time.sleep(2.5)
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_slow_answer_after_the_health_check_is_waited_for(url: str) -> None:
    client = Client(url)
    try:
        assert client.healthy()
        assert client.get("/api/v1/slow") == {"path": "/api/v1/slow"}
        assert client.healthy()  # and the short check still works on the same connection
    finally:
        client.close()
