"""Per-revision counters from nginx's JSON-lines access log, read incrementally.

nginx writes one line per finished request (``render`` defines the format): the chosen
upstream group (so the revision), the status, ``$request_time`` and, per upstream attempt,
``$upstream_header_time``. ``update`` reads the lines added since the last call and adds them
to counters kept in ``stats.json`` beside the log, so counters are monotonic across controller
restarts and nothing is read twice; a log grown past ``ROTATE_BYTES`` is rotated.
Callers: ``adapter.NginxRouter.stats``.

A 502/503/504 for which no upstream sent a response head (connection refused, timeout) is
nginx's own answer and counts as ``error``, like the built-in router's; requests nginx answered
without choosing a revision (503 with an empty table) belong to no revision and are not counted.
"""

from __future__ import annotations

import contextlib
import json
import os
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path
from typing import Any

from baepo.core.ports import RevisionStats
from baepo.routers.builtin.stats import BOUNDS, STATUS_CLASSES
from baepo.routers.nginx.render import revision_of

LABELS = [f"{b:g}" for b in BOUNDS] + ["+Inf"]
# At most this much of the log is read per call, so one call stays short after a long pause.
CHUNK = 64 * 1024 * 1024
# A log file is rotated (renamed <log>.1, replacing the previous one) once this much was read.
ROTATE_BYTES = 256 * 1024 * 1024


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


def _read_lines(path: Path, offset: int, inode: int | None) -> tuple[bytes, int, int] | None:
    """Whole lines of ``path`` from ``offset`` (from 0 when it is another file or shorter):
    (data, new offset, inode); None when it cannot be read."""
    try:
        handle = path.open("rb")
    except OSError:
        return None
    with handle:
        info = os.fstat(handle.fileno())
        if inode != info.st_ino or info.st_size < offset:
            offset = 0
        handle.seek(offset)
        data = handle.read(CHUNK)
    end = data.rfind(b"\n") + 1  # a half-written last line waits for the next call
    return data[:end], offset + end, info.st_ino


def update(
    log: Path,
    state_file: Path,
    *,
    rotate_bytes: int = ROTATE_BYTES,
    reopen: Callable[[], None] | None = None,
    count: Callable[[dict[str, dict[str, Any]], bytes], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Read what ``log`` gained since the last call; return the counters, saved in
    ``state_file``. A log that was replaced or truncated is read from its start.

    Once more than ``rotate_bytes`` were read from one file it is renamed ``<log>.1`` and
    ``reopen`` is called (it makes nginx reopen its logs, SIGUSR1); the next call reads what
    nginx still wrote to the renamed file before going on with the new one. ``count`` adds
    one line to the counters (default ``count_line``, nginx's format).
    """
    count = count or count_line
    try:
        state: dict[str, Any] = json.loads(state_file.read_text())
    except (OSError, ValueError):
        state = {"inode": None, "offset": 0, "revisions": {}}
    revisions: dict[str, dict[str, Any]] = state.setdefault("revisions", {})
    inode, offset = state.get("inode"), int(state.get("offset", 0))
    old = log.with_name(log.name + ".1")
    with contextlib.suppress(OSError):
        if inode is not None and log.stat().st_ino != inode and old.stat().st_ino == inode:
            rest = _read_lines(old, offset, inode)
            if rest is not None:
                for line in rest[0].splitlines():
                    count(revisions, line)
    read = _read_lines(log, offset, inode)
    if read is None:
        return revisions
    data, new_offset, new_inode = read
    for line in data.splitlines():
        count(revisions, line)
    if reopen is not None and new_offset > rotate_bytes:
        os.replace(log, old)
        reopen()
    if (new_offset, new_inode) != (offset, inode):
        state.update(inode=new_inode, offset=new_offset)
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
