"""HTTP probes of one instance, as a kubelet runs them: GET a path, 2xx/3xx passes.

``ProbeTracker`` is the pure threshold logic; ``ProbeLoop`` is a thread that probes on a schedule
and reports changes. Stdlib only (``http.client``). Callers: ``supervisor`` (readiness flips
``state.ready``; liveness failures restart the app).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable

from baepo.core.ports import ProbeConfig


def http_probe(host: str, port: int, path: str, timeout: float) -> tuple[bool, str]:
    """One probe: ``(passed, detail)``; detail names the status or the error."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(
            "GET", path, headers={"User-Agent": "baepo-probe", "Connection": "close"}
        )
        response = connection.getresponse()
        response.read(64 * 1024)
    except (OSError, http.client.HTTPException) as exc:
        return False, f"GET {path}: {failure_words(exc, timeout)}"
    finally:
        connection.close()
    return 200 <= response.status < 400, f"GET {path} → {response.status}"


def failure_words(exc: BaseException, timeout: float) -> str:
    """A probe's failure in plain words: ``connection refused``, ``no answer within 1 s``."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on the port)"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "closed the connection without an answer"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


class ProbeTracker:
    """Consecutive successes and failures against the probe's thresholds."""

    def __init__(self, config: ProbeConfig, *, passing: bool) -> None:
        self.config = config
        self.passing = passing
        self._successes = 0
        self._failures = 0

    def observe(self, ok: bool) -> bool | None:
        """Record one result; return the new verdict when it changed, else None."""
        if ok:
            self._successes += 1
            self._failures = 0
            if not self.passing and self._successes >= self.config.success_threshold:
                self.passing = True
                return True
        else:
            self._failures += 1
            self._successes = 0
            if self.passing and self._failures >= self.config.failure_threshold:
                self.passing = False
                return False
        return None

    @property
    def failures(self) -> int:
        return self._failures


Prober = Callable[[str, int, str, float], tuple[bool, str]]


class ProbeLoop(threading.Thread):
    """Probes every ``interval`` after ``initial_delay`` until ``stop`` is set.

    ``on_change(passing, detail)`` is called from this thread when the verdict flips, and
    with ``report_failures`` also on every failure while the probe is not passing (so the
    caller can say why an instance is not ready yet).
    """

    def __init__(
        self,
        name: str,
        config: ProbeConfig,
        address: tuple[str, int],
        *,
        initially_passing: bool,
        on_change: Callable[[bool, str], None],
        stop: threading.Event,
        prober: Prober = http_probe,
        report_failures: bool = False,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.config = config
        self.address = address
        self.tracker = ProbeTracker(config, passing=initially_passing)
        self._on_change = on_change
        self._halt = stop
        self._prober = prober
        self._report_failures = report_failures

    def run(self) -> None:
        if self._halt.wait(self.config.initial_delay):
            return
        host, port = self.address
        while not self._halt.is_set():
            began = time.monotonic()
            ok, detail = self._prober(host, port, self.config.path, self.config.timeout)
            if self._halt.is_set():
                return
            changed = self.tracker.observe(ok)
            if changed is not None:
                if not changed:
                    detail = f"{detail} ({self.tracker.failures} failures in a row)"
                self._on_change(changed, detail)
            elif not ok and not self.tracker.passing and self._report_failures:
                self._on_change(False, detail)
            elapsed = time.monotonic() - began
            self._halt.wait(max(0.0, self.config.interval - elapsed))
