"""HAProxy's configuration and per-server weights from a routing table (pure functions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from baepo.core.ports import Backend, HeaderRoute, Sticky
from baepo.errors import ConfigError
from baepo.routers.haproxy import rules as routing
from baepo.routers.haproxy.adapter import changes, count_line, parse_stat
from baepo.routers.haproxy.render import (
    Server,
    Settings,
    render,
    revision_of,
    server_name,
    servers,
)


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


RULES_TABLE = [Backend(1, 75, ("127.0.0.1:9001",)), Backend(2, 25, ("127.0.0.1:9002",))]


def _rules(sticky: Sticky | None, routes: tuple[HeaderRoute, ...] = ()) -> routing.Rules:
    return routing.Rules(sticky, routes, (1, 2), Path("/s/buckets.map"))


def test_without_rules_the_configuration_has_no_rule() -> None:
    text = render(Settings("127.0.0.1:80", Path("/a.sock"), 1.0, 1.0), servers(RULES_TABLE))
    assert "http-request" not in text
    assert "use_backend" not in text
    assert "backend baepo_r" not in text


def test_render_with_a_sticky_cookie_and_a_header_route() -> None:
    rules = _rules(Sticky(cookie="sid"), (HeaderRoute("X-Canary", 'a"b $c\\', 2),))
    settings = Settings("127.0.0.1:80", Path("/a.sock"), 1.0, 1.0)
    text = render(settings, servers(RULES_TABLE), rules, RULES_TABLE)
    unset = "!{ var(txn.baepo_be) -m found }"
    lookup = "map_int(/s/buckets.map)"
    expected = [
        "    http-request set-var(txn.baepo_be) str(baepo_r2) if " + unset
        + ' { req.fhdr(X-Canary) -m str "a\\"b \\$c\\\\" } { nbsrv(baepo_r2) gt 0 }',
        f"    http-request set-var(txn.baepo_be) req.cook(sid),{lookup} if {unset} "
        "{ req.cook(sid) -m reg ^[0-9]{1,2}$ }",
        f"    http-request set-var(txn.baepo_new) rand(100) if {unset}",
        f"    http-request set-var(txn.baepo_be) var(txn.baepo_new),{lookup} if {unset} "
        "{ var(txn.baepo_new) -m found }",
        f"    http-request unset-var(txn.baepo_new) if {unset}",
        '    http-response add-header Set-Cookie "sid=%[var(txn.baepo_new)]; Path=/; HttpOnly; '
        'SameSite=Lax" if { var(txn.baepo_new) -m found }',
        "    use_backend %[var(txn.baepo_be)] if { var(txn.baepo_be) -m found }",
        "    default_backend app",
    ]  # fmt: skip
    lines = text.splitlines()
    start = lines.index("    bind 127.0.0.1:80") + 1
    assert lines[start : start + len(expected)] == expected
    assert "\nbackend baepo_r1\n    balance roundrobin\n" in text
    assert "    server baepo_r1-127.0.0.1_9001 127.0.0.1:9001 weight 1\n" in text
    assert "    server baepo_r2-127.0.0.1_9002 127.0.0.1:9002 weight 1\n" in text
    assert "    server baepo_r1-127.0.0.1_9001 127.0.0.1:9001 weight 75\n" in text  # app


def test_render_with_a_sticky_header_hashes_its_first_value() -> None:
    rules = _rules(Sticky(header="X-User"))
    text = render(Settings("127.0.0.1:80", Path("/a.sock"), 1.0, 1.0), [], rules, [])
    assert (
        "    http-request set-var(txn.baepo_be) req.fhdr(X-User,1),crc32,mod(100),"
        "map_int(/s/buckets.map) if !{ var(txn.baepo_be) -m found } "
        "{ req.fhdr(X-User,1) -m found }\n"
    ) in text
    assert "Set-Cookie" not in text
    assert "backend baepo_r1\n    balance roundrobin\n\nbackend baepo_r2\n" in text  # no server


def test_bucket_map_is_the_builtin_routers_ranges() -> None:
    entries = routing.bucket_map(RULES_TABLE)
    assert [b for b, n in entries.items() if n == "baepo_r2"] == list(range(25))
    assert [b for b, n in entries.items() if n == "baepo_r1"] == list(range(25, 100))
    # A revision without ready upstreams owns nothing, whatever its weight.
    assert set(routing.bucket_map([Backend(1, 50, ("a:1",)), Backend(2, 50, ())]).values()) == {
        "baepo_r1"
    }
    assert routing.bucket_map([Backend(1, 0, ("a:1",))]) == {}
    assert routing.render_map({1: "baepo_r2", 0: "baepo_r2"}) == "0 baepo_r2\n1 baepo_r2\n"
    assert routing.map_commands(Path("/m"), "3", {0: "baepo_r1"}) == [
        "add map @3 /m 0 baepo_r1",
        "commit map @3 /m",
    ]


@pytest.mark.parametrize(
    ("sticky", "routes", "path"),
    [
        (Sticky(cookie="a$b"), (), "sticky.cookie"),
        (Sticky(header="Connection"), (), "sticky.header"),  # the proxy rewrites it
        (Sticky(cookie="a", header="b"), (), "sticky"),
        (None, (HeaderRoute("X-Canary", "yes", 9),), "header_routes[0].revision"),
        (None, (HeaderRoute("X Canary", "yes", 1),), "header_routes[0].header"),
        (None, (HeaderRoute("X-Canary", "line\nbreak", 1),), "header_routes[0].value"),
    ],
)
def test_invalid_rules_name_the_field(
    sticky: Sticky | None, routes: tuple[HeaderRoute, ...], path: str
) -> None:
    with pytest.raises(ConfigError) as error:
        routing.validate(RULES_TABLE, sticky, routes)
    assert [p.path for p in error.value.problems] == [path]


def test_changes_raise_capacity_first_and_drain_last() -> None:
    wanted = {
        "n": Server("n", "a:1", 1, 5),
        "up": Server("up", "a:2", 1, 9),
        "down": Server("down", "a:3", 1, 1),
        "back": Server("back", "a:4", 1, 2),
    }
    current = {
        "up": {"weight": "3", "status": "UP"},
        "down": {"weight": "4", "status": "UP"},
        "back": {"weight": "0", "status": "DRAIN"},
        "gone": {"weight": "4", "status": "UP"},
        "going": {"weight": "4", "status": "DRAIN"},
    }
    first, then, drain = changes("baepo_r1", wanted, current)
    assert first == [
        "add server baepo_r1/n a:1 weight 5",
        "enable server baepo_r1/n",
        "set weight baepo_r1/up 9",
        "set weight baepo_r1/back 2",
        "set server baepo_r1/back state ready",
    ]
    assert then == ["set weight baepo_r1/down 1"]
    assert drain == ["set server baepo_r1/gone state drain"]
