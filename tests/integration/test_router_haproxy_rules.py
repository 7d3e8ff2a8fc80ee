"""Sticky sessions and header routes through a real HAProxy to real upstreams: cookie and
header stickiness across weight changes (runtime only), header routes winning over weights and
buckets, the built-in router's edge cases, and rules changing under load with no failed
request."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from zlib import crc32

import httpx
import pytest
from proxies import load
from test_router_haproxy import _config, _needs_haproxy
from upstreams import UpstreamServer, free_port

from baepo.core.ports import Backend, HeaderRoute, RouterConfig, Sticky
from baepo.errors import ConfigError
from baepo.routers.builtin.rules import bucket_ranges
from baepo.routers.haproxy.adapter import HAProxyRouter, admin_socket, command

__all__ = ["_needs_haproxy"]  # haproxy installed, or a failure in CI (autouse)

pytestmark = pytest.mark.timeout(180)

SIDE = {"a": 1, "b": 2, "c": 2}  # upstream name -> revision


async def _worker(state_dir: Path) -> str:
    info = await command(admin_socket(state_dir / "routers/haproxy/shop.prod.main"), "show info")
    return next(line for line in info.splitlines() if line.startswith("Pid: "))


def _owner(bucket: int, weights: list[tuple[int, int]]) -> int:
    for revision, (first, end) in bucket_ranges(weights).items():
        if first <= bucket < end:
            return revision
    raise AssertionError(f"bucket {bucket} has no owner")


async def _side(client: httpx.AsyncClient, url: str, **headers: str) -> tuple[int, str | None]:
    """The revision that answered and the cookie it set (None: no Set-Cookie)."""
    client.cookies.clear()  # a fresh client unless ``headers`` carry a cookie
    response = await client.get(url + "/hello", headers=headers)
    assert response.status_code == 200, response.text
    cookie = response.headers.get("set-cookie")
    return SIDE[response.headers["x-upstream"]], cookie


def test_cookie_stickiness_and_header_routes(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sticky = Sticky(cookie="sid")
    route = [HeaderRoute("X-Canary", 'al"w $ays', 2)]

    async def scenario(a: UpstreamServer, b: UpstreamServer, c: UpstreamServer) -> None:
        router = HAProxyRouter(tmp_path)
        await router.ensure_running(_config(port))
        table = [Backend(1, 75, (a.address,)), Backend(2, 25, (b.address, c.address))]
        await router.set_backends("shop", "prod", table, sticky=sticky, header_routes=route)
        worker = await _worker(tmp_path)
        async with httpx.AsyncClient(timeout=10) as client:
            # Fresh clients follow the weights and get a cookie in their revision's buckets.
            clients: dict[str, int] = {}
            fresh: Counter[int] = Counter()
            for _ in range(400):
                side, cookie = await _side(client, url)
                assert cookie is not None and cookie.endswith("; Path=/; HttpOnly; SameSite=Lax")
                value = cookie.split(";")[0].removeprefix("sid=")
                assert _owner(int(value), [(1, 75), (2, 25)]) == side
                clients[value] = side
                fresh[side] += 1
            assert 60 <= fresh[2] <= 140, fresh  # 25 % of 400, within a wide tolerance
            # Each client keeps its revision across many requests, with no new cookie.
            for value, side in clients.items():
                for _ in range(3):
                    assert await _side(client, url, Cookie=f"x=1; sid={value}") == (side, None)
            # A header route wins over the cookie and sets none.
            both = {"X-Canary": 'al"w $ays', "Cookie": "sid=99"}
            routed = Counter([await _side(client, url, **both) for _ in range(100)])
            assert routed == Counter({(2, None): 100}), routed
            # Another value, or an invalid cookie, is not routed: a new cookie by the weights.
            side, cookie = await _side(client, url, **{"X-Canary": "always", "Cookie": "sid=abc"})
            assert cookie is not None

            # The canary rises: every client on it stays, some stable clients move (runtime).
            table = [Backend(1, 50, (a.address,)), Backend(2, 50, (b.address, c.address))]
            await router.set_backends("shop", "prod", table, sticky=sticky, header_routes=route)
            assert await _worker(tmp_path) == worker  # weights only: no reload
            moved = 0
            for value, side in clients.items():
                now, cookie = await _side(client, url, Cookie=f"sid={value}")
                assert cookie is None
                assert now == _owner(int(value), [(1, 50), (2, 50)])
                assert side == 1 or now == 2, value
                moved += side != now
            assert moved > 0

            # Abort: weight 0 gives every bucket to stable; the header route still reaches
            # the canary while it has ready servers.
            table = [Backend(1, 100, (a.address,)), Backend(2, 0, (b.address, c.address))]
            await router.set_backends("shop", "prod", table, sticky=sticky, header_routes=route)
            assert await _worker(tmp_path) == worker
            for value in clients:
                assert await _side(client, url, Cookie=f"sid={value}") == (1, None)
            assert (await _side(client, url, **{"X-Canary": 'al"w $ays'}))[0] == 2

            # No ready server of the routed revision: the route is as if it did not exist.
            table = [Backend(1, 100, (a.address,)), Backend(2, 0, ())]
            await router.set_backends("shop", "prod", table, sticky=sticky, header_routes=route)
            assert await _worker(tmp_path) == worker
            side, cookie = await _side(client, url, **{"X-Canary": 'al"w $ays'})
            assert side == 1 and cookie is not None

            # Rules gone: a reload back to the plain configuration; cookies are ignored. (The
            # old worker answers one last request on each connection it holds.)
            await router.set_backends("shop", "prod", [Backend(1, 100, (a.address,))])
            assert await _worker(tmp_path) != worker
        async with httpx.AsyncClient(timeout=10) as client:
            assert await _side(client, url, **{"X-Canary": 'al"w $ays'}) == (1, None)
        await router.stop("shop", "prod")

    with UpstreamServer("a") as a, UpstreamServer("b") as b, UpstreamServer("c") as c:
        asyncio.run(scenario(a, b, c))


def test_header_stickiness_uses_the_builtin_routers_hash(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    async def scenario(a: UpstreamServer, b: UpstreamServer) -> None:
        router = HAProxyRouter(tmp_path)
        await router.ensure_running(_config(port))
        sticky = Sticky(header="X-User")
        table = [Backend(1, 70, (a.address,)), Backend(2, 30, (b.address,))]
        await router.set_backends("shop", "prod", table, sticky=sticky)
        async with httpx.AsyncClient(timeout=10) as client:
            sides: Counter[int] = Counter()
            for user in range(60):
                bucket = crc32(f"user-{user}".encode()) % 100
                expected = _owner(bucket, [(1, 70), (2, 30)])
                for _ in range(5):
                    got = await _side(client, url, **{"X-User": f"user-{user}"})
                    assert got == (expected, None), user
                sides[expected] += 1
            assert sides[1] and sides[2], sides
        # Without the header: the weighted backend (round robin, exact shares), no cookie.
        seen = await load(url, 100, 2)
        assert seen == Counter(a=70, b=30), seen
        # A new address reloads with the rules in force.
        moved = free_port()
        await router.ensure_running(
            RouterConfig("shop", "prod", f"127.0.0.1:{moved}", 30.0, 60.0, kind="haproxy",
                         drain_timeout=5.0)
        )  # fmt: skip
        async with httpx.AsyncClient(timeout=10) as client:
            for user in range(20):
                expected = _owner(crc32(f"user-{user}".encode()) % 100, [(1, 70), (2, 30)])
                got = await _side(client, f"http://127.0.0.1:{moved}", **{"X-User": f"user-{user}"})
                assert got == (expected, None), user
        # A name HAProxy cannot read unquoted is refused, naming the field.
        with pytest.raises(ConfigError) as error:
            await router.set_backends("shop", "prod", table, sticky=Sticky(header="X$User"))
        assert error.value.problems[0].path == "sticky.header"
        await router.stop("shop", "prod")

    with UpstreamServer("a") as a, UpstreamServer("b") as b:
        asyncio.run(scenario(a, b))


def test_rules_and_weights_change_under_load_fail_nothing(tmp_path: Path) -> None:
    """8 keep-alive clients send GETs while the rules change every 150 ms (a seamless reload
    each) and the weights between them (runtime): every request is answered 2xx."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    plans: list[dict[str, object]] = [
        {"sticky": Sticky(cookie="sid")},
        {"sticky": Sticky(cookie="sid"), "header_routes": [HeaderRoute("X-Canary", "1", 2)]},
        {"header_routes": [HeaderRoute("X-Canary", "1", 2)]},
        {"sticky": Sticky(header="X-User")},
        {},
    ]

    async def scenario(a: UpstreamServer, b: UpstreamServer) -> None:
        router = HAProxyRouter(tmp_path)
        await router.ensure_running(_config(port))
        await router.set_backends("shop", "prod", [Backend(1, 100, (a.address,))])
        done = asyncio.Event()
        workers = {await _worker(tmp_path)}

        async def flip() -> int:
            n = 0
            while not done.is_set():
                rules = plans[(n // 3) % len(plans)]
                weight = [10, 50, 90][n % 3]
                table = [Backend(1, 100 - weight, (a.address,)), Backend(2, weight, (b.address,))]
                await router.set_backends("shop", "prod", table, **rules)  # type: ignore[arg-type]
                workers.add(await _worker(tmp_path))
                n += 1
                await asyncio.sleep(0.05)
            return n

        flipper = asyncio.create_task(flip())
        try:
            seen = await load(url, 3000, 8)
        finally:
            done.set()
            changes = await flipper
        await router.stop("shop", "prod")
        assert sum(seen.values()) == 3000
        assert set(seen) == {"a", "b"}, seen  # no failure, no other status
        assert changes >= 9
        assert len(workers) >= 3  # rules changed with reloads, weights in between did not

    with UpstreamServer("a") as a, UpstreamServer("b") as b:
        asyncio.run(scenario(a, b))
