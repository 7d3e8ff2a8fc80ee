"""nginx.conf rendering of the nginx router: weights, rules, quoting and table validation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from baepo.core.ports import Backend, HeaderRoute, Sticky
from baepo.errors import ConfigError
from baepo.routers.nginx import accesslog, procfs
from baepo.routers.nginx.render import (
    Settings,
    Table,
    exact_key,
    quote,
    render,
    render_front,
    revision_of,
    split_entries,
    validate,
)

SETTINGS = Settings(
    folder=Path("/srv/r"),
    listen="127.0.0.1:8080",
    status_socket=Path("/srv/r/status.sock"),
    upstream_timeout=30,
    idle_timeout=75,
    drain_timeout=10,
    generation=7,
)


def test_weights_become_split_clients_newest_first() -> None:
    table = validate(
        [
            Backend(1, 75, ("127.0.0.1:9001", "127.0.0.1:9002")),
            Backend(2, 25, ("127.0.0.1:9003",)),
            Backend(3, 0, ("127.0.0.1:9004",)),
        ]
    )
    assert split_entries(table) == [("25.00%", "baepo_r2"), ("*", "baepo_r1")]
    conf = render(SETTINGS, table)
    assert "server 127.0.0.1:9001 max_fails=0;\n        server 127.0.0.1:9002" in conf
    assert "upstream baepo_r3 {" in conf  # kept for header routes, out of the split
    assert 'split_clients "$request_id" $baepo_weighted' in conf
    assert "worker_shutdown_timeout 10000ms;" in conf
    assert 'return 200 "7\\n";' in conf


def test_relative_weights_and_rounding() -> None:
    table = validate([Backend(1, 1, ("h:1",)), Backend(2, 1, ("h:2",)), Backend(3, 1, ("h:3",))])
    assert split_entries(table) == [
        ("33.33%", "baepo_r3"),
        ("33.33%", "baepo_r2"),
        ("*", "baepo_r1"),
    ]
    # A revision without upstreams is out of the split and has no upstream group.
    table = validate([Backend(1, 50, ()), Backend(2, 50, ("h:2",))])
    assert split_entries(table) == [("*", "baepo_r2")]
    assert "baepo_r1 {" not in render(SETTINGS, table)


def test_empty_table_answers_503() -> None:
    conf = render(SETTINGS, Table())
    assert "split_clients" not in conf
    assert 'return 503 "no ready instance\\n";' in conf
    assert "    upstream " not in conf


def test_header_routes_chain_maps_to_the_weighted_choice() -> None:
    table = validate(
        [Backend(1, 100, ("h:1",)), Backend(2, 0, ("h:2",)), Backend(3, 0, ())],
        header_routes=[
            HeaderRoute("X-Canary", "yes", 2),
            HeaderRoute("X-Gone", "1", 3),  # no upstreams: ignored
            HeaderRoute("X-Beta", "on", 1),
        ],
    )
    conf = render(SETTINGS, table)
    assert "map $http_x_canary $baepo_upstream {" in conf
    assert '"~^yes$" baepo_r2;\n        default $baepo_route1;' in conf
    assert "map $http_x_beta $baepo_route1 {" in conf
    assert "default $baepo_weighted;" in conf
    assert "x_gone" not in conf


def test_sticky_cookie_and_header() -> None:
    backends = [Backend(1, 90, ("h:1",)), Backend(2, 10, ("h:2",))]
    conf = render(SETTINGS, validate(backends, Sticky(cookie="sid")))
    assert 'split_clients "$baepo_sticky_key"' in conf
    assert "map $cookie_sid $baepo_sticky_key" in conf
    assert "add_header Set-Cookie $baepo_set_cookie always;" in conf
    conf = render(SETTINGS, validate(backends, Sticky(header="X-User")))
    assert "map $http_x_user $baepo_sticky_key" in conf
    assert "Set-Cookie" not in conf


def test_quoting() -> None:
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert exact_key("~v$") == '"~^\\\\~v\\\\$$"'
    assert revision_of("baepo_r12") == 12
    assert revision_of("") is None
    assert revision_of("baepo_rx") is None


@pytest.mark.parametrize(
    ("backends", "sticky", "routes", "field"),
    [
        ([Backend(1, 101, ())], None, [], "backends[0].weight"),
        ([Backend(1, -1, ())], None, [], "backends[0].weight"),
        ([Backend(1, 1, ("nohost",))], None, [], "backends[0].upstreams[0]"),
        ([Backend(1, 1, ("h:70000",))], None, [], "backends[0].upstreams[0]"),
        ([Backend(1, 1, ()), Backend(1, 1, ())], None, [], "backends[1].revision"),
        ([], Sticky(cookie="my-session"), [], "sticky.cookie"),
        ([], Sticky(header="X_User"), [], "sticky.header"),
        ([], Sticky(), [], "sticky"),
        ([], None, [HeaderRoute("X Bad", "1", 1)], "header_routes[0].header"),
        ([], None, [HeaderRoute("X-Ok", "a\nb", 1)], "header_routes[0].value"),
    ],
)
def test_what_nginx_cannot_express_names_the_field(
    backends: list[Backend], sticky: Sticky | None, routes: list[HeaderRoute], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        validate(backends, sticky, routes)
    assert [p.path for p in caught.value.problems] == [field]


def test_table_json_round_trip_and_determinism() -> None:
    table = validate(
        [Backend(4, 30, ("h:1", "h:2"))], Sticky(cookie="sid"), [HeaderRoute("X-A", "b", 4)]
    )
    assert Table.from_json(table.to_json()) == table
    reordered = validate([Backend(1, 0, ()), Backend(4, 30, ("h:2", "h:1"))], Sticky(cookie="sid"))
    assert not reordered.same_routing(table)
    assert validate([Backend(4, 30, ("h:2", "h:1")), Backend(1, 0, ())]).same_routing(
        validate([Backend(1, 0, ()), Backend(4, 30, ("h:1", "h:2"))])
    )
    assert render(SETTINGS, table) == render(SETTINGS, Table.from_json(table.to_json()))


def test_front_forwards_to_the_back_socket_and_retries_closed_connections() -> None:
    settings = replace(SETTINGS, back_socket=Path("/srv/r/back.sock"))
    front = render_front(settings)
    assert "listen 127.0.0.1:8080;" in front
    assert "server unix:/srv/r/back.sock max_fails=0;" in front
    assert "proxy_next_upstream error non_idempotent;" in front
    assert "pid /srv/r/front.pid;" in front
    back = render(settings, validate([Backend(1, 100, ("h:1",))]))
    assert "listen unix:/srv/r/back.sock;" in back
    assert "listen 127.0.0.1:8080" not in back
    assert "proxy_set_header X-Forwarded-For $http_x_forwarded_for;" in back
    # Neither server closes a kept-alive connection after nginx's default 1000 requests.
    for config in (front, back):
        server = config[config.index("    server {") :]
        assert "keepalive_requests 100000;" in server


def _line(upstream: str, status: int, seconds: float, header_time: str = "0.001") -> str:
    return json.dumps(
        {"u": upstream, "s": str(status), "t": str(seconds), "a": "", "h": header_time}
    )


def test_access_log_counts_incrementally_and_survives_rotation(tmp_path: Path) -> None:
    log, state = tmp_path / "access.log", tmp_path / "stats.json"
    log.write_text(
        "\n".join(
            [
                _line("baepo_r1", 200, 0.003),
                _line("baepo_r1", 500, 0.2),
                _line("baepo_r1", 502, 5.0, "-"),  # nginx's own: no upstream answered
                _line("baepo_r2", 404, 0.0),
                _line("", 503, 0.0),  # empty table: no revision
                "not json",
            ]
        )
        + "\n"
        + _line("baepo_r2", 200, 0.001)[:10]  # half-written line: read next time
    )
    stats = {s.revision: s for s in accesslog.to_stats(accesslog.update(log, state), {1: 2})}
    assert stats[1].requests == 3
    assert stats[1].status["2xx"] == 1
    assert stats[1].status["5xx"] == 1
    assert stats[1].status["error"] == 1
    assert stats[1].latency_buckets["0.005"] == 1
    assert stats[1].latency_buckets["0.25"] == 2
    assert stats[1].latency_buckets["+Inf"] == 3
    assert stats[1].in_flight == 2
    assert stats[2].status["4xx"] == 1
    # Nothing is read twice; the completed line is counted once.
    with log.open("a") as handle:
        handle.write(_line("baepo_r2", 200, 0.001)[10:] + "\n")
    reopened: list[bool] = []
    revisions = accesslog.update(log, state, rotate_bytes=10, reopen=lambda: reopened.append(True))
    assert revisions["2"]["requests"] == 2
    assert reopened == [True]
    assert not log.exists()
    # nginx still wrote to the renamed file before reopening, then to a new one.
    with (tmp_path / "access.log.1").open("a") as handle:
        handle.write(_line("baepo_r2", 200, 0.001) + "\n")
    log.write_text(_line("baepo_r1", 200, 0.001) + "\n")
    revisions = accesslog.update(log, state)
    assert (revisions["1"]["requests"], revisions["2"]["requests"]) == (4, 3)
    assert accesslog.update(log, state) == revisions


def test_proc_net_addresses() -> None:
    assert procfs._address("0100007F:1F90", v6=False) == "127.0.0.1:8080"
    assert procfs._address("0000000000000000FFFF00000100007F:0050", v6=True) == "127.0.0.1:80"
    assert procfs._address("00000000000000000000000001000000:0050", v6=True) == "[::1]:80"
