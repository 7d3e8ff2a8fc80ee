"""When the built-in router sends a request again, and where: one pure decision (``decide``).

Like HAProxy's ``retry-on conn-failure empty-response`` with ``option redispatch``: a request
whose upstream connection failed, or closed before any byte of the response arrived, is sent
once more when that cannot do harm, to another ready instance of the same revision when there
is one. Never to another revision (a canary's share must not leak), never after a response
byte was forwarded. ``forwarding.Forwarder`` asks on a connect failure and when an upstream
connection is lost; the table of cases is in ``tests/unit/test_router_retry_decision.py`` and the
rules are written out in docs/routers.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Retry(enum.Enum):
    """What to do with a request whose upstream failed before answering."""

    FAIL = "fail"  # answer 502/504: sending it again could do harm or was already done
    OTHER = "other"  # send it to another ready instance of the same revision
    SAME = "same"  # send it to the same instance on a new connection


@dataclass(frozen=True)
class Failure:
    """What is known about a failed attempt to forward one request."""

    sent: bool  # any request byte was written (False: the connect itself failed)
    received: bool  # any response byte arrived (and so may have been forwarded)
    idempotent: bool  # GET, HEAD, OPTIONS, PUT, DELETE or TRACE (RFC 9110, 9.2.2)
    replayable: bool  # every request byte sent so far is still held (bodies up to 64 KiB)
    pooled: bool  # the connection came from the keep-alive pool (not opened for this request)
    other_ready: bool  # the revision has another instance, not yet tried and not marked down
    resent: bool  # the one retry is used: resent after bytes were sent, or to the same instance


def decide(failure: Failure) -> Retry:
    """Whether and where to send the request again; at most once after bytes were sent.

    A connect failure sent nothing, so any method may go to each other instance in turn, then
    once more to the same one. A request that was sent goes again only when it is idempotent
    and replayable: to another instance, or, when the connection was a pooled one (closed by
    the app while idle, a race every keep-alive client meets), to the same instance on a new
    connection.
    """
    if failure.received:
        return Retry.FAIL
    if failure.sent and (failure.resent or not (failure.idempotent and failure.replayable)):
        return Retry.FAIL
    if failure.other_ready:
        return Retry.OTHER
    if (not failure.sent or failure.pooled) and not failure.resent:
        return Retry.SAME
    return Retry.FAIL
