"""HAProxy's configuration and per-server weights from a routing table (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from baepo.core.ports import Backend
from baepo.routers.haproxy.adapter import count_line, parse_stat
from baepo.routers.haproxy.render import Settings, render, revision_of, server_name, servers


def shares(table: list[Backend]) -> dict[int, float]:
    weights: dict[int, int] = {}
    for server in servers(table):
        weights[server.revision] = weights.get(server.revision, 0) + server.weight
    total = sum(weights.values())
    return {revision: 100 * weight / total for revision, weight in weights.items()}


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ([Backend(1, 95, ("a:1", "a:2", "a:3")), Backend(2, 5, ("b:1",))], {1: 95, 2: 5}),
        ([Backend(1, 50, ("a:1",)), Backend(2, 50, ("b:1", "b:2"))], {1: 50, 2: 50}),
        ([Backend(1, 99, tuple(f"a:{i}" for i in range(7))), Backend(2, 1, ("b:1",))],
         {1: 99, 2: 1}),
    ],
)  # fmt: skip
def test_each_revision_keeps_its_share(table: list[Backend], expected: dict[int, float]) -> None:
    got = shares(table)
    for revision, share in expected.items():
        assert got[revision] == pytest.approx(share, abs=0.5)
    assert all(0 <= s.weight <= 256 for s in servers(table))


def test_zero_weight_and_empty_revisions() -> None:
    table = [Backend(1, 100, ("a:1",)), Backend(2, 0, ("b:1",)), Backend(3, 50, ())]
    assert [(s.revision, s.weight) for s in servers(table)] == [(1, 100), (2, 0)]
    assert servers([]) == []


def test_names_carry_the_revision() -> None:
    name = server_name(12, "[::1]:8080")
    assert name == "baepo_r12-___1__8080"
    assert revision_of(name) == 12
    assert revision_of("baepo_r12") == 12  # as logged: the name's first field
    assert revision_of("") is None
    assert revision_of("other-1") is None


def test_render_has_the_admin_socket_the_bind_and_the_servers() -> None:
    settings = Settings("[::1]:8080", Path("/run/x/admin.sock"), 60.0, 75.0)
    text = render(settings, servers([Backend(3, 100, ("127.0.0.1:9000",))]))
    assert "stats socket /run/x/admin.sock mode 600 level admin expose-fd listeners" in text
    assert "    bind ::1:8080\n" in text
    assert "    timeout server 60000ms\n" in text
    assert "    timeout http-keep-alive 75000ms\n" in text
    assert "    server baepo_r3-127.0.0.1_9000 127.0.0.1:9000 weight 100\n" in text


def test_log_lines_count_by_revision_and_status() -> None:
    revisions: dict[str, dict[str, object]] = {}
    for line in (
        b'{"u":"baepo_r2","s":"200","t":"12","h":"10"}',
        b'{"u":"baepo_r2","s":"503","t":"3","h":"-1"}',  # no server answered: HAProxy's own
        b'{"u":"baepo_r2","s":"503","t":"3","h":"2"}',  # the app's 503
        b'{"u":"","s":"503","t":"0","h":"-1"}',  # no server at all: no revision
        b"[NOTICE] (1) : Loading success.",
    ):
        count_line(revisions, line)  # type: ignore[arg-type]
    counters = revisions["2"]
    assert counters["requests"] == 3
    assert counters["status"] == {"1xx": 0, "2xx": 1, "3xx": 0, "4xx": 0, "5xx": 1, "error": 1}
    assert list(revisions) == ["2"]


def test_show_stat_csv_is_read_by_column_name() -> None:
    text = "# pxname,svname,scur,status,weight,addr,\napp,baepo_r1-a_1,2,UP,100,a:1,\n\n"
    assert parse_stat(text) == [
        {"pxname": "app", "svname": "baepo_r1-a_1", "scur": "2", "status": "UP",
         "weight": "100", "addr": "a:1", "": ""}
    ]  # fmt: skip
