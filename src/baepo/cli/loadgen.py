"""A bounded HTTP load generator, for the demo and for zero-downtime checks.

A few threads each hold one keep-alive connection and send GETs at a paced rate until told to
stop, a request budget is spent, or a time limit passes: it can never run away. Every answer
that is not 2xx, and every connection error, is a failure. Stdlib only, so it measures the
router and not a client library. Callers: ``cli.demo``, tests, ``bench/``.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class LoadReport:
    """What was sent and what came back."""

    sent: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        return self.sent - self.failed


class LoadGenerator:
    """Paced GET load against ``host:port``; ``start()``, then ``stop()`` returns the report."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        path: str = "/",
        workers: int = 4,
        rate: float = 200.0,
        max_requests: int = 100_000,
        max_seconds: float = 300.0,
        version_header: str = "X-Sample-Version",
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.workers = workers
        self.interval = workers / rate if rate > 0 else 0.0
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.version_header = version_header
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._started = 0.0
        self.report = LoadReport()

    def start(self) -> LoadGenerator:
        self._started = time.monotonic()
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"load-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> LoadReport:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self.report.seconds = time.monotonic() - self._started
        return self.report

    def snapshot(self) -> LoadReport:
        with self._lock:
            return LoadReport(
                self.report.sent,
                self.report.failed,
                Counter(self.report.statuses),
                Counter(self.report.versions),
                Counter(self.report.errors),
                time.monotonic() - self._started,
            )

    def _budget_left(self) -> bool:
        if self._stop.is_set() or time.monotonic() - self._started > self.max_seconds:
            return False
        with self._lock:
            if self.report.sent >= self.max_requests:
                return False
            self.report.sent += 1
        return True

    def _work(self) -> None:
        conn: http.client.HTTPConnection | None = None
        next_at = time.monotonic()
        while self._budget_left():
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            status, version, error = 0, "", ""
            try:
                conn.request("GET", self.path)
                response = conn.getresponse()
                response.read()
                status = response.status
                version = response.getheader(self.version_header) or ""
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                error = type(exc).__name__
                if conn is not None:
                    conn.close()
                conn = None
            with self._lock:
                if error:
                    self.report.failed += 1
                    self.report.errors[error] += 1
                else:
                    self.report.statuses[status] += 1
                    if not 200 <= status < 300:
                        self.report.failed += 1
                    if version:
                        self.report.versions[version] += 1
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()
        if conn is not None:
            conn.close()
