"""The built-in router's retry decision (``retry.decide``), case by case."""

from __future__ import annotations

import time

import pytest

from baepo.routers.builtin.retry import Failure, Retry, decide
from baepo.routers.builtin.runtime import Limits, Runtime
from baepo.routers.builtin.table import Route

FAIL, OTHER, SAME = Retry.FAIL, Retry.OTHER, Retry.SAME

# sent, received, idempotent, replayable, pooled, other_ready, resent -> decision
CASES = [
    # A connect failure sent nothing: any method, another instance, else the same once more.
    ((False, False, False, True, False, True, False), OTHER),
    ((False, False, True, True, False, True, False), OTHER),
    ((False, False, False, True, False, False, False), SAME),
    ((False, False, True, True, False, False, False), SAME),
    ((False, False, True, True, False, False, True), FAIL),  # the same one was retried already
    ((False, False, True, True, False, True, True), OTHER),  # nothing sent: others still fine
    # A fresh connection closed with nothing received: idempotent and replayable go elsewhere.
    ((True, False, True, True, False, True, False), OTHER),
    ((True, False, True, True, False, False, False), FAIL),  # no other: not the same again
    ((True, False, False, True, False, True, False), FAIL),  # POST, PATCH: never after sending
    ((True, False, False, False, False, True, False), FAIL),
    ((True, False, True, False, False, True, False), FAIL),  # body over 64 KiB: not kept
    ((True, False, True, True, False, True, True), FAIL),  # once only
    # A pooled connection closed with nothing received (idle close race, or a killed app).
    ((True, False, True, True, True, True, False), OTHER),
    ((True, False, True, True, True, False, False), SAME),
    ((True, False, True, True, True, False, True), FAIL),
    ((True, False, False, True, True, False, False), FAIL),
    ((True, False, False, True, True, True, False), FAIL),
    # Any response byte (an interim 100 Continue too) may have been forwarded: never again.
    ((True, True, True, True, False, True, False), FAIL),
    ((True, True, True, True, True, True, False), FAIL),
    ((True, True, True, True, True, False, False), FAIL),
]


@pytest.mark.parametrize(("fields", "expected"), CASES)
def test_decide(fields: tuple[bool, ...], expected: Retry) -> None:
    sent, received, idempotent, replayable, pooled, other_ready, resent = fields
    failure = Failure(
        sent=sent,
        received=received,
        idempotent=idempotent,
        replayable=replayable,
        pooled=pooled,
        other_ready=other_ready,
        resent=resent,
    )
    assert decide(failure) is expected


def test_every_combination_is_safe() -> None:
    """Whatever the inputs: no retry after a response byte, none of a sent unsafe request,
    at most one after sending, and the same instance only after a connect failure or on a
    pooled connection."""
    for n in range(2**7):
        sent, received, idempotent, replayable, pooled, other_ready, resent = (
            bool(n >> i & 1) for i in range(7)
        )
        failure = Failure(sent, received, idempotent, replayable, pooled, other_ready, resent)
        choice = decide(failure)
        if received or (sent and not (idempotent and replayable)) or (sent and resent):
            assert choice is FAIL, failure
        if choice is SAME:
            assert (not sent or pooled) and not resent and not other_ready, failure
        if choice is OTHER:
            assert other_ready, failure


def test_alternative_is_another_ready_instance_of_the_same_revision_only() -> None:
    rt = Runtime(Limits())
    rt.apply([Route(1, 90, ("a:1", "b:1")), Route(2, 10, ("c:1",))])
    one, two = rt.states
    a, b = one.upstreams
    assert rt.alternative(one, {a}) is b
    assert rt.alternative(one, {a, b}) is None  # never c, of revision 2
    assert rt.alternative(two, {two.upstreams[0]}) is None  # never a or b, of revision 1
    b.down_until = time.monotonic() + 60  # a connect to b failed a moment ago
    assert rt.alternative(one, {a}) is None
    b.down_until = 0.0
    rt.apply([Route(1, 90, ("a:1", "d:1")), Route(2, 10, ("c:1",))])
    # A request routed before the table changed retries among the revision's current instances.
    assert rt.alternative(one, {a}) is rt.upstreams["d:1"]
