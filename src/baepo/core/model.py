"""Domain records: revisions, rollouts, events, apps and instances (frozen dataclasses).

These cross every layer: the store maps them to rows, the controller and strategies read them,
the API turns them into JSON. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

DEFAULT_ENV = "default"


class RolloutPhase(StrEnum):
    """Where a rollout is. The last five are terminal.

    ``awaiting_approval``: the environment's policy asks for an approver before anything
    happens; ``pending`` then runs the gates (checks, hooks, backup, migrations) before the
    strategy moves any traffic.
    """

    AWAITING_APPROVAL = "awaiting_approval"
    PENDING = "pending"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    PROMOTING = "promoting"
    HEALTHY = "healthy"
    ABORTED = "aborted"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    SUPERSEDED = "superseded"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset(
    {
        RolloutPhase.HEALTHY,
        RolloutPhase.ABORTED,
        RolloutPhase.ROLLED_BACK,
        RolloutPhase.FAILED,
        RolloutPhase.SUPERSEDED,
    }
)


class AppState(StrEnum):
    """Whether an app+environment should be running at all (``baepo down`` sets DOWN)."""

    RUNNING = "running"
    DOWN = "down"


def config_hash(config: dict[str, Any]) -> str:
    """A stable short hash of a resolved config (canonical JSON, sorted keys)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Revision:
    """An immutable, numbered release of an app in one environment.

    ``config`` is the resolved spec as JSON (``Spec.model_dump(mode="json")``) with the version
    filled in; ``spec_dir`` is the folder relative paths in it are resolved against.
    """

    app: str
    env: str
    number: int
    version: str
    config: dict[str, Any]
    config_hash: str
    spec_dir: str
    created_by: str
    created_at: datetime
    message: str = ""
    origin: str = "deploy"  # "deploy", "undo of N" (a copy of revision N), "promotion of E/N"
    source: dict[str, Any] | None = None  # the spec as written, overlays included
    # Which version of each secret variable the revision's instances read, never a value:
    # {"DB_PASSWORD": "secret db-password v3", "API_KEY": "env API_KEY 9f2c1a0b7d3e"}.
    secrets: dict[str, str] = field(default_factory=dict)


class CauseKind(StrEnum):
    """Why a rollout failed, rolled back, was aborted or stalls: a fixed taxonomy.

    ``gate`` covers gates, hooks and migrations; ``infrastructure`` the router, the platform,
    a host or the store; ``aborted`` a person (abort, undo, down, a rejected approval).
    """

    START_FAILED = "start_failed"
    NEVER_READY = "never_ready"
    PORT_CONFLICT = "port_conflict"
    CRASH_LOOP = "crash_loop"
    ROLLBACK_GUARD = "rollback_guard"
    ANALYSIS = "analysis"
    GATE = "gate"
    DEADLINE = "deadline"
    INFRASTRUCTURE = "infrastructure"
    ABORTED = "aborted"
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class Cause:
    """The cause of a rollout's failure and its evidence: one plain-words ``summary`` and short
    ``evidence`` lines (a probe's result, an instance's last output lines, a guard's figures
    for the new and the stable revision, an analysis' measurements)."""

    kind: CauseKind
    summary: str
    evidence: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "summary": self.summary, "evidence": list(self.evidence)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Cause | None:
        """The cause stored as ``to_json`` made it, or None for no cause (or an unknown kind)."""
        if not data:
            return None
        try:
            kind = CauseKind(data["kind"])
        except (KeyError, ValueError):
            return None
        evidence = tuple(str(line) for line in data.get("evidence") or ())
        return cls(kind=kind, summary=str(data.get("summary", "")), evidence=evidence)


@dataclass(frozen=True)
class Rollout:
    """The process moving an app+environment from ``stable_revision`` to ``revision``.

    ``status`` holds strategy-specific progress (JSON-able); ``version`` is the compare-and-set
    counter the store bumps on every write.
    """

    id: int
    app: str
    env: str
    revision: int
    stable_revision: int | None
    strategy: str
    phase: RolloutPhase
    message: str
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    status: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    cause: Cause | None = None  # why it failed, rolled back, was aborted or stalls


@dataclass(frozen=True)
class Event:
    """One append-only history entry: a rollout transition or an action taken or asked for."""

    app: str
    env: str
    kind: str
    message: str
    at: datetime
    rollout_id: int | None = None
    revision: int | None = None
    actor: str = "controller"
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True)
class App:
    """An app in one environment: which revision is stable and whether it should run."""

    app: str
    env: str
    state: AppState
    stable_revision: int | None
    updated_at: datetime
    version: int = 0


class InstancePhase(StrEnum):
    """What the platform knows of one instance's process (readiness is probed separately)."""

    STARTING = "starting"  # the process is being started or restarted
    RUNNING = "running"  # the process is up
    FAILED = "failed"  # crash loop or could not start: the platform gave up on it
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Instance:
    """One running (or failed) instance of a revision, as a platform reports it."""

    id: str
    app: str
    env: str
    revision: int
    host: str
    port: int
    phase: InstancePhase
    ready: bool = False
    restarts: int = 0
    started_at: datetime | None = None
    pid: int | None = None
    message: str = ""
    probe_failures: int = 0  # readiness checks failed in a row (0 while passing)
    # The evidence of a failed start: the exit code of the app's last run, the last lines of
    # its own output (``core.evidence``: bounded, cleaned, secrets blanked) and how long its
    # first readiness took after it started (None while it was never ready).
    exit_code: int | None = None
    output: tuple[str, ...] = ()
    ready_after: float | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class AnalysisPhase(StrEnum):
    """The verdict of an analysis run, of one of its metrics, or of one measurement.

    A measurement is never RUNNING. ERROR means "could not be measured" (a source down, a
    condition that could not be evaluated), never a pass. CANCELLED is a run (or a metric of
    one) ended before its verdict by something else: the rollout rolled back by a guard,
    aborted, superseded, or a step skipped by ``baepo promote``; it is never a pass either.
    """

    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self != AnalysisPhase.RUNNING


@dataclass(frozen=True)
class AnalysisRun:
    """One run of analysis templates against a revision during a rollout.

    ``kind`` says where it runs: ``step`` (a canary step), ``background``, ``pre_promotion``,
    ``post_promotion`` or ``guards`` (the ``rollback:`` section). ``key`` is unique within the
    rollout (``step-3``, ``background``...). ``metrics`` holds each metric's summary, keyed
    ``template/metric``: its phase, counts, condition, dry_run flag and reason in plain words.
    """

    app: str
    env: str
    rollout_id: int
    revision: int
    baseline: int | None
    kind: str
    key: str
    templates: list[str]
    phase: AnalysisPhase
    message: str
    started_at: datetime
    finished_at: datetime | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    id: int = 0


@dataclass(frozen=True)
class Measurement:
    """One measurement of one metric in an analysis run (append-only).

    ``value`` is the JSON-able result (a number, list, mapping, bool or None); ``message``
    says in plain words how it was judged (``0.31 > 0.05``) or why it could not be taken;
    ``output`` keeps a job's output or a response preview.
    """

    run_id: int
    template: str
    metric: str
    phase: AnalysisPhase
    value: Any
    message: str
    at: datetime
    output: str = ""
    id: int = 0


@dataclass(frozen=True)
class AnalysisRequest:
    """An analysis a strategy wants running now (the engine starts it once, then keeps it).

    ``blocking`` runs (a canary step, around a blue-green promotion) take one measurement of
    a metric without ``count``; background runs measure until they are no longer requested.
    """

    key: str
    kind: str
    templates: tuple[str, ...]
    revision: int
    baseline: int | None
    args: tuple[tuple[str, str], ...] = ()
    blocking: bool = True


ROLES = ("viewer", "deployer", "approver", "admin")
"""Roles, each allowed what the ones before it are: read; deploy and steer; approve; manage
tokens and everything else."""


@dataclass(frozen=True)
class ApiToken:
    """An API token's record. The secret itself is never stored: only its SHA-256.

    ``envs`` are the environments the role applies to; ``["*"]`` means every one.
    """

    id: str
    name: str
    role: str
    envs: list[str]
    secret_hash: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class AuditRecord:
    """One append-only audit entry: who did what, when, from where, with which result."""

    at: datetime
    actor: str
    role: str
    action: str
    source: str
    status: int
    app: str | None = None
    env: str | None = None
    detail: str = ""
    id: int = 0


@dataclass(frozen=True)
class User:
    """A dashboard user: a password (only its scrypt hash is stored), a role per environment.

    ``password_hash`` is ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>``; ``envs`` as for tokens.
    """

    username: str
    password_hash: str
    role: str
    envs: list[str]
    created_at: datetime
    created_by: str
    disabled: bool = False


@dataclass(frozen=True)
class WebSession:
    """A dashboard login. The cookie holds a random id; the store keeps its SHA-256 only.

    ``kind`` is ``user`` (``subject`` is a username), ``token`` (a token id) or ``local`` (the
    local user of a server without auth). ``csrf`` is the synchronizer token every form of
    this session must send back.
    """

    id_hash: str
    kind: str
    subject: str
    csrf: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class DeployLock:
    """A hold on deploys of one app+environment (``baepo lock``): only ``holder`` may deploy
    until it is released."""

    app: str
    env: str
    holder: str
    reason: str
    since: datetime


@dataclass(frozen=True)
class Secret:
    """A secret of one app+environment. Only its ciphertext is stored (Fernet, with a key that
    never enters the database); ``version`` grows by one at every change."""

    app: str
    env: str
    name: str
    ciphertext: str
    version: int
    updated_at: datetime
    updated_by: str


class GatePhase(StrEnum):
    """The state of one gate run: a check, a hook, a migration or a backup."""

    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True)
class GateRun:
    """One run of a check, hook, migration command or backup, with its output.

    ``kind`` is ``check``, ``hook``, ``migrate`` or ``backup``; ``stage`` says when it ran
    (``before``/``after`` for checks, ``pre_deploy``, ``post_deploy``, ``on_rollback``,
    ``on_failure`` for hooks, ``up``/``down``/``status`` for migrations, ``create``/``restore``
    for backups). ``rollout_id`` is None for runs asked for by hand.
    """

    app: str
    env: str
    kind: str
    stage: str
    name: str
    phase: GatePhase
    started_at: datetime
    actor: str = "controller"
    rollout_id: int | None = None
    revision: int | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    message: str = ""
    output: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    id: int = 0


@dataclass(frozen=True)
class Backup:
    """A backup of an app's database: where it is, how big, its SHA-256, and whether it
    completed (``status`` ``ok`` or ``failed``)."""

    app: str
    env: str
    kind: str
    location: str
    created_at: datetime
    created_by: str
    status: str = "ok"
    revision: int | None = None
    size_bytes: int = 0
    sha256: str = ""
    reason: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    id: int = 0
