"""The evidence of a failed start: output tails made safe to show, and who holds a port."""

from __future__ import annotations

import socket
from pathlib import Path

from baepo.core import evidence
from baepo.routers.haproxy import adapter
from baepo.shell import listeners


def test_the_tail_keeps_the_last_lines_bounded_clean_and_without_secrets() -> None:
    lines = [f"line {n}\n" for n in range(30)] + [
        "\x1b[31mTraceback (most recent call last):\x1b[0m\r\n",
        "  password=hunter22 token=ab\n",
        "ModuleNotFoundError: No module named 'flaskk'\n",
        "x" * 1000,
        "   \n",
    ]
    tail = evidence.output_tail(lines, ["hunter22", "ab"])
    assert len(tail) == evidence.TAIL_LINES
    assert tail[-4] == "Traceback (most recent call last):"
    assert tail[-3] == "  password=*** token=ab"  # short values are not blanked
    assert tail[-2] == "ModuleNotFoundError: No module named 'flaskk'"
    assert len(tail[-1]) == evidence.LINE_CHARS and tail[-1].endswith("…")
    assert tail[0] == "line 14"


def test_a_port_conflict_is_read_from_the_usual_messages() -> None:
    assert evidence.port_conflict(["OSError: [Errno 98] Address already in use"])
    assert evidence.port_conflict(["Error: listen EADDRINUSE: address already in use :::3000"])
    assert evidence.port_conflict(["[ERROR] Connection in use: ('127.0.0.1', 8000)"])
    assert not evidence.port_conflict(["ModuleNotFoundError: No module named 'x'"])


def test_the_holder_of_a_listening_port_is_named_by_pid_and_program() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        found = listeners.holder(port)
        assert found is not None and found.startswith("pid ")
        assert listeners.describe(port).startswith(f"port {port} is taken by pid ")
    assert listeners.holder(port) is None
    assert listeners.describe(port) == f"port {port} is taken (address already in use)"


def test_without_proc_the_holder_is_unknown_and_nothing_fails(tmp_path: Path) -> None:
    assert listeners.holder(8080, proc=tmp_path) is None


def test_haproxy_that_cannot_bind_says_why_not_only_that_it_failed(tmp_path: Path) -> None:
    (tmp_path / "access.log").write_text(
        "[ALERT]    (12) : an older run\n"
        "[ALERT]    (8766) : Binding [haproxy.cfg:24] for frontend main: cannot bind socket "
        "(Address already in use) for [127.0.0.1:8080]\n"
        "[ALERT]    (8766) : [/usr/sbin/haproxy.main()] Some protocols failed to start their "
        "listeners! Exiting.\n"
    )
    reason = adapter._last_alert(tmp_path)
    assert "an older run" not in reason
    assert "cannot bind socket (Address already in use)" in reason
    assert evidence.port_conflict([reason])
