"""Per-revision counters from nginx's JSON-lines access log, read incrementally.

nginx writes one line per finished request (``render`` defines the format): the chosen
upstream group (so the revision), the status, ``$request_time`` and, per upstream attempt,
``$upstream_header_time``. ``update`` reads the lines added since the last call and adds them
to counters kept in ``stats.json`` beside the log, so counters are monotonic across controller
restarts and nothing is read twice. Callers: ``adapter.NginxRouter.stats``.

A 502/503/504 for which no upstream sent a response head (connection refused, timeout) is
nginx's own answer and counts as ``error``, like the built-in router's; requests nginx answered
without choosing a revision (503 with an empty table) belong to no revision and are not counted.
"""

from __future__ import annotations

import json
import os
from bisect import bisect_left
from pathlib import Path
from typing import Any

from baepo.core.ports import RevisionStats
from baepo.routers.builtin.stats import BOUNDS, STATUS_CLASSES
from baepo.routers.nginx.render import revision_of

LABELS = [f"{b:g}" for b in BOUNDS] + ["+Inf"]
# At most this much of the log is read per call, so one call stays short after a long pause.
CHUNK = 64 * 1024 * 1024


def status_class(status: int, header_times: str) -> str:
    """ "2xx".. or "error" (nginx's own 502/503/504 after no upstream answered)."""
    if status in (502, 503, 504) and header_times.rsplit(",", 1)[-1].strip() in ("", "-"):
        return "error"
    if 100 <= status < 600:
        return f"{status // 100}xx"
    return "error"


def empty_counters() -> dict[str, Any]:
    return {
        "requests": 0,
        "status": dict.fromkeys(STATUS_CLASSES, 0),
        "buckets": [0] * len(LABELS),
        "latency_sum": 0.0,
    }


def count_line(revisions: dict[str, dict[str, Any]], line: bytes) -> None:
    """Add one access-log line to ``revisions`` (keyed by revision as a string)."""
    try:
        entry = json.loads(line)
        revision = revision_of(str(entry["u"]))
        status = int(entry["s"])
        latency = float(entry["t"])
    except (ValueError, KeyError, TypeError):
        return
    if revision is None:
        return
    counters = revisions.setdefault(str(revision), empty_counters())
    counters["requests"] += 1
    counters["status"][status_class(status, str(entry.get("h", "")))] += 1
    counters["buckets"][bisect_left(BOUNDS, latency)] += 1
    counters["latency_sum"] += latency


def update(log: Path, state_file: Path) -> dict[str, dict[str, Any]]:
    """Read what ``log`` gained since the last call; return the counters, saved in
    ``state_file``. A log that was replaced or truncated is read from its start."""
    try:
        state: dict[str, Any] = json.loads(state_file.read_text())
    except (OSError, ValueError):
        state = {"inode": None, "offset": 0, "revisions": {}}
    revisions: dict[str, dict[str, Any]] = state.setdefault("revisions", {})
    try:
        handle = log.open("rb")
    except OSError:
        return revisions
    with handle:
        info = os.fstat(handle.fileno())
        offset = int(state.get("offset", 0))
        if state.get("inode") != info.st_ino or info.st_size < offset:
            offset = 0
        handle.seek(offset)
        data = handle.read(CHUNK)
    end = data.rfind(b"\n") + 1  # a half-written last line waits for the next call
    for line in data[:end].splitlines():
        count_line(revisions, line)
    if end or state.get("inode") != info.st_ino:
        state.update(inode=info.st_ino, offset=offset + end)
        tmp = state_file.with_name(f".{state_file.name}.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, state_file)
    return revisions


def to_stats(
    revisions: dict[str, dict[str, Any]], in_flight: dict[int, int]
) -> list[RevisionStats]:
    """Counters as RevisionStats (cumulative ``le`` buckets), by revision."""
    out = []
    for key in sorted(revisions, key=int):
        counters = revisions[key]
        cumulative: dict[str, int] = {}
        running = 0
        for label, count in zip(LABELS, counters["buckets"], strict=True):
            running += count
            cumulative[label] = running
        out.append(
            RevisionStats(
                revision=int(key),
                requests=int(counters["requests"]),
                status={k: int(v) for k, v in counters["status"].items()},
                latency_buckets=cumulative,
                latency_sum=round(float(counters["latency_sum"]), 6),
                in_flight=in_flight.get(int(key), 0),
            )
        )
    return out
