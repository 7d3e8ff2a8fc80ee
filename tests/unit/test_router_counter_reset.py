"""Router counters that start again from zero (a replaced worker) and the master's backoff."""

from __future__ import annotations

import pytest

from baepo.controller.sampling import Continuity, Sampler
from baepo.core.latency import window
from baepo.core.ports import RevisionStats
from baepo.routers.builtin.master import MAX_PAUSE, Backoff


class NoRouter:
    async def stats(self, app: str, env: str) -> list[RevisionStats]:
        raise AssertionError("the test adds samples itself")


def snap(requests: int, errors: int, started: float, revision: int = 1) -> RevisionStats:
    ok = requests - errors
    return RevisionStats(
        revision,
        requests,
        {"2xx": ok, "5xx": errors, "error": 0},
        {"0.01": requests, "+Inf": requests},
        requests * 0.005,
        started=started,
    )


def test_a_window_across_a_worker_restart_keeps_the_counts_of_both_runs() -> None:
    sampler = Sampler(NoRouter())  # type: ignore[arg-type]
    # 1 in 10 requests is a 5xx; the worker is replaced after t=5 (its counters restart) and
    # by t=10 the new one has counted more (1100) than the old one had (1050).
    sampler.add("a", "e", (0.0, [snap(1000, 100, started=100.0)]))
    sampler.add("a", "e", (5.0, [snap(1050, 105, started=100.0)]))
    sampler.add("a", "e", (10.0, [snap(1100, 110, started=105.0)]))
    rates = sampler.rates("a", "e", 10.0)[1]
    assert rates.requests == 50 + 1100  # the old worker's last 50, all of the new one's
    assert rates.errors == 5 + 110
    assert rates.rate_5xx == pytest.approx(0.1)
    assert rates.requests_per_second == pytest.approx(115.0)


def test_continuity_carries_every_earlier_run_and_spots_a_drop_without_a_start_time() -> None:
    runs = Continuity()
    assert runs.follow([snap(10, 1, 1.0)])[0].requests == 10
    assert runs.follow([snap(3, 0, 2.0)])[0].requests == 13  # new run: 10 carried
    assert runs.follow([snap(5, 1, 2.0)])[0].requests == 15
    following = runs.follow([snap(2, 2, 0.0)])[0]  # no start time, but the count dropped
    assert following.requests == 17
    assert following.status == {"2xx": 13, "5xx": 4, "error": 0}
    assert following.latency_buckets == {"0.01": 17, "+Inf": 17}
    assert following.latency_sum == pytest.approx(17 * 0.005)
    assert following.started == 1.0  # one series: the first run's start
    # Another revision has its own series.
    assert runs.follow([snap(4, 0, 3.0, revision=2)])[0].requests == 4


def test_window_treats_a_new_start_time_as_counters_from_zero() -> None:
    before, after = snap(500, 5, started=1.0), snap(600, 6, started=2.0)
    assert window(before, after, 10.0).requests == 600
    assert window(snap(500, 5, 0.0), snap(600, 6, 2.0), 10.0).requests == 100


@pytest.mark.parametrize(
    ("lives", "pauses"),
    [
        ([5.0, 5.0, 5.0], [0.0, 0.0, 0.0]),  # killed now and then: replaced at once
        ([0.2, 0.2, 0.2, 0.2], [0.0, 0.1, 0.2, 0.4]),  # a crash loop slows down
        ([0.2] * 12, [0.0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0, 5.0, 5.0]),
        ([0.2, 0.2, 0.2, 3.0, 0.2], [0.0, 0.1, 0.2, 0.0, 0.0]),  # a stable run resets it
    ],
)
def test_backoff(lives: list[float], pauses: list[float]) -> None:
    backoff = Backoff()
    assert [backoff.pause(lived) for lived in lives] == pytest.approx(pauses)
    assert max(pauses) <= MAX_PAUSE
