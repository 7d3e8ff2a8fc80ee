"""The builtin provider with skewed traffic: canary and baseline compared per revision."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from baepo.analysis.measure import MeasureContext
from baepo.analysis.verdict import assess
from baepo.core.latency import WindowRates
from baepo.core.model import AnalysisPhase
from baepo.expressions.conditions import compile_condition
from baepo.providers.builtin import BuiltinProvider, NoData
from baepo.spec.analysis import MetricSpec

BASELINE_RULE = "canary.error_rate <= baseline.error_rate * 1.1 + 0.001"
LATENCY_RULE = "canary.p95 <= baseline.p95 * 1.2"


def rates(revision: int, requests: int, errors: int, p95: float) -> WindowRates:
    return WindowRates(
        revision=revision, seconds=10.0, requests=requests, requests_per_second=requests / 10,
        rate_5xx=errors / requests if requests else None,
        error_rate=errors / requests if requests else None,
        mean=p95 / 2 if requests else None, p50=None, p90=None,
        p95=p95 if requests else None, p99=None, errors=errors,
    )  # fmt: skip


class Source:
    def __init__(self, found: dict[int, WindowRates], ago: float | None = 0.1) -> None:
        self.found = found
        self.ago = ago

    def sampled_ago(self, app: str, env: str) -> float | None:
        return self.ago

    def rates(self, app: str, env: str, seconds: float | None = None) -> dict[int, WindowRates]:
        return self.found

    def series(self, app: str, env: str, seconds: float, step: float) -> list:
        return []


def measure(found: dict[int, WindowRates], success: str) -> AnalysisPhase:
    metric = MetricSpec(name="m", query="error_rate", success_condition=success)
    context = MeasureContext(
        app="a", env="default", revision=2, baseline=1, window=10.0,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    measured = asyncio.run(BuiltinProvider(Source(found)).measure(metric, context))
    return assess(compile_condition(success), None, measured)[0]


@pytest.mark.parametrize(
    ("canary", "stable", "rule", "expected"),
    [
        # 10 % of the traffic on the canary, same error rate: passes
        (rates(2, 100, 1, 0.05), rates(1, 900, 9, 0.05), BASELINE_RULE, AnalysisPhase.SUCCESSFUL),
        # few requests on the canary but ten times the error rate: fails
        (rates(2, 100, 10, 0.05), rates(1, 900, 9, 0.05), BASELINE_RULE, AnalysisPhase.FAILED),
        # 1 % canary weight, a clean canary against a noisy stable: passes
        (rates(2, 10, 0, 0.05), rates(1, 990, 20, 0.05), BASELINE_RULE, AnalysisPhase.SUCCESSFUL),
        # latency relative to the baseline, whatever the volumes
        (rates(2, 50, 0, 0.059), rates(1, 950, 0, 0.05), LATENCY_RULE, AnalysisPhase.SUCCESSFUL),
        (rates(2, 50, 0, 0.061), rates(1, 950, 0, 0.05), LATENCY_RULE, AnalysisPhase.FAILED),
    ],
)
def test_baseline_comparison_with_skewed_traffic(
    canary: WindowRates, stable: WindowRates, rule: str, expected: AnalysisPhase
) -> None:
    assert measure({1: stable, 2: canary}, rule) == expected


def test_a_canary_without_requests_is_no_data() -> None:
    with pytest.raises(NoData):
        measure({1: rates(1, 900, 0, 0.05), 2: rates(2, 0, 0, 0)}, BASELINE_RULE)


@pytest.mark.parametrize("ago", [2.5, 30.0])
def test_a_stale_snapshot_is_not_measured_again(ago: float) -> None:
    """A controller that could not sample for a while must not record the previous window's
    numbers as a new measurement."""
    found = {2: rates(2, 100, 0, 0.05), 1: rates(1, 100, 0, 0.05)}
    metric = MetricSpec(name="m", query="error_rate", success_condition="result < 0.01")
    context = MeasureContext(
        app="a", env="default", revision=2, baseline=1, window=10.0,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    with pytest.raises(NoData, match=f"last read {ago:.1f}s ago"):
        asyncio.run(BuiltinProvider(Source(found, ago)).measure(metric, context))
    fresh = asyncio.run(BuiltinProvider(Source(found, 0.3)).measure(metric, context))
    assert fresh.value == 0.0
