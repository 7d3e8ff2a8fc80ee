"""Routing rules and listeners of the built-in router: a real router process, real upstreams.

Sticky buckets (cookie and header hash) keep clients on their side while a canary's weight
rises; header routes reach a canary at weight 0; rules survive a restart; bad rules get a 400
naming the field; tables with rules change under load without a failed request; two listeners
of one app+environment serve different tables and stop independently.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from upstreams import RouterProcess, UpstreamServer, free_port

from baepo.core.ports import Backend, HeaderRoute, RouterConfig, Sticky
from baepo.errors import ConfigError
from baepo.routers.builtin.adapter import BuiltinRouter
from baepo.routers.builtin.payloads import admin_socket
from baepo.routers.builtin.rules import bucket_ranges, header_bucket

pytestmark = pytest.mark.timeout(90)


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Keep no cookie: each simulated browser sends its own explicitly."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[UpstreamServer, UpstreamServer]]:
    with UpstreamServer("stable") as a, UpstreamServer("canary") as b:
        yield a, b


def _client(url: str) -> httpx.AsyncClient:
    jar = http.cookiejar.CookieJar(policy=_NoCookies())
    return httpx.AsyncClient(base_url=url, timeout=10, cookies=jar)


async def _visit(url: str, headers: list[dict[str, str]]) -> list[tuple[str, str | None]]:
    """One GET per header set, 8 at a time: (upstream name, Set-Cookie or None) in order."""
    out: list[tuple[str, str | None]] = [("", None)] * len(headers)
    gate = asyncio.Semaphore(8)
    async with _client(url) as client:

        async def one(i: int) -> None:
            async with gate:
                response = await client.get("/hello", headers=headers[i])
            assert response.status_code == 200, response.text
            out[i] = (response.headers["x-upstream"], response.headers.get("set-cookie"))

        await asyncio.gather(*(one(i) for i in range(len(headers))))
    return out


def _table(a: UpstreamServer, b: UpstreamServer, canary: int) -> list[tuple[int, int, list[str]]]:
    return [(1, 100 - canary, [a.address]), (2, canary, [b.address])]


def test_sticky_cookie_clients_keep_their_side_as_the_weight_rises(
    tmp_path: Path, pair: tuple[UpstreamServer, UpstreamServer]
) -> None:
    a, b = pair
    sticky = {"cookie": "baepo-bucket"}
    with RouterProcess(tmp_path) as proc:
        proc.put(*_table(a, b, 25), sticky=sticky)
        first = asyncio.run(_visit(proc.url, [{}] * 200))
        cookies: list[str] = []
        for name, set_cookie in first:
            assert set_cookie is not None and set_cookie.endswith(
                "; Path=/; HttpOnly; SameSite=Lax"
            )
            value = set_cookie.split(";", 1)[0]
            bucket = int(value.split("=", 1)[1])
            assert (bucket < 25) == (name == "canary"), (name, set_cookie)
            cookies.append(value)
        assert Counter(name for name, _ in first)["canary"] == 50  # 25 % of new clients
        on_canary = {i for i, (name, _) in enumerate(first) if name == "canary"}
        for weight in (50, 75):
            proc.put(*_table(a, b, weight), sticky=sticky)
            seen = asyncio.run(_visit(proc.url, [{"Cookie": c} for c in cookies]))
            now_canary = {i for i, (name, _) in enumerate(seen) if name == "canary"}
            assert on_canary <= now_canary, f"clients left the canary at weight {weight}"
            assert all(cookie is None for _, cookie in seen)  # they keep their bucket
            assert abs(len(now_canary) - 2 * weight) <= 10, (weight, len(now_canary))
            on_canary = now_canary
            fresh = Counter(name for name, _ in asyncio.run(_visit(proc.url, [{}] * 100)))
            assert abs(fresh["canary"] - weight) <= 5, (weight, fresh)
        rules = proc.get("/stats")["rules"]
        assert rules["sticky_routed"] == 400
        assert rules["cookies_set"] == rules["weighted"] == 400


def test_sticky_header_hash_keeps_users_on_their_side(
    tmp_path: Path, pair: tuple[UpstreamServer, UpstreamServer]
) -> None:
    a, b = pair
    users = [f"user-{i}" for i in range(200)]
    headers = [{"X-User": u} for u in users]
    previous: set[str] = set()
    with RouterProcess(tmp_path) as proc:
        for weight in (25, 50, 75):
            proc.put(*_table(a, b, weight), sticky={"header": "X-User"})
            seen = asyncio.run(_visit(proc.url, headers))
            canary = {u for u, (name, _) in zip(users, seen, strict=True) if name == "canary"}
            first, end = bucket_ranges([(1, 100 - weight), (2, weight)])[2]
            assert canary == {u for u in users if first <= header_bucket(u.encode()) < end}
            assert previous <= canary
            assert all(cookie is None for _, cookie in seen)
            previous = canary
            fresh = Counter(name for name, _ in asyncio.run(_visit(proc.url, [{}] * 100)))
            assert abs(fresh["canary"] - weight) <= 5, (weight, fresh)


def test_header_route_reaches_the_canary_at_weight_zero(
    tmp_path: Path, pair: tuple[UpstreamServer, UpstreamServer]
) -> None:
    a, b = pair
    route = [{"header": "X-Canary", "value": "always", "revision": 2}]
    with RouterProcess(tmp_path) as proc:
        proc.put(*_table(a, b, 0), header_routes=route, sticky={"cookie": "bk"})
        cases = [
            ({"X-Canary": "always"}, "canary"),
            ({"x-canary": "always"}, "canary"),
            ({"X-Canary": "always", "Cookie": "bk=99"}, "canary"),
            ({"X-Canary": "Always"}, "stable"),
            ({"X-Canary": "never"}, "stable"),
            ({}, "stable"),
        ]
        seen = asyncio.run(_visit(proc.url, [h for h, _ in cases]))
        assert [name for name, _ in seen] == [want for _, want in cases]
        # Without ready upstreams the route does not apply.
        proc.put((1, 100, [a.address]), (2, 0, []), header_routes=route)
        assert asyncio.run(_visit(proc.url, [{"X-Canary": "always"}]))[0][0] == "stable"


def test_rules_survive_a_restart(
    tmp_path: Path, pair: tuple[UpstreamServer, UpstreamServer]
) -> None:
    a, b = pair
    rules: dict[str, Any] = {
        "sticky": {"header": "X-User"},
        "header_routes": [{"header": "X-Canary", "value": "1", "revision": 2}],
    }
    proc = RouterProcess(tmp_path)
    with proc:
        proc.put(*_table(a, b, 0), **rules)
        assert proc.stop() == 0
    again = RouterProcess(tmp_path, port=proc.port)
    with again:
        table = again.get("/backends")
        assert {k: table[k] for k in rules} == rules
        assert asyncio.run(_visit(again.url, [{"X-Canary": "1"}]))[0][0] == "canary"


def test_bad_rules_are_rejected_naming_the_field(
    tmp_path: Path, pair: tuple[UpstreamServer, UpstreamServer]
) -> None:
    a, _ = pair
    backends = [{"revision": 1, "weight": 100, "upstreams": [a.address]}]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"sticky": {"cookie": "a", "header": "b"}}, "sticky:"),
        ({"sticky": {"cookie": "bad name"}}, "sticky.cookie:"),
        (
            {"header_routes": [{"header": "X", "value": "v", "revision": 2}]},
            "header_routes[0].revision:",
        ),
        (
            {"header_routes": [{"header": "X-Forwarded-For", "value": "v", "revision": 1}]},
            "header_routes[0].header:",
        ),
    ]
    with RouterProcess(tmp_path) as proc, proc.admin_client() as admin:
        proc.put((1, 100, [a.address]), sticky={"cookie": "bk"})
        for extra, field_name in bad:
            response = admin.put("/backends", json={"backends": backends} | extra)
            assert response.status_code == 400
            assert response.json()["error"].startswith(field_name), response.text
        assert admin.get("/backends").json()["sticky"] == {"cookie": "bk"}  # nothing applied


def test_tables_with_rules_change_under_load_without_failures(
    tmp_path: Path, pair: tuple[UpstreamServer, UpstreamServer]
) -> None:
    a, b = pair
    route = [{"header": "X-Canary", "value": "always", "revision": 2}]
    tables: list[tuple[list[tuple[int, int, list[str]]], dict[str, Any]]] = [
        (_table(a, b, 10), {"sticky": {"cookie": "bk"}}),
        (_table(a, b, 50), {"sticky": {"header": "X-User"}, "header_routes": route}),
        (_table(a, b, 0), {}),
        ([(2, 100, [b.address])], {"header_routes": route}),
        (_table(a, b, 90), {"sticky": {"cookie": "bk"}, "header_routes": route}),
    ]
    headers = [{}, {"X-Canary": "always"}, {"Cookie": "bk=5"}, {"X-User": "u1"}] * 400
    with RouterProcess(tmp_path) as proc:
        proc.put(*tables[0][0], **tables[0][1])
        done = threading.Event()

        def flip() -> None:
            i = 0
            while not done.is_set():
                backends, rules = tables[i % len(tables)]
                proc.put(*backends, **rules)
                i += 1
                time.sleep(0.01)

        flipper = threading.Thread(target=flip)
        flipper.start()
        try:
            seen = asyncio.run(_visit(proc.url, headers))  # asserts every answer is a 200
        finally:
            done.set()
            flipper.join()
        assert len(seen) == 1600
        stats = proc.get("/stats")
        assert sum(r["status"]["2xx"] for r in stats["revisions"]) == 1600
        assert stats["unrouted"] == 0


def _config(port: int, listener: str = "main") -> RouterConfig:
    return RouterConfig("shop", "prod", f"127.0.0.1:{port}", 30.0, 60.0, listener=listener)


def test_two_listeners_serve_different_tables_and_stop_independently(
    tmp_path: Path, pair: tuple[UpstreamServer, UpstreamServer]
) -> None:
    a, b = pair
    main_port, preview_port = free_port(), free_port()

    async def scenario() -> None:
        router = BuiltinRouter(tmp_path)
        assert await router.listeners("shop", "prod") == []
        await router.ensure_running(_config(main_port))
        await router.ensure_running(_config(preview_port, "preview"))
        await router.ensure_running(_config(preview_port, "preview"))  # idempotent
        assert admin_socket(tmp_path / "routers" / "shop.prod.preview").exists()
        assert await router.listeners("shop", "prod") == ["main", "preview"]
        await router.set_backends("shop", "prod", [Backend(1, 100, (a.address,))])
        sticky = Sticky(cookie="bk")
        routes = [HeaderRoute("X-Canary", "always", 2)]
        await router.set_backends(
            "shop",
            "prod",
            [Backend(2, 100, (b.address,))],
            sticky=sticky,
            header_routes=routes,
            listener="preview",
        )
        assert await router.get_rules("shop", "prod", listener="preview") == (
            sticky,
            tuple(routes),
        )
        assert await router.get_rules("shop", "prod") == (None, ())
        with pytest.raises(ConfigError, match=r"header_routes\[0\]\.revision"):
            await router.set_backends(
                "shop", "prod", [Backend(1, 100, (a.address,))], header_routes=routes
            )
        async with httpx.AsyncClient(timeout=10) as client:
            main = await client.get(f"http://127.0.0.1:{main_port}/hello")
            preview = await client.get(f"http://127.0.0.1:{preview_port}/hello")
            assert main.headers["x-upstream"] == "stable"
            assert preview.headers["x-upstream"] == "canary"
            assert "set-cookie" in preview.headers and "set-cookie" not in main.headers
        stats = await router.stats("shop", "prod", listener="preview")
        assert [(s.revision, s.requests) for s in stats] == [(2, 1)]

        await router.stop("shop", "prod", listener="preview")
        await router.stop("shop", "prod", listener="preview")  # idempotent
        assert await router.listeners("shop", "prod") == ["main"]
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(f"http://127.0.0.1:{main_port}/hello")).status_code == 200
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{preview_port}/hello")
        with pytest.raises(ConfigError, match="listener"):
            router.folder("shop", "prod", "Bad.Name")
        await router.stop("shop", "prod")
        assert await router.listeners("shop", "prod") == []

    asyncio.run(scenario())
