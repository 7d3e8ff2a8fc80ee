"""The instance supervisor: one detached process per local instance (the local "kubelet").

``python -m baepo.platforms.local.supervisor INSTANCE_DIR`` reads ``instance.json``, runs the app
in its own process group with its output in ``output.log``, restarts it with exponential backoff,
gives up on a crash loop, runs the readiness and liveness probes, and keeps ``state.json``
current. SIGTERM stops the app (SIGTERM, then SIGKILL after the grace period) and exits 0; SIGUSR1
restarts the app. It outlives the controller. Stdlib only, so it starts fast.
Callers: ``platform.LocalPlatform`` starts it; nothing imports it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from types import FrameType
from typing import IO, Any

from baepo.core import evidence
from baepo.core.model import InstancePhase
from baepo.platforms.local import records, restarts
from baepo.platforms.local.logfile import SUPERVISOR_MARK, RotatingLog
from baepo.platforms.local.probe import ProbeLoop
from baepo.shell import accounts, listeners, statedir

POLL = 0.05  # seconds between checks of the app and of signal flags


class Supervisor:
    """Runs and watches one app process until told to stop or it crash-loops."""

    def __init__(self, directory: Path, record: records.InstanceRecord) -> None:
        self.directory = directory
        self.record = record
        self.spec = record.spec
        self.log = RotatingLog(
            directory / records.LOG_FILE, self.spec.log_max_bytes, self.spec.log_backups
        )
        self.crash_loop = restarts.CrashLoop(
            self.spec.crash_loop_restarts, self.spec.crash_loop_window
        )
        self._lock = threading.Lock()
        self._state = records.InstanceState(
            phase=InstancePhase.STARTING, supervisor_pid=os.getpid()
        )
        self._stopping = False  # set by SIGTERM/SIGINT
        self._restart_reason: str | None = None  # set by SIGUSR1 or a failed liveness probe
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: deque[str] = deque(maxlen=evidence.TAIL_LINES)  # the app's last lines
        self._began = time.monotonic()  # when the app first started

    # -- state ---------------------------------------------------------------------------

    def update(self, **changes: Any) -> None:
        """Apply changes to the state and write ``state.json`` when anything changed."""
        with self._lock:
            new = dataclasses.replace(self._state, **changes)
            if new == self._state:
                return
            self._state = dataclasses.replace(new, updated_at=records.utc_now())
            records.write_json_atomic(self.directory / records.STATE_FILE, self._state.to_json())

    @property
    def state(self) -> records.InstanceState:
        with self._lock:
            return self._state

    def note(self, text: str) -> None:
        """A supervisor line in the instance's log."""
        self.log.write(f"{SUPERVISOR_MARK} {text}")

    # -- signals ---------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGUSR1, self._on_restart_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def stop_requested(self) -> bool:
        return self._stopping

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _on_restart_signal(self, signum: int, frame: FrameType | None) -> None:
        self._restart_reason = "restart requested"

    # -- main loop -------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until stopped (exit 0) or failed (exit 1). Never leaves the app running."""
        self._write_state_now()
        attempt = 0
        try:
            while not self._stopping:
                began = time.monotonic()
                self._restart_reason = None  # a request made before this start is fulfilled by it
                proc = self._start_app()
                if proc is None:
                    return 1
                returncode, requested = self._watch(proc)
                if self.stop_requested():
                    break
                now = time.monotonic()
                why = restarts.describe_exit(returncode)
                if evidence.port_conflict(self.state.output):
                    why = f"{why}: {listeners.describe(self.record.port)}"
                if requested:
                    why = f"{requested}; {why}"
                if now - began >= self.spec.crash_loop_window:
                    attempt = 0  # it ran well for a while: start the backoff afresh
                if self.crash_loop.exceeded(now):
                    message = restarts.crash_loop_message(
                        returncode, self.crash_loop.count(now), self.spec.crash_loop_window
                    )
                    if evidence.port_conflict(self.state.output):
                        message = f"{message}: {listeners.describe(self.record.port)}"
                    self.note(f"giving up: {message}")
                    self.update(phase=InstancePhase.FAILED, ready=False, message=message)
                    return 1
                attempt += 1
                delay = (
                    0.0
                    if requested
                    else restarts.backoff_delay(
                        attempt, self.spec.backoff_initial, self.spec.backoff_max
                    )
                )
                self.crash_loop.record(now)
                self.note(f"{why}; restarting in {delay:g}s")
                self.update(
                    phase=InstancePhase.STARTING,
                    restarts=self.state.restarts + 1,
                    message=f"{why}; restarting",
                )
                if not self._sleep(delay):
                    break
        finally:
            self._kill_leftovers()
        self.note("stopped")
        self.update(phase=InstancePhase.STOPPED, ready=False, pid=None, message="stopped")
        return 0

    def _write_state_now(self) -> None:
        with self._lock:
            records.write_json_atomic(self.directory / records.STATE_FILE, self._state.to_json())

    def _sleep(self, seconds: float) -> bool:
        """Sleep in small steps, cut short by a restart request; False when asked to stop."""
        deadline = time.monotonic() + seconds
        while not self._stopping and not self._restart_reason and time.monotonic() < deadline:
            time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
        return not self._stopping

    def _start_app(self) -> subprocess.Popen[bytes] | None:
        argv = restarts.substitute_port(self.spec.command, self.record.port)
        identity = {
            "BAEPO_INSTANCE": self.record.id,
            "BAEPO_APP": self.spec.app,
            "BAEPO_ENV": self.spec.env,
            "BAEPO_REVISION": str(self.spec.revision),
        }
        base = accounts.inherited_environment(os.environ)
        secret_names = os.environ.get(records.SECRET_NAMES_VAR, "").split(",")
        base.update({name: os.environ[name] for name in secret_names if name in os.environ})
        switch: dict[str, Any] = {}
        account = self.record.account
        if account is not None:
            base.update(account.environment())
            switch = {"user": account.uid, "group": account.gid, "extra_groups": []}
        env = restarts.app_environment(base, self.spec.env_vars, self.record.port, identity)
        problem = None
        if not os.path.isdir(self.spec.cwd):
            problem = f"cannot start {argv[0]!r}: working directory {self.spec.cwd!r} not found"
        else:
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=self.spec.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    umask=statedir.CHILD_UMASK,
                    **switch,
                )
            except OSError as exc:
                problem = _start_problem(argv[0], exc, account)
                if exc.errno == errno.ENOENT and "/" not in argv[0]:
                    self.note(f"PATH is {env.get('PATH', '')}")  # in the log, not the cause
        if problem is not None:
            self.note(problem)
            self.update(phase=InstancePhase.FAILED, ready=False, pid=None, message=problem)
            return None
        self._proc = proc
        self._output.clear()  # the evidence of a failure is this run's output
        who = f" as user {account.name!r}" if account is not None else ""
        self.note(f"started {argv[0]!r} as pid {proc.pid}{who} on port {self.record.port}")
        self.update(
            phase=InstancePhase.RUNNING, pid=proc.pid, started_at=records.utc_now(), message=""
        )
        return proc

    def _watch(self, proc: subprocess.Popen[bytes]) -> tuple[int, str | None]:
        """Wait for the app to exit, terminating it when asked; ``(returncode, reason)``."""
        run_over = threading.Event()
        assert proc.stdout is not None
        pump = threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True)
        pump.start()
        probes = self._start_probes(run_over)
        kill_at: float | None = None
        reason: str | None = None
        while (returncode := proc.poll()) is None:
            if kill_at is None and (self._stopping or self._restart_reason):
                reason = None if self._stopping else self._restart_reason
                run_over.set()
                grace = self._grace()
                if self._stopping:
                    self.update(phase=InstancePhase.STOPPING, ready=False, message="stopping")
                else:
                    self.update(ready=False, message=f"{reason}; restarting")
                self.note(f"sending SIGTERM to pid {proc.pid} (SIGKILL in {grace:g}s)")
                _signal_group(proc.pid, signal.SIGTERM)
                kill_at = time.monotonic() + grace
            elif kill_at is not None and time.monotonic() >= kill_at:
                self.note(f"pid {proc.pid} still running after the grace period: SIGKILL")
                _signal_group(proc.pid, signal.SIGKILL)
                kill_at = float("inf")
            time.sleep(POLL)
        run_over.set()
        _signal_group(proc.pid, signal.SIGKILL)  # whatever the app left behind in its group
        self._proc = None
        self._restart_reason = None
        pump.join(timeout=2.0)
        for probe in probes:
            probe.join(timeout=0.5)
        self.note(f"pid {proc.pid} {restarts.describe_exit(returncode)}")
        secrets = [os.environ[name] for name in _secret_names() if name in os.environ]
        output = evidence.output_tail(self._output, secrets)
        self.update(ready=False, pid=None, last_exit_code=returncode, output=output)
        return returncode, reason

    def _grace(self) -> float:
        """The stop grace period: the platform's override in ``stop.json``, or the spec's."""
        override = records.read_json(self.directory / records.STOP_FILE)
        if override is not None and isinstance(override.get("grace"), int | float):
            return float(override["grace"])
        return self.spec.stop_grace_period

    def _pump(self, stream: IO[bytes]) -> None:
        """Copy the app's output into the log, line by line."""
        with stream:
            for raw in iter(lambda: stream.readline(64 * 1024), b""):
                line = raw.decode(errors="replace")
                self.log.write(line)
                self._output.append(line[: evidence.LINE_CHARS * 2])

    def _start_probes(self, run_over: threading.Event) -> list[ProbeLoop]:
        address = (self.record.host, self.record.port)

        def readiness_changed(passing: bool, detail: str) -> None:
            if run_over.is_set():
                return
            if passing != self.state.ready:
                self.note(f"readiness probe {'passed' if passing else 'failed'}: {detail}")
            failures = 0 if passing else probes[0].tracker.failures
            ready_after = self.state.ready_after
            if passing and ready_after is None:
                ready_after = round(time.monotonic() - self._began, 3)
            self.update(
                ready=passing,
                message="" if passing else f"not ready: {detail}",
                probe_failures=failures,
                ready_after=ready_after,
            )

        def liveness_changed(passing: bool, detail: str) -> None:
            if run_over.is_set() or passing:
                return
            self.note(f"liveness probe failed: {detail}")
            self._restart_reason = "liveness probe failed"

        probes = [
            ProbeLoop(
                "readiness",
                self.spec.readiness,
                address,
                initially_passing=False,
                on_change=readiness_changed,
                stop=run_over,
                report_failures=True,
            )
        ]
        if self.spec.liveness is not None:
            probes.append(
                ProbeLoop(
                    "liveness",
                    self.spec.liveness,
                    address,
                    initially_passing=True,
                    on_change=liveness_changed,
                    stop=run_over,
                )
            )
        for probe in probes:
            probe.start()
        return probes

    def _kill_leftovers(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            _signal_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2.0)


def _secret_names() -> list[str]:
    """Names of the supervisor's variables that hold the instance's secrets."""
    return [name for name in os.environ.get(records.SECRET_NAMES_VAR, "").split(",") if name]


def _start_problem(program: str, exc: OSError, account: accounts.Account | None) -> str:
    """Why the app's program could not be run, in words that say what to change."""
    who = f" as {account.name!r}" if account is not None else ""
    if exc.errno == errno.ENOENT and "/" not in program:
        return (
            f"command {program!r} not found in PATH{who}: install it, or give its full path "
            "in run.command"
        )
    if exc.errno == errno.ENOENT:
        return f"cannot start {program!r}{who}: no such file (a path is relative to run.cwd)"
    if exc.errno == errno.EACCES:
        return f"cannot start {program!r}{who}: permission denied (is it executable?)"
    return f"cannot start {program!r}{who}: {exc.strerror or exc}"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m baepo.platforms.local.supervisor INSTANCE_DIR", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    record = records.load_record(directory)
    if record is None:
        print(f"{directory}: missing or invalid {records.INSTANCE_FILE}", file=sys.stderr)
        return 2
    supervisor = Supervisor(directory, record)
    supervisor.install_signal_handlers()
    try:
        return supervisor.run()
    except BaseException as exc:
        supervisor.update(
            phase=InstancePhase.FAILED, ready=False, message=f"supervisor error: {exc!r}"
        )
        raise


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
