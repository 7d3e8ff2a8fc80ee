"""The default canary's sequential test, by simulation: its false-alarm rate under equal
rates stays below alpha however often it is looked at, it catches the regressions it is
sized for, and it never decides from too few requests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from baepo.core import sequential
from baepo.core.sequential import ERRORS, LATENCY, Counts, Verdict, assess


def judged_run(
    rng: np.random.Generator,
    metric: sequential.Metric,
    canary_rate: float,
    stable_rate: float,
    *,
    per_look: int = 12,
    weight: float = 0.5,
    looks: int = 400,
) -> tuple[str, int]:
    """One step judged on every look (``per_look`` requests between looks): the verdict and
    the look it came at."""
    nc = ns = xc = xs = 0
    for look in range(1, looks + 1):
        c = int(rng.binomial(per_look, weight))
        nc, ns = nc + c, ns + per_look - c
        xc += int(rng.binomial(c, canary_rate))
        xs += int(rng.binomial(per_look - c, stable_rate))
        verdict = assess(metric, Counts(nc, xc), Counts(ns, xs)).verdict
        if verdict != Verdict.UNDECIDED:
            return verdict.value, look
    return Verdict.UNDECIDED.value, looks


def test_false_alarms_stay_below_alpha_however_often_it_looks() -> None:
    # A loose alpha (10 %) and frequent bad requests (5 %) make false alarms common enough to
    # count; equal rates on both sides, a look after every 12 requests, 800 runs. Ville's
    # inequality bounds the share of runs that *ever* cross by alpha.
    loose = dataclasses.replace(ERRORS, alpha=0.1, target_ratio=1.2, target_increase=0.0)
    rng = np.random.default_rng(15)
    runs = 800
    alarms = sum(
        judged_run(rng, loose, 0.05, 0.05, looks=150)[0] == "regressed" for _ in range(runs)
    )
    assert alarms / runs <= 0.1


def test_the_default_alpha_gives_no_false_alarm_on_healthy_canaries() -> None:
    rng = np.random.default_rng(7)
    for metric, rate in ((ERRORS, 0.001), (LATENCY, 0.25)):
        verdicts = [judged_run(rng, metric, rate, rate, looks=1000)[0] for _ in range(150)]
        assert "regressed" not in verdicts
        assert verdicts.count("no_regression") == len(verdicts)


@pytest.mark.parametrize(
    ("metric", "canary", "stable", "at_least"),
    [
        (ERRORS, 0.011, 0.001, 0.9),  # +1 point of errors
        (ERRORS, 0.06, 0.03, 0.9),  # errors doubled at a high base rate
        (LATENCY, 0.5, 0.25, 0.95),  # twice as many requests over the latency bound
    ],
)
def test_it_catches_the_regressions_it_is_sized_for(
    metric: sequential.Metric, canary: float, stable: float, at_least: float
) -> None:
    rng = np.random.default_rng(3)
    runs = 100
    caught = sum(
        judged_run(rng, metric, canary, stable, looks=2000)[0] == "regressed" for _ in range(runs)
    )
    assert caught / runs >= at_least


def test_it_never_decides_from_too_few_requests() -> None:
    # Every request of the canary failed, none of the stable's: still not enough requests.
    few = sequential.MIN_SAMPLES - 1
    assert assess(ERRORS, Counts(few, few), Counts(500, 0)).verdict == Verdict.UNDECIDED
    assert assess(ERRORS, Counts(500, 0), Counts(few, 0)).verdict == Verdict.UNDECIDED
    assert assess(ERRORS, Counts(few + 1, few + 1), Counts(500, 0)).verdict == Verdict.REGRESSED


def test_a_pass_needs_more_requests_when_the_stable_revision_errs_more() -> None:
    rare = sequential.needed_samples(ERRORS, Counts(1000, 1), Counts(1000, 1))
    common = sequential.needed_samples(ERRORS, Counts(1000, 20), Counts(1000, 20))
    assert rare is not None and common is not None
    assert 500 < rare < 5000
    assert common > rare
    assert sequential.needed_samples(ERRORS, Counts(0, 0), Counts(10, 0)) is None


def test_evidence_carries_over_from_the_step_before() -> None:
    first = assess(ERRORS, Counts(300, 6), Counts(300, 0))
    assert first.verdict == Verdict.UNDECIDED
    again = assess(ERRORS, Counts(300, 6), Counts(300, 0), first.log_ratios)
    assert again.evidence > first.evidence**2 / 10  # the product of both steps' ratios
    assert again.verdict == Verdict.REGRESSED


def test_describe_says_how_close_each_verdict_is() -> None:
    line = assess(ERRORS, Counts(410, 1), Counts(400, 0)).describe()
    assert line.startswith("errors: evidence ")
    assert "of 200 needed to fail; 410/" in line
    assert line.endswith("samples to pass")
