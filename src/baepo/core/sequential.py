"""The default canary's judgement: always-valid sequential tests of "the canary is worse".

Both metrics of the default canary are shares of *bad* requests, counted by the router for
the canary and the stable revision over the same time: errors (5xx answers and the router's
own failures), and slow requests (slower than a latency bound taken from the stable
revision). For one metric, over the requests since a judged step began:

- **Regression (fail).** Given the bad requests of both revisions together, each one is the
  canary's with probability ``pi = rho * nc / (rho * nc + ns)`` when the canary's rate is
  ``rho`` times the stable's (``nc``, ``ns``: their requests). "No regression" is
  ``rho <= null_ratio``. The evidence is the likelihood ratio of worse alternatives
  (``rho = null_ratio * r`` for each ``r`` in the metric's ``ratios``) against the null,
  averaged with the metric's ``weights`` (which sum to 1): a mixture sequential probability
  ratio test. Under the null it is a nonnegative supermartingale with mean at most 1, so by
  Ville's inequality it *ever* reaches ``1 / alpha`` with probability at most ``alpha``,
  however often it is looked at and from the very first request. A regression therefore
  needs no minimum sample: a clear fault is declared after a handful of canary requests
  when the stable revision has served plenty. The log-likelihood ratios of earlier steps
  carry over (their product is a supermartingale too). The weights favour the ratios that
  matter: a fault worth rolling back on errors at a low base rate is several times the
  stable's rate, and every alternative given weight ``w`` costs ``log(1 / w)`` of evidence
  when it is the true one.
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
MIN_SAMPLES = 50  # requests of each revision in a step before it passes


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
    alpha: float  # the metric's share of ALPHA (Bonferroni: the metrics' alphas sum to it)
    ratios: tuple[float, ...]  # the worse alternatives, times null_ratio...
    weights: tuple[float, ...]  # ...and their weights in the mixture, summing to 1

    def __post_init__(self) -> None:
        if len(self.ratios) != len(self.weights) or abs(sum(self.weights) - 1.0) > 1e-9:
            raise ValueError(f"{self.name}: one weight per ratio, summing to 1")

    @property
    def threshold(self) -> float:
        return 1.0 / self.alpha

    def target_rate(self, stable_rate: float) -> float:
        return min(1.0, max(stable_rate * self.target_ratio, stable_rate + self.target_increase))


# Errors: a fault worth a rollback at a 0.1 % base rate is several times the stable's rate
# (+1 point is 11 times), so half the weight is on 10 times, a quarter on 30 (clear faults),
# and 2 and 5 times keep an eighth each. Latency: the slow share is about a quarter on
# stable, so the canary's can be at most 4 times it (3.3 times the null's 1.2): larger
# alternatives would only waste weight. Errors get most of ALPHA: a +25 % latency shift is
# caught in seconds, +1 point of errors needs every bit of evidence a minute gives.
ERRORS = Metric(
    "errors", null_ratio=1.0, target_ratio=2.0, target_increase=0.01, alpha=0.008,
    ratios=(2.0, 5.0, 10.0, 30.0), weights=(0.125, 0.125, 0.5, 0.25),
)  # fmt: skip
LATENCY = Metric(
    "latency", null_ratio=1.2, target_ratio=2.0, target_increase=0.05, alpha=0.002,
    ratios=(1.25, 1.5, 2.0, 3.0), weights=(0.25, 0.25, 0.25, 0.25),
)  # fmt: skip
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
        """One line for ``status``, e.g. ``errors: evidence 3.1 of 125 needed to fail;
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
        return tuple(0.0 for _ in metric.ratios)
    null = _pi(metric.null_ratio, canary.requests, stable.requests)
    out = []
    for ratio in metric.ratios:
        alt = _pi(metric.null_ratio * ratio, canary.requests, stable.requests)
        out.append(
            canary.bad * math.log(alt / null) + stable.bad * math.log((1 - alt) / (1 - null))
        )
    return tuple(out)


def mixture(logs: Sequence[float], weights: Sequence[float]) -> float:
    """The weighted mean of ``exp(log)`` over the alternatives: the evidence (capped at
    1e300)."""
    top = max(logs)
    total = sum(w * math.exp(x - top) for x, w in zip(logs, weights, strict=True))
    return math.exp(min(top + math.log(total), 690.0))


def needed_samples(metric: Metric, canary: Counts, stable: Counts) -> int | None:
    """Canary requests after which a canary at ``metric.target_rate`` would have reached the
    threshold with 90 % probability, at the current traffic split; None without data."""
    if canary.requests <= 0 or stable.requests <= 0:
        return None
    base = stable.bad / stable.requests
    target = metric.target_rate(base)
    split = stable.requests / canary.requests  # stable requests per canary request
    null = _pi(metric.null_ratio, canary.requests, stable.requests)
    best: float | None = None
    for ratio, weight in zip(metric.ratios, metric.weights, strict=True):
        goal = math.log(metric.threshold / weight)  # the mixture is at least weight * this one
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
    evidence = mixture(logs, metric.weights)
    needed = needed_samples(metric, canary, stable)
    enough = canary.requests >= MIN_SAMPLES and stable.requests >= MIN_SAMPLES
    verdict = Verdict.UNDECIDED
    if evidence >= metric.threshold:  # valid at any stopping time: no minimum sample
        verdict = Verdict.REGRESSED
    elif enough and needed is not None and canary.requests >= needed:
        verdict = Verdict.NO_REGRESSION
    return Assessment(metric, verdict, evidence, canary, stable, logs, needed)
