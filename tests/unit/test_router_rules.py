"""Routing rules of the built-in router: validation, bucket ranges, and the matcher's choices."""

from __future__ import annotations

from dataclasses import dataclass, field
from zlib import crc32

import pytest

from baepo.routers.builtin.rules import Matcher, bucket_ranges, header_bucket, set_cookie_line
from baepo.routers.builtin.table import (
    HeaderRule,
    StickyRule,
    Table,
    TableError,
    parse_table,
    table_json,
)

BACKENDS = [
    {"revision": 1, "weight": 75, "upstreams": ["127.0.0.1:81"]},
    {"revision": 2, "weight": 25, "upstreams": ["127.0.0.1:82"]},
]


@dataclass
class Target:
    revision: int
    upstreams: list[str] = field(default_factory=lambda: ["127.0.0.1:1"])


def head(*lines: str) -> bytes:
    return ("GET / HTTP/1.1\r\nHost: h\r\n" + "".join(f"{x}\r\n" for x in lines) + "\r\n").encode()


def test_parse_table_reads_rules_and_writes_them_back() -> None:
    body = {
        "backends": BACKENDS,
        "sticky": {"cookie": "baepo-bucket"},
        "header_routes": [{"header": "X-Canary", "value": "always", "revision": 2}],
    }
    table = parse_table(body)
    assert table.sticky == StickyRule(cookie="baepo-bucket")
    assert table.header_routes == (HeaderRule("X-Canary", "always", 2),)
    assert table.has_rules
    assert table_json(table) == body
    assert parse_table(table_json(table)) == table
    plain = parse_table({"backends": BACKENDS, "sticky": None, "header_routes": []})
    assert not plain.has_rules
    assert table_json(plain)["sticky"] is None


@pytest.mark.parametrize(
    ("extra", "field_name"),
    [
        ({"sticky": "cookie"}, "sticky"),
        ({"sticky": {}}, "sticky"),
        ({"sticky": {"cookie": "a", "header": "b"}}, "sticky"),
        ({"sticky": {"cookie": "a b"}}, "sticky.cookie"),
        ({"sticky": {"cookie": 3}}, "sticky.cookie"),
        ({"sticky": {"header": "X-Forwarded-For"}}, "sticky.header"),
        ({"sticky": {"header": "Bad:Name"}}, "sticky.header"),
        ({"sticky": {"hash": "x"}}, "sticky.hash"),
        ({"header_routes": {}}, "header_routes"),
        ({"header_routes": ["x"]}, "header_routes[0]"),
        (
            {"header_routes": [{"header": "X", "value": "v", "revision": 9}]},
            "header_routes[0].revision",
        ),
        (
            {"header_routes": [{"header": "X", "value": "v", "revision": "2"}]},
            "header_routes[0].revision",
        ),
        (
            {"header_routes": [{"header": "X", "value": "", "revision": 2}]},
            "header_routes[0].value",
        ),
        (
            {"header_routes": [{"header": "X", "value": "a\r\nb", "revision": 2}]},
            "header_routes[0].value",
        ),
        (
            {"header_routes": [{"header": "Connection", "value": "v", "revision": 2}]},
            "header_routes[0].header",
        ),
        (
            {"header_routes": [{"header": "X", "value": "v", "revision": 2, "w": 1}]},
            "header_routes[0].w",
        ),
        ({"rules": []}, "rules"),
    ],
)
def test_bad_rules_name_the_field(extra: dict[str, object], field_name: str) -> None:
    with pytest.raises(TableError) as info:
        parse_table({"backends": BACKENDS} | extra)
    assert str(info.value).startswith(field_name + ":"), str(info.value)


def test_bucket_ranges_newest_first_by_weight() -> None:
    assert bucket_ranges([(1, 75), (2, 25)]) == {2: (0, 25), 1: (25, 100)}
    assert bucket_ranges([(1, 50), (2, 50)]) == {2: (0, 50), 1: (50, 100)}
    assert bucket_ranges([(1, 100), (2, 0)]) == {1: (0, 100)}
    assert bucket_ranges([(1, 1), (2, 2)]) == {2: (0, 66), 1: (66, 100)}
    assert bucket_ranges([(3, 10), (1, 80), (2, 10)]) == {3: (0, 10), 2: (10, 20), 1: (20, 100)}
    assert bucket_ranges([(1, 0)]) == {}
    # A rising canary weight only adds buckets to the canary.
    for low in range(0, 100):
        before = bucket_ranges([(1, 100 - low), (2, low)]).get(2, (0, 0))
        after = bucket_ranges([(1, 99 - low), (2, low + 1)])[2]
        assert after[0] == 0 and after[1] >= before[1]


def test_header_bucket_is_stable() -> None:
    assert header_bucket(b"user-42") == crc32(b"user-42") % 100
    assert set_cookie_line("b", 7) == b"Set-Cookie: b=7; Path=/; HttpOnly; SameSite=Lax\r\n"


def _matcher(
    table: Table, weights: tuple[int, int] = (75, 25)
) -> tuple[Matcher[Target], list[int]]:
    counts = [0, 0, 0, 0]
    targets = [Target(1), Target(2)]
    return Matcher(table.sticky, table.header_routes, targets, list(weights), counts), counts


def test_cookie_buckets_route_and_cookieless_clients_get_one() -> None:
    m, counts = _matcher(Table(sticky=StickyRule(cookie="bk")))
    stable, canary = Target(1), Target(2)
    assert m.choose(head("Cookie: bk=3"), lambda: stable)[0].revision == 2  # type: ignore[union-attr]
    assert m.choose(head("Cookie: a=1; bk=24"), lambda: stable)[0].revision == 2  # type: ignore[union-attr]
    assert m.choose(head("cookie: bk=25 ; z=2"), lambda: canary)[0].revision == 1  # type: ignore[union-attr]
    assert counts == [0, 3, 0, 0]
    for bad in ("Cookie: xbk=3", "Cookie: bk=100", "Cookie: bk=", "Cookie: bk=ab", "X-Bk: 3"):
        target, cookie = m.choose(head(bad), lambda: canary)
        assert target is canary
        assert cookie is not None and cookie.startswith(b"Set-Cookie: bk=")
        assert 0 <= int(cookie.split(b"=")[1].split(b";")[0]) < 25  # a canary bucket
    # Buckets given out rotate over the picked revision's range.
    given = {m.choose(head(), lambda: stable)[1] for _ in range(75)}
    assert given == {set_cookie_line("bk", b) for b in range(25, 100)}
    assert counts[2] == counts[3] == 80


def test_header_hash_buckets() -> None:
    m, counts = _matcher(Table(sticky=StickyRule(header="X-User")), (50, 50))
    for user in ("alice", "bob", "carol", "dave"):
        expected = 2 if header_bucket(user.encode()) < 50 else 1
        target, cookie = m.choose(head(f"x-user: {user}"), lambda: None)
        assert target is not None and target.revision == expected and cookie is None
    fallback = Target(1)
    assert m.choose(head(), lambda: fallback) == (fallback, None)
    assert counts == [0, 4, 1, 0]


def test_header_routes_win_and_need_upstreams() -> None:
    table = Table(
        sticky=StickyRule(cookie="bk"),
        header_routes=(HeaderRule("X-Canary", "always", 2), HeaderRule("X-Old", "1", 1)),
    )
    m, counts = _matcher(table, (100, 0))
    stable = Target(1)
    assert m.choose(head("X-CANARY: always", "Cookie: bk=90"), lambda: stable)[0].revision == 2  # type: ignore[union-attr]
    assert m.choose(head("x-canary:always  "), lambda: stable)[0].revision == 2  # type: ignore[union-attr]
    assert m.choose(head("X-Canary: Always"), lambda: stable)[0] is stable  # exact value
    assert m.choose(head("X-Canary: always-not"), lambda: stable)[0] is stable
    assert counts[0] == 2
    # A revision without ready upstreams is not a header route's target.
    empty = Matcher(None, table.header_routes, [Target(1), Target(2, [])], [100, 0], [0] * 4)
    assert empty.choose(head("X-Canary: always"), lambda: stable)[0] is stable
