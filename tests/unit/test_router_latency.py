"""Latency percentiles and window rates from router counters, against hand-computed values."""

from __future__ import annotations

import pytest

from baepo.core.latency import histogram_quantile, percentiles, window, windows
from baepo.core.ports import RevisionStats

# 100 requests: 20 ≤ 5 ms, 40 in 5-10 ms, 30 in 10-25 ms, 8 in 25-50 ms, 2 in 50-100 ms.
BUCKETS = {
    "0.001": 0,
    "0.0025": 0,
    "0.005": 20,
    "0.01": 60,
    "0.025": 90,
    "0.05": 98,
    "0.1": 100,
    "0.25": 100,
    "+Inf": 100,
}


def test_percentiles_interpolate_within_the_bucket() -> None:
    p = percentiles(BUCKETS)
    assert p["p50"] == pytest.approx(0.005 + 0.005 * 30 / 40)  # 8.75 ms
    assert p["p90"] == pytest.approx(0.025)
    assert p["p95"] == pytest.approx(0.025 + 0.025 * 5 / 8)  # 40.625 ms
    assert p["p99"] == pytest.approx(0.05 + 0.05 * 1 / 2)  # 75 ms


def test_quantile_edges_follow_prometheus() -> None:
    assert histogram_quantile(0.5, {"0.001": 10, "+Inf": 10}) == pytest.approx(0.0005)
    # A rank in "+Inf" answers the largest finite bound.
    assert histogram_quantile(0.5, {"0.001": 0, "0.0025": 1, "+Inf": 10}) == 0.0025
    assert histogram_quantile(0.99, {"0.001": 0, "+Inf": 0}) is None
    assert histogram_quantile(0.0, BUCKETS) == 0.0
    assert histogram_quantile(1.0, BUCKETS) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="outside"):
        histogram_quantile(1.5, BUCKETS)
    with pytest.raises(ValueError, match="Inf"):
        histogram_quantile(0.5, {"0.1": 3})


def test_window_uses_differences() -> None:
    before = RevisionStats(
        2, 100, {"2xx": 95, "5xx": 5, "error": 0}, {"0.01": 50, "0.1": 100, "+Inf": 100}, 2.0
    )
    after = RevisionStats(
        2, 300, {"2xx": 280, "5xx": 15, "error": 5}, {"0.01": 150, "0.1": 290, "+Inf": 300}, 8.0
    )
    rates = window(before, after, 10.0)
    assert rates.requests == 200
    assert rates.requests_per_second == pytest.approx(20.0)
    assert rates.rate_5xx == pytest.approx(10 / 200)
    assert rates.error_rate == pytest.approx(15 / 200)
    assert rates.mean == pytest.approx(6.0 / 200)
    assert rates.p50 == pytest.approx(0.01)  # rank 100 ends the first bucket
    assert rates.p90 == pytest.approx(0.01 + 0.09 * 80 / 90)
    assert rates.p99 == pytest.approx(0.1)  # rank 198 is in "+Inf"
    # No earlier snapshot, or a restarted router (counters went down): the later one alone.
    assert window(None, before, 5.0).requests_per_second == pytest.approx(20.0)
    assert window(after, before, 5.0).requests == 100
    quiet = window(after, after, 1.0)
    assert (quiet.requests, quiet.error_rate, quiet.p99) == (0, None, None)
    with pytest.raises(ValueError, match="seconds"):
        window(before, after, 0)
    assert windows([before], [after, RevisionStats(3, 4)], 2.0)[3].requests_per_second == 2.0
