"""The default canary (``canary: {}``) through whole simulated rollouts: its implied steps,
a healthy canary promoted on enough evidence, a subtle regression rolled back with an
``analysis`` cause, and a canary without traffic paused for a person, not failed."""

from __future__ import annotations

import numpy as np
from simulation import Runner, make_spec

from baepo.core.model import CauseKind, RolloutPhase
from baepo.core.ports import RevisionStats
from baepo.strategies import default_canary


class Traffic:
    """The router's cumulative counters, fed each simulated second at ``rate`` requests split
    by the current weight; a quarter of the stable's requests (and ``slow`` of the canary's)
    take more than 25 ms."""

    def __init__(self, seed: int, rate: float = 50.0) -> None:
        self.rng = np.random.default_rng(seed)
        self.rate = rate
        # The stable revision has served for a while before the rollout.
        self.totals = {1: [1000, 1, 250], 2: [0, 0, 0]}  # requests, errors, slow

    def feed(self, runner: Runner, errors: float, slow: float = 0.25) -> None:
        share = runner.weight() / 100 if runner.plans else 0.0
        for revision, part, error_rate, slow_rate in (
            (2, share, errors, slow),
            (1, 1 - share, 0.001, 0.25),
        ):
            n = int(self.rng.poisson(self.rate * part))
            total = self.totals[revision]
            total[0] += n
            total[1] += int(self.rng.binomial(n, error_rate))
            total[2] += int(self.rng.binomial(n, slow_rate))
        runner.counters = {rev: self.stats(rev) for rev in self.totals}

    def stats(self, revision: int) -> RevisionStats:
        requests, errors, slow = self.totals[revision]
        return RevisionStats(
            revision=revision,
            requests=requests,
            status={"2xx": requests - errors, "5xx": errors},
            latency_buckets={"0.01": 0, "0.025": requests - slow, "0.05": requests,
                             "+Inf": requests},
        )  # fmt: skip


def runner() -> Runner:
    return Runner(make_spec(4, {"canary": {}}), "canary")


def run(r: Runner, traffic: Traffic, errors: float, limit: int, slow: float = 0.25) -> None:
    for _ in range(limit):
        traffic.feed(r, errors, slow)
        r.step()
        if r.rollout.phase.terminal:
            return


def test_a_canary_without_steps_runs_the_default_steps() -> None:
    steps = default_canary.effective_steps(make_spec(4, {"canary": {}}).strategy.canary)  # type: ignore[arg-type]
    assert [s.describe() for s in steps] == [
        "set weight 20%",
        "judge errors and latency against stable (first look)",
        "set weight 50%",
        "judge errors and latency against stable until decided",
    ]
    explicit = make_spec(4, {"canary": {"steps": [{"set_weight": 20}]}}).strategy.canary
    assert explicit is not None
    assert [s.describe() for s in default_canary.effective_steps(explicit)] == ["set weight 20%"]


def test_a_healthy_canary_is_promoted_once_the_evidence_suffices() -> None:
    r, traffic = runner(), Traffic(seed=1)
    run(r, traffic, errors=0.001, limit=600)
    assert r.rollout.phase == RolloutPhase.HEALTHY
    messages = [p.message for p in r.plans]
    assert any(m.startswith("step 2/4: judge") and "samples to pass" in m for m in messages)
    # The instances for 50 % started during the first look: the 50 % step did not wait.
    assert not any(m.startswith("step 3/4") for m in messages), messages
    notes = [n for p in r.plans for n in p.notes]
    assert any(n.startswith("step 4/4: judge") and "no regression" in n for n in notes)
    judged = r.rollout.status["judgement"]
    assert [m["metric"] for m in judged] == ["errors", "latency"]
    assert all(m["verdict"] == "no_regression" for m in judged)
    assert judged[1]["latency_bound_ms"] == 25.0


def test_one_point_more_errors_is_rolled_back_with_an_analysis_cause() -> None:
    r, traffic = runner(), Traffic(seed=2)
    run(r, traffic, errors=0.021, limit=600)
    assert r.rollout.phase == RolloutPhase.ROLLED_BACK
    cause = r.plans[-1].cause
    assert cause is not None and cause.kind == CauseKind.ANALYSIS
    assert "error rate" in cause.summary
    assert cause.evidence[0].startswith("errors of revision 2: ")
    assert cause.evidence[1].startswith("errors of revision 1 (stable): ")
    assert (
        "reached the threshold 125 (a false alarm has at most a 0.008 chance)" in cause.evidence[2]
    )
    assert "rolling back to revision 1" in r.plans[-1].message


def test_a_clear_fault_is_rolled_back_by_the_judgement_within_seconds() -> None:
    # 30 % errors: at 20 % of 50 req/s the canary serves 10 requests a second; the judgement
    # needs no minimum sample to fail it (the stable revision has plenty).
    for seed in range(6, 11):
        r, traffic = runner(), Traffic(seed=seed)
        first = None
        for second in range(60):
            traffic.feed(r, errors=0.3)
            if first is None and traffic.totals[2][0] > 0:
                first = second
            r.step()
            if r.rollout.phase.terminal:
                break
        assert r.rollout.phase == RolloutPhase.ROLLED_BACK
        assert first is not None and second - first <= 2, (seed, first, second)
        cause = r.plans[-1].cause
        assert cause is not None and cause.kind == CauseKind.ANALYSIS


def test_slower_requests_are_rolled_back_as_a_latency_regression() -> None:
    r, traffic = runner(), Traffic(seed=3)
    run(r, traffic, errors=0.001, slow=0.5, limit=600)
    assert r.rollout.phase == RolloutPhase.ROLLED_BACK
    cause = r.plans[-1].cause
    assert cause is not None and "share of requests over 0.025s" in cause.summary


def test_without_traffic_the_canary_waits_then_pauses_for_a_person() -> None:
    r, traffic = runner(), Traffic(seed=4, rate=0.0)
    run(r, traffic, errors=0.0, limit=int(default_canary.MAX_SECONDS) + 30)
    # The progress deadline (600 s) does not end a canary that waits for evidence.
    assert r.rollout.phase == RolloutPhase.PAUSED
    assert "not enough traffic to decide" in r.plans[-1].message
    r.promote()  # skips the judgement it waits in, as for any step
    run(r, traffic, errors=0.0, limit=20)
    assert r.plans[-1].message.startswith("step 4/4: judge")
    assert r.rollout.status["step"] == 3
    r.promote(full=True)
    run(r, traffic, errors=0.0, limit=20)
    assert r.rollout.phase == RolloutPhase.HEALTHY


def buckets(counts: dict[str, int]) -> RevisionStats:
    return RevisionStats(revision=1, requests=counts["+Inf"], latency_buckets=counts)


def test_the_latency_bound_is_the_bucket_closest_to_the_stable_p75_from_5_ms_up() -> None:
    fast = {"0.001": 600, "0.0025": 950, "0.005": 990, "0.01": 1000, "0.025": 1000}
    assert default_canary.latency_bound(buckets({**fast, "+Inf": 1000})) == "0.005"
    slow = {"0.001": 0, "0.005": 0, "0.01": 100, "0.025": 750, "0.05": 1000}
    assert default_canary.latency_bound(buckets({**slow, "+Inf": 1000})) == "0.025"
    # 55 % over 25 ms is closer to a quarter than 0.1 % over 50 ms; 90 % is too many.
    busy = {"0.005": 0, "0.01": 100, "0.025": 450, "0.05": 999, "0.1": 1000}
    assert default_canary.latency_bound(buckets({**busy, "+Inf": 1000})) == "0.025"
    assert default_canary.latency_bound(buckets({**slow, "+Inf": 50})) is None


def test_counting_starts_again_when_the_routers_counters_restart() -> None:
    r, traffic = runner(), Traffic(seed=5)
    run(r, traffic, errors=0.001, limit=40)
    assert r.rollout.status["judge"]["start"]["errors"][1][0] > 1000  # stable, at the start
    traffic.totals = {1: [500, 0, 125], 2: [0, 0, 0]}  # a new router worker counts from 0
    run(r, traffic, errors=0.001, limit=1)
    assert r.rollout.status["judge"]["start"]["errors"][1][0] < 1000
    run(r, traffic, errors=0.001, limit=600)
    assert r.rollout.phase == RolloutPhase.HEALTHY
