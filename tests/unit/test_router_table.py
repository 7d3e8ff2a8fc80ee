"""Pure logic of the built-in router: table validation, weighted selection, stats, head rewrite."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from baepo.routers.builtin import wire
from baepo.routers.builtin.stats import RevisionCounters
from baepo.routers.builtin.table import (
    Route,
    Table,
    TableError,
    WeightedCycle,
    parse_table,
    pick_least_loaded,
    smooth_schedule,
    split_address,
)


def test_parse_table_accepts_a_valid_table() -> None:
    routes = parse_table(
        {"backends": [{"revision": 2, "weight": 5, "upstreams": ["127.0.0.1:80", "[::1]:81"]}]}
    )
    assert routes == Table((Route(2, 5, ("127.0.0.1:80", "[::1]:81")),))
    assert not routes.has_rules


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"backend": []}, "backend"),
        ({"backends": {}}, "backends"),
        ({"backends": [1]}, "backends[0]"),
        ({"backends": [{"revision": "1", "weight": 1, "upstreams": []}]}, "backends[0].revision"),
        ({"backends": [{"revision": True, "weight": 1, "upstreams": []}]}, "backends[0].revision"),
        ({"backends": [{"revision": 1, "weight": -1, "upstreams": []}]}, "backends[0].weight"),
        ({"backends": [{"revision": 1, "weight": 1, "upstreams": "a"}]}, "backends[0].upstreams"),
        (
            {"backends": [{"revision": 1, "weight": 1, "upstreams": ["a:0"]}]},
            "backends[0].upstreams[0]",
        ),
        ({"backends": [{"revision": 1, "weight": 1, "upstreams": [], "x": 1}]}, "backends[0].x"),
        (
            {
                "backends": [
                    {"revision": 1, "weight": 1, "upstreams": []},
                    {"revision": 1, "weight": 1, "upstreams": []},
                ]
            },
            "backends[1].revision",
        ),
    ],
)
def test_parse_table_names_the_bad_field(body: object, field: str) -> None:
    with pytest.raises(TableError) as info:
        parse_table(body)
    assert str(info.value).startswith(field + ":")


def test_split_address() -> None:
    assert split_address("localhost:8080") == ("localhost", 8080)
    assert split_address("[::1]:9") == ("::1", 9)
    for bad in ("nohost", ":80", "a:b", "a:70000"):
        with pytest.raises(ValueError):
            split_address(bad)


def test_smooth_schedule_interleaves() -> None:
    assert smooth_schedule([5, 1, 1]) == [0, 0, 1, 0, 2, 0, 0]
    assert smooth_schedule([0, 0]) == []
    assert smooth_schedule([80, 20]) == [0, 0, 1, 0, 0]


@given(st.lists(st.integers(0, 50), min_size=1, max_size=5), st.integers(1, 3))
def test_weighted_cycle_gives_exact_shares(weights: list[int], rounds: int) -> None:
    cycle = WeightedCycle(list(range(len(weights))), weights)
    total = sum(weights)
    if total == 0:
        assert cycle.next() is None
        return
    picks = Counter(cycle.next() for _ in range(total * rounds))
    for i, w in enumerate(weights):
        assert picks[i] == w * rounds


def test_weighted_cycle_without_precomputed_schedule() -> None:
    cycle = WeightedCycle(["a", "b"], [999_983, 1_000_003])  # coprime: cycle too long to keep
    picks = Counter(cycle.next() for _ in range(1000))
    assert abs(picks["a"] - picks["b"]) <= 2


@dataclass
class _Up:
    name: str
    in_flight: int = 0


def test_pick_least_loaded_prefers_idle_and_rotates() -> None:
    ups = [_Up("a", 2), _Up("b", 1), _Up("c", 1)]
    assert pick_least_loaded(ups, 0).name == "b"
    assert pick_least_loaded(ups, 2).name == "c"
    idle = [_Up("a"), _Up("b")]
    assert [pick_least_loaded(idle, i).name for i in range(4)] == ["a", "b", "a", "b"]


def test_counters_snapshot_is_cumulative() -> None:
    counters = RevisionCounters(4)
    counters.record(2, 0.0005)
    counters.record(5, 0.3)
    counters.record(6, 20.0)
    snap = counters.snapshot(in_flight=1)
    assert snap["requests"] == 3
    assert snap["status"] == {"1xx": 0, "2xx": 1, "3xx": 0, "4xx": 0, "5xx": 1, "error": 1}
    assert snap["latency_buckets"]["0.001"] == 1
    assert snap["latency_buckets"]["0.5"] == 2
    assert snap["latency_buckets"]["10"] == 2
    assert snap["latency_buckets"]["+Inf"] == 3
    assert snap["in_flight"] == 1


def test_response_head_rewrite_drops_hop_by_hop() -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\n"
        b"X-Secret: 1\r\nProxy-Authenticate: Basic\r\nContent-Length: 2\r\nTrailer: X-T\r\n"
    )
    out = wire.rewrite_response_head(head, close=False)
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTrailer: X-T\r\n\r\n"
    plain = b"HTTP/1.1 204 No Content\r\nServer: x\r\n"
    assert wire.rewrite_response_head(plain, close=True) == plain + b"Connection: close\r\n\r\n"


def test_error_response_is_plain_text() -> None:
    out = wire.error_response(503, "no instance is ready", close=False)
    head, body = out.split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable")
    assert b"Content-Length: %d" % len(body) in head
    assert body == b"503 Service Unavailable: no instance is ready\n"


def test_router_process_imports_stay_light() -> None:
    code = (
        "import sys, baepo.routers.builtin.server;"
        "heavy = {'httpx', 'pydantic', 'fastapi', 'baepo.spec', 'baepo.core', 'yaml'};"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_admin_socket_moves_out_of_folders_too_deep_for_a_unix_socket(tmp_path: Path) -> None:
    from baepo.routers.builtin.payloads import SUN_PATH_MAX, admin_socket

    shallow = tmp_path / "r"
    assert admin_socket(shallow) == shallow / "admin.sock"
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    sock = admin_socket(deep)
    assert len(str(sock)) <= SUN_PATH_MAX
    assert sock == admin_socket(deep)  # adapter and router compute the same place
    assert sock != admin_socket(tmp_path / ("x" * 60) / ("z" * 60))
    assert (sock.parent.stat().st_mode & 0o777) == 0o700
