"""The default canary's judgement: always-valid sequential tests of "the canary is worse".

Both metrics of the default canary are shares of *bad* requests, counted by the router for
the canary and the stable revision over the same time: errors (5xx answers and the router's
own failures), and slow requests (slower than a latency bound taken from the stable
revision). For one metric, over the requests since a judged step began:

- **Regression (fail).** Given the bad requests of both revisions together, each one is the
  canary's with probability ``pi = rho * nc / (rho * nc + ns)`` when the canary's rate is
  ``rho`` times the stable's (``nc``, ``ns``: their requests). "No regression" is
  ``rho <= null_ratio``. The evidence is the likelihood ratio of worse alternatives
  (``rho = null_ratio * r`` for each ``r`` in ``RATIOS``) against the null, averaged over
  the alternatives: a mixture sequential probability ratio test. Under the null it is a
  nonnegative supermartingale with mean at most 1, so by Ville's inequality it *ever*
  reaches ``1 / alpha`` with probability at most ``alpha``, however often it is looked at.
  The test may therefore be evaluated on every new sample, and the log-likelihood ratios of
  earlier steps carry over (their product is a supermartingale too).
- **No regression (pass).** Rare errors give too few events to ever *prove* equality, so a
  step passes on sample size instead: once the canary served as many requests as make a
  regression of the target size (``target_rate``) reach the threshold with 90 % probability,
  computed from the stable revision's observed rate with a normal approximation of the
  log-likelihood ratio. Never before ``MIN_SAMPLES`` requests on each side.

Pure: counts in, numbers out; only ``math``. It sits in ``core`` beside ``core.latency``
because the strategy that uses it may not import ``analysis`` (a sibling layer).
Callers: ``strategies.default_canary``, its unit tests and ``bench/default_canary.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

ALPHA = 0.01  # the chance of a false rollback of a healthy canary, both metrics together
POWER_Z = 1.2816  # one-sided normal quantile of the 90 % power the pass rule asks for
RATIOS = (1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0)  # the worse alternatives, times null_ratio
MIN_SAMPLES = 50  # requests of each revision in a step before any verdict


class Verdict(StrEnum):
    UNDECIDED = "undecided"
    REGRESSED = "regressed"
    NO_REGRESSION = "no_regression"


@dataclass(frozen=True)
class Counts:
    """Requests of one revision and how many of them were bad."""

    requests: int
    bad: int

    @property
    def rate(self) -> float | None:
        return self.bad / self.requests if self.requests > 0 else None


@dataclass(frozen=True)
class Metric:
    """The design of one judged metric.

    The null hypothesis is "the canary's bad share is at most ``null_ratio`` times the
    stable's". The pass rule sizes the sample for a canary at ``target_rate`` of the
    stable's rate.
    """

    name: str
    null_ratio: float
    target_ratio: float  # a regression worth catching: this many times the stable's rate...
    target_increase: float  # ...or this much more, whichever is larger
    alpha: float = ALPHA / 2  # Bonferroni: two metrics share ALPHA

    @property
    def threshold(self) -> float:
        return 1.0 / self.alpha

    def target_rate(self, stable_rate: float) -> float:
        return min(1.0, max(stable_rate * self.target_ratio, stable_rate + self.target_increase))


ERRORS = Metric("errors", null_ratio=1.0, target_ratio=2.0, target_increase=0.01)
LATENCY = Metric("latency", null_ratio=1.2, target_ratio=2.0, target_increase=0.05)
METRICS = (ERRORS, LATENCY)


@dataclass(frozen=True)
class Assessment:
    """Where one metric stands: its verdict, evidence and what a pass still needs."""

    metric: Metric
    verdict: Verdict
    evidence: float  # the mixture likelihood ratio; a regression at ``metric.threshold``
    canary: Counts
    stable: Counts
    log_ratios: tuple[float, ...]  # per alternative, this step's plus the carried ones
    needed: int | None  # canary requests for a pass (None: not known yet)

    def describe(self) -> str:
        """One line for ``status``, e.g. ``errors: evidence 3.1 of 200 needed to fail;
        410/1200 samples to pass``."""
        needed = "?" if self.needed is None else str(max(self.needed, MIN_SAMPLES))
        return (
            f"{self.metric.name}: evidence {self.evidence:.3g} of {self.metric.threshold:g} "
            f"needed to fail; {self.canary.requests}/{needed} samples to pass"
        )


def _pi(ratio: float, canary: int, stable: int) -> float:
    """The chance that a bad request is the canary's when its rate is ``ratio`` times."""
    return ratio * canary / (ratio * canary + stable)


def log_ratios(metric: Metric, canary: Counts, stable: Counts) -> tuple[float, ...]:
    """The log-likelihood ratio of each alternative against the null, for these counts."""
    if canary.requests <= 0 or stable.requests <= 0:
        return tuple(0.0 for _ in RATIOS)
    null = _pi(metric.null_ratio, canary.requests, stable.requests)
    out = []
    for ratio in RATIOS:
        alt = _pi(metric.null_ratio * ratio, canary.requests, stable.requests)
        out.append(
            canary.bad * math.log(alt / null) + stable.bad * math.log((1 - alt) / (1 - null))
        )
    return tuple(out)


def mixture(logs: Sequence[float]) -> float:
    """The mean of ``exp(log)`` over the alternatives: the evidence (capped at 1e300)."""
    top = max(logs)
    value = top + math.log(sum(math.exp(x - top) for x in logs) / len(logs))
    return math.exp(min(value, 690.0))


def needed_samples(metric: Metric, canary: Counts, stable: Counts) -> int | None:
    """Canary requests after which a canary at ``metric.target_rate`` would have reached the
    threshold with 90 % probability, at the current traffic split; None without data."""
    if canary.requests <= 0 or stable.requests <= 0:
        return None
    base = stable.bad / stable.requests
    target = metric.target_rate(base)
    split = stable.requests / canary.requests  # stable requests per canary request
    null = _pi(metric.null_ratio, canary.requests, stable.requests)
    goal = math.log(metric.threshold * len(RATIOS))  # the mixture loses at most log(K)
    best: float | None = None
    for ratio in RATIOS:
        alt = _pi(metric.null_ratio * ratio, canary.requests, stable.requests)
        up, down = math.log(alt / null), math.log((1 - alt) / (1 - null))
        drift = target * up + split * base * down  # per canary request
        if drift <= 0:
            continue
        spread = target * up * up + split * base * down * down
        root = POWER_Z * math.sqrt(spread) + math.sqrt(POWER_Z**2 * spread + 4 * drift * goal)
        n = (root / (2 * drift)) ** 2
        best = n if best is None else min(best, n)
    return None if best is None else math.ceil(best)


def assess(
    metric: Metric, canary: Counts, stable: Counts, carried: Sequence[float] = ()
) -> Assessment:
    """The verdict on ``metric`` for this step's counts, with ``carried`` the log-likelihood
    ratios of the steps before (empty for the first)."""
    step = log_ratios(metric, canary, stable)
    logs = tuple(a + b for a, b in zip(step, carried, strict=True)) if carried else step
    evidence = mixture(logs)
    needed = needed_samples(metric, canary, stable)
    enough = canary.requests >= MIN_SAMPLES and stable.requests >= MIN_SAMPLES
    verdict = Verdict.UNDECIDED
    if enough and evidence >= metric.threshold:
        verdict = Verdict.REGRESSED
    elif enough and needed is not None and canary.requests >= needed:
        verdict = Verdict.NO_REGRESSION
    return Assessment(metric, verdict, evidence, canary, stable, logs, needed)
