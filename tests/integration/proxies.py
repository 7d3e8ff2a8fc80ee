"""What the tests of the outside proxies (HAProxy, nginx) share: a bounded keep-alive load that
counts answers by upstream, and a canary of the sample app through the real CLI behind the
proxy of a given ``router.kind``. Callers: ``test_router_haproxy``, ``test_router_nginx``."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
from harness import SampleProject, serving, versions

from baepo.cli.loadgen import LoadGenerator

CANARY = (
    "{canary: {steps: [{set_weight: 25}, {pause: {}}, {set_weight: 50}, {pause: {}}], "
    "abort_scale_down_delay: 2s}}"
)


async def load(url: str, total: int, concurrency: int, *, post: bool = False) -> Counter[str]:
    """``total`` keep-alive requests over ``concurrency`` connections (GET /hello, or POST
    /echo); counts answers by upstream (``X-Upstream``), other statuses and failures."""
    seen: Counter[str] = Counter()
    remaining = [total]
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                try:
                    if post:
                        response = await client.post("/echo", content=b"order=1")
                    else:
                        response = await client.get("/hello")
                except httpx.HTTPError as exc:
                    seen[f"failed:{type(exc).__name__}"] += 1
                    continue
                if response.status_code == 200:
                    seen[response.headers["x-upstream"]] += 1
                else:
                    seen[f"status:{response.status_code}"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return seen


def canary_through_cli(project: SampleProject, kind: str) -> dict[int, dict[str, Any]]:
    """Deploy 1.0.0, then a canary of 2.0.0 paused at 25 % and 50 % under load, promoted to
    the end, all with ``router.kind: kind``. Checks that the proxy served each weight (its
    ``table.json``), the measured shares are within 7 points, no request failed and only
    2.0.0 answers at the end. Returns the per-revision stats of ``baepo status``."""

    def write(version: str, strategy: str | None = None) -> None:
        if strategy is None:
            project.write(version, replicas=2)
        else:
            project.write(version, replicas=2, strategy=strategy)
        text = project.spec.read_text().replace("router:\n", f"router:\n  kind: {kind}\n", 1)
        project.spec.write_text(text)

    def paused_at(weight: int) -> Callable[[dict[str, Any]], bool]:
        def check(s: dict[str, Any]) -> bool:
            rollout, state = s.get("rollout"), s.get("canary")
            return bool(
                rollout and state and rollout["phase"] == "paused" and state["weight"] == weight
            )

        return check

    def served(revision: int) -> int | None:
        """The weight of ``revision`` in the table the proxy serves (its table.json)."""
        for path in (project.state_dir / "routers" / kind).glob("sample.*.main/table.json"):
            for backend in json.loads(path.read_text())["backends"]:
                if backend["revision"] == revision:
                    return int(backend["weight"])
        return None

    write("1.0.0")
    project.ok("deploy", "--wait")
    project.wait_for(lambda s: serving(s, 1, 2), what="revision 1 serving")
    write("2.0.0", CANARY)
    gen = LoadGenerator("127.0.0.1", project.port, rate=40, workers=2, max_seconds=180).start()
    measured: dict[int, float] = {}
    try:
        project.ok("deploy", "--no-wait")
        for weight in (25, 50):
            project.wait_for(paused_at(weight), what=f"paused at weight {weight}")
            # The pause is recorded before the router applies its weight: wait for the proxy.
            deadline = time.monotonic() + 10
            while served(2) != weight:
                assert time.monotonic() < deadline, f"{kind} never served weight {weight}"
                time.sleep(0.05)
            # nginx splits at random per request ($request_id): over 1000 requests a share
            # is off by more than 7 points about once in 10^5 (4.4 standard deviations at
            # 50 %); over 400 it was once in a few hundred (2.8).
            seen = versions(project.port, 1000)
            measured[weight] = 100 * seen["2.0.0"] / sum(seen.values())
            project.ok("promote")
        project.wait_for(lambda s: serving(s, 2, 2), what="revision 2 serving")
    finally:
        report = gen.stop()
    assert report.failed == 0, report
    for weight, share in measured.items():
        assert abs(share - weight) <= 7, measured
    assert set(versions(project.port, 20)) == {"2.0.0"}
    stats = {s["revision"]: s for s in project.status()["stats"]}
    assert stats[1]["requests"] > 0
    assert stats[2]["requests"] > 0
    assert sum(s["status"]["2xx"] for s in stats.values()) >= 800 + report.sent
    assert sum(s["status"]["5xx"] + s["status"]["error"] for s in stats.values()) == 0
    return stats
