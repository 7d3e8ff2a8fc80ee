"""The files of one local instance: ``instance.json`` (what to run) and ``state.json`` (what is).

The platform writes ``instance.json`` before it starts the supervisor; the supervisor writes
``state.json`` atomically (write, then rename) on every change, and the platform reads it.
Stdlib only, because the supervisor imports it. Callers: ``supervisor``, ``platform``, ``logs``.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from baepo.core.model import InstancePhase
from baepo.core.ports import InstanceSpec, ProbeConfig
from baepo.shell.accounts import Account

INSTANCE_FILE = "instance.json"
STATE_FILE = "state.json"
LOG_FILE = "output.log"
SUPERVISOR_LOG = "supervisor.log"
SUPERVISOR_PID_FILE = "supervisor.pid"
STOP_FILE = "stop.json"
SECRET_NAMES_VAR = "BAEPO_SECRET_NAMES"  # noqa: S105 (a variable name, not a secret)
"""Names (comma-separated) of the supervisor's variables that are the instance's secrets: the
supervisor passes these on to the app with the few server variables every spec command
inherits (``shell.accounts.inherited_environment``), and nothing else of its environment."""


def utc_now() -> str:
    """The current time as ISO 8601 UTC with milliseconds, e.g. ``2024-05-01T12:00:00.123Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(value: str | None) -> datetime | None:
    """The inverse of ``utc_now`` (None stays None)."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class InstanceRecord:
    """``instance.json``: the instance's identity, its address and the spec it runs."""

    id: str
    host: str
    port: int
    spec: InstanceSpec
    created_at: str
    account: Account | None = None  # the OS account the app runs as; None: the supervisor's

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceRecord:
        spec = dict(data["spec"])
        spec["readiness"] = ProbeConfig(**spec["readiness"])
        if spec.get("liveness") is not None:
            spec["liveness"] = ProbeConfig(**spec["liveness"])
        account = data.get("account")
        return cls(
            id=str(data["id"]),
            host=str(data["host"]),
            port=int(data["port"]),
            spec=InstanceSpec(**spec),
            created_at=str(data["created_at"]),
            account=Account(**account) if account is not None else None,
        )


@dataclass(frozen=True)
class InstanceState:
    """``state.json``: what the supervisor last observed. ``pid`` is the app's (also its pgid)."""

    phase: InstancePhase
    ready: bool = False
    restarts: int = 0
    pid: int | None = None
    supervisor_pid: int | None = None
    started_at: str | None = None  # when the current app process started
    last_exit_code: int | None = None
    message: str = ""
    updated_at: str = field(default_factory=utc_now)
    probe_failures: int = 0  # readiness checks failed in a row, as last reported
    # The app's last output lines when it last exited (``core.evidence.output_tail``: bounded,
    # cleaned, secrets blanked) and the seconds from its first start to its first readiness.
    output: tuple[str, ...] = ()
    ready_after: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["output"] = list(self.output)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceState:
        return cls(
            phase=InstancePhase(data["phase"]),
            ready=bool(data.get("ready", False)),
            restarts=int(data.get("restarts", 0)),
            pid=data.get("pid"),
            supervisor_pid=data.get("supervisor_pid"),
            started_at=data.get("started_at"),
            last_exit_code=data.get("last_exit_code"),
            message=str(data.get("message", "")),
            updated_at=str(data.get("updated_at", "")),
            probe_failures=int(data.get("probe_failures", 0)),
            output=tuple(str(line) for line in data.get("output") or ()),
            ready_after=_seconds(data.get("ready_after")),
        )


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_record(directory: Path) -> InstanceRecord | None:
    """The instance's ``instance.json``, or None when missing or malformed."""
    data = read_json(directory / INSTANCE_FILE)
    if data is None:
        return None
    try:
        return InstanceRecord.from_json(data)
    except (KeyError, TypeError, ValueError):
        return None


def load_state(directory: Path) -> InstanceState | None:
    """The instance's ``state.json``, or None before the supervisor first wrote it."""
    data = read_json(directory / STATE_FILE)
    if data is None:
        return None
    try:
        return InstanceState.from_json(data)
    except (KeyError, TypeError, ValueError):
        return None


def read_pid(path: Path) -> int | None:
    """A pid written as text in ``path``, or None."""
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None
