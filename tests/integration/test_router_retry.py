"""A killed app instance fails no idempotent request: real router, real upstream processes.

Two instances of revision 1 run as processes of their own; one is killed with SIGKILL while
it holds slow requests. The GETs it held are sent once more to the other instance of the
same revision (never to revision 2, which has its own instance), the POST it held fails with
502, and ``/stats`` counts the retries.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from upstreams import RouterProcess, UpstreamProcess, UpstreamServer, eventually

pytestmark = pytest.mark.timeout(60)


def _revision(router: RouterProcess, revision: int) -> dict[str, Any]:
    stats = router.get("/stats")
    return next(item for item in stats["revisions"] if item["revision"] == revision)


def test_app_kill_retries_held_gets_on_the_same_revision_and_fails_the_post(
    tmp_path: Path,
) -> None:
    with (
        UpstreamProcess("a") as a,
        UpstreamProcess("b") as b,
        UpstreamServer("c") as c,
        RouterProcess(tmp_path / "router") as router,
    ):
        routes = [
            {"header": "X-Rev", "value": "1", "revision": 1},
            {"header": "X-Rev", "value": "3", "revision": 3},
        ]
        router.put(
            (1, 1, [a.address, b.address]),
            (2, 1, [c.address]),
            (3, 1, [a.address]),
            header_routes=routes,
        )
        results: dict[str, tuple[int, str]] = {}

        def call(name: str, method: str, revision: int) -> None:
            with httpx.Client(base_url=router.url, timeout=20) as client:
                response = client.request(
                    method, "/slow?delay=2", headers={"X-Rev": str(revision)}, content=b""
                )
            results[name] = (response.status_code, response.text)

        threads = [threading.Thread(target=call, args=("post", "POST", 3))]
        threads[0].start()
        eventually(lambda: a.received == 1, "POST held by instance a")
        for i in range(4):
            threads.append(threading.Thread(target=call, args=(f"get{i}", "GET", 1)))
            threads[-1].start()
        eventually(lambda: a.received + b.received == 5, "all five requests held")
        held_gets = a.received - 1
        assert held_gets >= 1  # least loaded: a holds the POST and one or two GETs
        a.kill()
        for thread in threads:
            thread.join(20)

        assert results["post"][0] == 502
        gets = [results[f"get{i}"] for i in range(4)]
        assert all(status == 200 for status, _ in gets), gets
        assert sum(text == "hello from b\n" for _, text in gets) == 4
        assert _revision(router, 1)["retries"] == held_gets
        assert _revision(router, 3)["retries"] == 0
        assert c.requests == 0  # nothing leaked to revision 2

        # Later GETs find a's port closed: each goes to b, the first marks a down.
        with httpx.Client(base_url=router.url, timeout=10) as client:
            for _ in range(10):
                response = client.get("/hello", headers={"X-Rev": "1"})
                assert (response.status_code, response.text) == (200, "hello from b\n")
        assert c.requests == 0
