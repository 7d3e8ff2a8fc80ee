"""The router's master: owns the listening sockets and keeps one worker running on them.

The router process started by ``adapter`` is this master (its pid is the router's pid). It
does no proxying: it forks a worker (``worker.run``) that inherits the sockets, waits for it,
and when the worker dies for any reason other than a stop it forks the next one at once —
connections that arrive meanwhile wait in the kernel's accept queues, which the master keeps
open. A worker that keeps dying young is restarted after a growing pause (``Backoff``).
SIGTERM or SIGINT stops restarting, is passed on to the worker (which drains), and the master
exits with the worker's status once it is gone. The worker modules are imported before the
first fork, so a restart costs a fork and a table load, not an interpreter start.
Caller: ``server.main``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger("baepo.router")
STABLE = 1.0  # a worker that lived this long (s) is restarted at once
FIRST_PAUSE = 0.1
MAX_PAUSE = 5.0
SLEEP_STEP = 0.05
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


@dataclass
class Backoff:
    """Pause before the next worker: none after a worker that lived ``STABLE`` s or more, nor
    after the first young death; then 0.1 s, doubling up to ``MAX_PAUSE``."""

    young_deaths: int = 0

    def pause(self, lived: float) -> float:
        if lived >= STABLE:
            self.young_deaths = 0
            return 0.0
        self.young_deaths += 1
        if self.young_deaths == 1:
            return 0.0
        return float(min(FIRST_PAUSE * 2 ** (self.young_deaths - 2), MAX_PAUSE))


def describe(status: int) -> str:
    """A wait status in words: "exited with 1", "was killed by SIGKILL"."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"was killed by {name}"
    return f"exited with {os.waitstatus_to_exitcode(status)}"


class Master:
    """Forks, watches and restarts the worker; ``work(restarts)`` is the worker's body and
    returns its exit code (it runs in the child). ``release()`` runs on SIGTERM/SIGINT: it
    closes the master's copies of the listening sockets, so the address is free as soon as
    the draining worker closes its own (a successor may bind it at once)."""

    def __init__(self, work: Callable[[int], int], release: Callable[[], None]) -> None:
        self.work = work
        self.release = release
        self.worker = 0
        self.restarts = 0
        self.stopping = False
        self.backoff = Backoff()

    def run(self) -> int:
        """Keep a worker running until SIGTERM/SIGINT; the last worker's exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        code = 0
        while not self.stop_requested():
            started = time.monotonic()
            self.worker = self._fork()
            if self.stop_requested():
                os.kill(self.worker, signal.SIGTERM)  # the stop came in during the fork
            status = os.waitpid(self.worker, 0)[1]
            code = os.waitstatus_to_exitcode(status)
            pid, self.worker = self.worker, 0
            if self.stop_requested():
                break
            lived = time.monotonic() - started
            pause = self.backoff.pause(lived)
            log.error(
                "worker %d %s after %.1f s; starting another%s",
                pid,
                describe(status),
                lived,
                f" in {pause:g} s" if pause else "",
            )
            self._sleep(pause)
            self.restarts += 1
        return max(code, 0)

    def _fork(self) -> int:
        # A stop signal that arrives around the fork waits until a handler is ready for it:
        # here, and in the worker, which unblocks once its event loop handles them.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                code = self.work(self.restarts)
            except BaseException:
                log.exception("the worker failed")
            finally:
                logging.shutdown()
                os._exit(code)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return pid

    def stop_requested(self) -> bool:
        """True once SIGTERM or SIGINT came in (set by the signal handler at any time)."""
        return self.stopping

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        if self.worker:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.worker, signal.SIGTERM)
        self.release()

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(SLEEP_STEP)
