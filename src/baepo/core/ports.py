"""The ports: what the controller needs from platforms, routers and the store.

Adapters implement these Protocols; the controller gets them through its constructor. Each
method's docstring states whether it is idempotent, how long it may take, and what it does
when the work is already done.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from baepo.core.model import (
    AnalysisRun,
    ApiToken,
    App,
    AuditRecord,
    Backup,
    DeployLock,
    Event,
    GateRun,
    Instance,
    Measurement,
    Revision,
    Rollout,
    Secret,
    User,
    WebSession,
)


@dataclass(frozen=True)
class ProbeConfig:
    """An HTTP GET probe of one instance (see ``spec.models.ProbeSpec``)."""

    path: str
    interval: float
    timeout: float
    failure_threshold: int
    success_threshold: int
    initial_delay: float


@dataclass(frozen=True)
class HostConfig:
    """One SSH host of a ``hosts`` target (see ``spec.target.HostSpec``)."""

    address: str
    port: int = 22
    user: str = "root"
    key: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    known_hosts: str | None = None  # an OpenSSH known_hosts file; None: keys not checked
    python: str = "python3"  # the interpreter that runs baepo's agent on the host


@dataclass(frozen=True)
class HostsRelease:
    """Where a hosts release folder comes from: ``source`` (the spec's folder) by default, an
    ``archive`` on this machine (an absolute path) or a ``url`` each host downloads (checked
    against ``sha256`` when set); then ``build`` (an argv) runs there once per host and
    revision, within ``build_timeout`` seconds."""

    archive: str = ""
    url: str = ""
    sha256: str = ""
    build: tuple[str, ...] = ()
    build_timeout: float = 600.0


@dataclass(frozen=True)
class HostsTarget:
    """Instances run on SSH hosts: ``source`` (a folder on this machine) is uploaded to each
    as ``<path>/<app>/<env>/r<revision>/`` (or ``release`` says what is) and the command
    runs in its ``workdir``."""

    hosts: tuple[HostConfig, ...]
    path: str
    max_failed_hosts: int
    source: str
    workdir: str = ""
    release: HostsRelease = field(default_factory=HostsRelease)


@dataclass(frozen=True)
class InstanceSpec:
    """What a platform needs to start one instance of a revision."""

    app: str
    env: str
    revision: int
    command: list[str]  # may contain "{port}"
    cwd: str
    env_vars: dict[str, str]
    stop_grace_period: float
    backoff_initial: float
    backoff_max: float
    crash_loop_restarts: int
    crash_loop_window: float
    log_max_bytes: int
    log_backups: int
    readiness: ProbeConfig
    liveness: ProbeConfig | None = None
    # The resolved ``secrets:`` of the spec: given to the instance's environment, never
    # written to the platform's records (nor shown in any repr).
    secret_env: dict[str, str] = field(default_factory=dict, repr=False)
    # Where the instance runs: None on this machine (``cwd`` is then where it starts).
    target: HostsTarget | None = None
    # A placement constraint: the address of the one host of ``target`` it must run on
    # (host batches); None lets the platform choose.
    host: str | None = None
    # The spec's ``run.user``: the OS account the local platform runs the app as when the
    # server is root (None: the server's default). Not used on the hosts target.
    user: str | None = None


class Platform(Protocol):
    """Starts, observes and stops instances. The platform's own records are the truth.

    The platform also runs each instance's probes (as a kubelet does): ``Instance.ready`` is
    its readiness as of the last probe, and a failing liveness probe restarts the instance.
    Both keep working while the controller is down.
    """

    async def start_instance(self, spec: InstanceSpec) -> Instance:
        """Start one new instance on a freshly allocated port; return it in phase STARTING.

        Not idempotent by itself: the controller calls it only after observing too few
        instances, so a pass repeated after a crash sees the instance and starts no other.
        Returns within a second; the process may still be starting.
        """
        ...

    async def list_instances(self, app: str, env: str) -> list[Instance]:
        """Every known instance of app+env, including FAILED ones; never STOPPED ones. Fast."""
        ...

    async def stop_instance(self, instance_id: str, *, grace: float | None = None) -> None:
        """SIGTERM the instance's process group, SIGKILL after ``grace`` (default: its own).

        Idempotent: an unknown or already stopped instance is a no-op. Returns when the
        process is gone (at most ``grace`` + 2 s) and the instance is forgotten.
        """
        ...

    async def restart_instance(self, instance_id: str) -> None:
        """Kill the app process so its supervisor restarts it (liveness failure). Idempotent."""
        ...

    def read_logs(
        self, app: str, env: str, *, revision: int | None = None, tail: int = 100
    ) -> list[str]:
        """The last ``tail`` lines of output of app+env instances (optionally one revision)."""
        ...

    def follow_logs(self, app: str, env: str, *, revision: int | None = None) -> AsyncIterator[str]:
        """New output lines as they are written, until the caller stops iterating."""
        ...


@dataclass(frozen=True)
class Backend:
    """One revision's share of traffic: a relative weight over its ready upstreams."""

    revision: int
    weight: int
    upstreams: tuple[str, ...]  # "host:port", all ready


@dataclass(frozen=True)
class Sticky:
    """Sticky sessions: each client gets a bucket 0..99 from a cookie or a header's hash.

    Exactly one of ``cookie`` and ``header`` is set. Revisions own contiguous bucket ranges
    sized by their weights, newest revision first, so a rising canary weight keeps every
    client already on the canary there. With ``cookie`` the router sets
    ``NAME=<bucket>`` on the first response to a client without a valid one.
    """

    cookie: str | None = None
    header: str | None = None


@dataclass(frozen=True)
class HeaderRoute:
    """Requests whose ``header`` equals ``value`` go to ``revision`` whatever the weights.

    The header name is matched case-insensitively, the value exactly. The route applies
    while the revision has ready upstreams in the table (its weight may be 0); otherwise the
    request is routed as if the rule did not exist. Header routes win over sticky buckets.
    """

    header: str
    value: str
    revision: int


@dataclass(frozen=True)
class RouterConfig:
    """Everything the router needs for one listener of one app+environment.

    An app+environment has the ``"main"`` listener and may have others (a blue-green
    preview address); each is its own router with its own table.
    """

    app: str
    env: str
    listen: str
    upstream_timeout: float
    idle_timeout: float
    listener: str = "main"
    # Where the router serves Prometheus ``GET /metrics``; None: no metrics endpoint.
    metrics_listen: str | None = None
    # Which router serves the listener ("builtin", "haproxy", "nginx") and, for an external
    # proxy, the path of its executable (None: found on PATH).
    kind: str = "builtin"
    binary: str | None = None
    drain_timeout: float = 30.0


@dataclass(frozen=True)
class RevisionStats:
    """Per-revision counters since the router started (monotonic; callers take differences).

    ``started`` (Unix time; 0 when the router does not say) changes when the counters start
    again from zero (the built-in router's worker was replaced): a reader compares it between
    snapshots instead of guessing a reset from a smaller count.
    """

    revision: int
    requests: int
    status: dict[str, int] = field(default_factory=dict)  # "2xx".."5xx" and "error"
    latency_buckets: dict[str, int] = field(default_factory=dict)  # upper bound "0.005" -> count
    latency_sum: float = 0.0
    in_flight: int = 0
    started: float = 0.0
    retries: int = 0  # requests sent again to the revision after an upstream failed (builtin)


class Router(Protocol):
    """Routes an app's traffic over ready instances, by weight between revisions.

    Every method takes the listener (default ``"main"``); listeners of one app+environment
    are independent: their own process, address, table, rules and counters.
    """

    async def ensure_running(self, config: RouterConfig) -> None:
        """Start the router of ``config.listener`` if it is not running; adopt it if it is.

        Idempotent. A running router whose listen address differs is restarted (it keeps
        its table and rules). Returns once the router accepts connections (at most 5 s) or
        raises ExternalError.
        """
        ...

    async def set_backends(
        self,
        app: str,
        env: str,
        backends: Sequence[Backend],
        *,
        sticky: Sticky | None = None,
        header_routes: Sequence[HeaderRoute] = (),
        listener: str = "main",
    ) -> None:
        """Replace the whole routing table and its rules in one atomic step.

        Applied to the next request; in-flight requests keep the upstream they have, and
        those to removed upstreams finish undisturbed. Idempotent: setting the table already
        served changes nothing. Rules left out are cleared. Raises ConfigError naming the
        field when the router rejects the table (nothing is applied then).
        """
        ...

    async def get_backends(self, app: str, env: str, *, listener: str = "main") -> list[Backend]:
        """The routing table the router serves now (empty list when none is set)."""
        ...

    async def in_flight(self, app: str, env: str, *, listener: str = "main") -> dict[str, int]:
        """Requests in flight per upstream address (only non-zero ones are listed)."""
        ...

    async def stats(self, app: str, env: str, *, listener: str = "main") -> list[RevisionStats]:
        """Per-revision counters. Empty when the router is not running."""
        ...

    async def stop(self, app: str, env: str, *, listener: str = "main") -> None:
        """Stop that listener's router process (it drains in-flight requests first).

        Idempotent: a listener that is not running is a no-op. Other listeners of the same
        app+environment keep running; ``listeners`` finds them for clean-up.
        """
        ...

    async def listeners(self, app: str, env: str) -> list[str]:
        """Names of the listeners of app+env whose router is running, ``"main"`` first. Fast."""
        ...


class Lease(Protocol):
    """Leadership among the servers sharing one database: at most one holds it at a time.

    Every method is blocking (the controller calls them from a worker thread), takes at most
    the database's connect or statement timeout, and turns database failures into False or
    None rather than exceptions.
    """

    kind: str  # what holds it, for humans: "postgresql advisory lock", "file lock", ...

    def acquire(self) -> bool:
        """Try to take the lease without waiting; True when this process holds it.
        Idempotent: while held it only checks, like ``renew``."""
        ...

    def renew(self) -> bool:
        """Check the lease is still this process's (and keep it alive); False once lost.
        A lost lease is only taken again by ``acquire``."""
        ...

    def holder(self) -> str | None:
        """The identity of whoever holds it now, None when nobody does (or unknown)."""
        ...

    def release(self) -> None:
        """Give it up at once. Idempotent."""
        ...


class Store(Protocol):
    """Persistent state: apps, revisions, rollouts and the append-only event history.

    Every method is synchronous and runs in one transaction; the controller calls them from a
    worker thread. Writes of rollouts and apps compare-and-set the ``version`` field and raise
    StateError when it does not match.
    """

    def get_app(self, app: str, env: str) -> App | None: ...

    def list_apps(self) -> list[App]: ...

    def save_app(self, app: App) -> App:
        """Insert (version 0) or compare-and-set update; returns the record with version+1."""
        ...

    def add_revision(self, revision: Revision) -> Revision:
        """Store a new revision with number = last + 1 (``revision.number`` is ignored)."""
        ...

    def get_revision(self, app: str, env: str, number: int) -> Revision:
        """Raises NotFoundError naming the revision when it does not exist."""
        ...

    def list_revisions(self, app: str, env: str) -> list[Revision]:
        """Oldest first."""
        ...

    def create_rollout(self, rollout: Rollout) -> Rollout:
        """Insert a rollout (``id`` is assigned). Raises StateError if app+env already has
        a rollout in a non-terminal phase."""
        ...

    def save_rollout(self, rollout: Rollout) -> Rollout:
        """Compare-and-set on ``version``; returns the record with version+1."""
        ...

    def get_rollout(self, rollout_id: int) -> Rollout: ...

    def active_rollout(self, app: str, env: str) -> Rollout | None:
        """The rollout of app+env in a non-terminal phase, if any."""
        ...

    def active_rollouts(self) -> list[Rollout]: ...

    def list_rollouts(self, app: str, env: str) -> list[Rollout]:
        """Oldest first."""
        ...

    def latest_rollout(self, app: str, env: str) -> Rollout | None:
        """The most recent rollout of app+env, whatever its phase."""
        ...

    def append_event(self, event: Event) -> Event:
        """Append; returns the event with its ``id``."""
        ...

    def list_events(
        self,
        app: str,
        env: str,
        *,
        after: int = 0,
        limit: int = 200,
        rollout_id: int | None = None,
    ) -> list[Event]:
        """Events with id > ``after``, oldest first."""
        ...

    def recent_events(self, app: str, env: str, *, limit: int = 20) -> list[Event]:
        """The newest ``limit`` events of app+env, oldest first."""
        ...

    def create_analysis_run(self, run: AnalysisRun) -> AnalysisRun:
        """Insert a run (``run.id`` is ignored, a new one is assigned); returns it.

        Not idempotent: raises StateError naming the key when the rollout already has a run
        with ``run.key`` (a caller repeating a pass reads that run instead), NotFoundError
        when the rollout does not exist.
        """
        ...

    def save_analysis_run(self, run: AnalysisRun) -> AnalysisRun:
        """Overwrite every field of the run with ``run.id`` (last write wins; idempotent).

        Raises NotFoundError when there is no such run, StateError when the new ``key`` is
        taken by another run of the rollout.
        """
        ...

    def get_analysis_run(self, run_id: int) -> AnalysisRun:
        """Raises NotFoundError naming the run when it does not exist."""
        ...

    def list_analysis_runs(
        self,
        app: str,
        env: str,
        *,
        rollout_id: int | None = None,
        revision: int | None = None,
        limit: int = 100,
    ) -> list[AnalysisRun]:
        """The newest ``limit`` runs of app+env, optionally only those of one rollout and/or
        one revision, oldest first."""
        ...

    def running_analysis_runs(self, rollout_id: int) -> list[AnalysisRun]:
        """The rollout's runs still in phase RUNNING, oldest first (empty when none)."""
        ...

    def add_measurement(self, measurement: Measurement) -> Measurement:
        """Append (``measurement.id`` is ignored); returns it with its new ``id``, greater
        than every earlier one. Not idempotent. NotFoundError when the run does not exist.

        ``value`` may be any JSON-able value; NaN and infinities are kept. Numbers read back
        as equal numbers, not always of the same type (``1.0`` may come back as ``1``).
        """
        ...

    def list_measurements(self, run_id: int, *, limit: int = 1000) -> list[Measurement]:
        """The newest ``limit`` measurements of the run, oldest first (empty for an unknown
        run)."""
        ...

    def add_token(self, token: ApiToken) -> ApiToken:
        """Insert a token; StateError when its id is taken."""
        ...

    def get_token(self, token_id: str) -> ApiToken | None: ...

    def save_token(self, token: ApiToken) -> ApiToken:
        """Update a token (revocation, last use); NotFoundError when it does not exist."""
        ...

    def list_tokens(self) -> list[ApiToken]:
        """Every token, revoked ones too, oldest first."""
        ...

    def append_audit(self, record: AuditRecord) -> AuditRecord:
        """Append to the audit log; returns the record with its ``id``."""
        ...

    def list_audit(
        self,
        *,
        after: int = 0,
        limit: int = 200,
        app: str | None = None,
        env: str | None = None,
    ) -> list[AuditRecord]:
        """Audit records with id > ``after``, the oldest ``limit`` of them, oldest first."""
        ...

    def add_user(self, user: User) -> User:
        """Insert a user; StateError when the username is taken."""
        ...

    def get_user(self, username: str) -> User | None: ...

    def save_user(self, user: User) -> User:
        """Update a user (password, role, disabled); NotFoundError when it does not exist."""
        ...

    def list_users(self) -> list[User]:
        """Every user, disabled ones too, by username."""
        ...

    def add_session(self, session: WebSession) -> WebSession:
        """Insert a dashboard session; also deletes every expired one. Not idempotent."""
        ...

    def get_session(self, id_hash: str) -> WebSession | None:
        """The session with this id hash, expired or not (the caller checks)."""
        ...

    def delete_session(self, id_hash: str) -> bool:
        """Forget a session (logout); whether it was there (a one-time login link is used
        by whoever deletes it). Idempotent: nothing happens when it is gone."""
        ...

    def get_lock(self, app: str, env: str) -> DeployLock | None: ...

    def add_lock(self, lock: DeployLock) -> DeployLock:
        """Take the deploy lock of app+env; StateError naming holder, time and reason when it
        is already held (even by ``lock.holder``)."""
        ...

    def delete_lock(self, app: str, env: str) -> DeployLock | None:
        """Release the lock; returns what was released, None when there was none."""
        ...

    def put_secret(self, secret: Secret) -> Secret:
        """Insert or replace (``secret.version`` is ignored); returns it with version = the
        previous one + 1, or 1."""
        ...

    def get_secret(self, app: str, env: str, name: str) -> Secret | None: ...

    def list_secrets(self, app: str, env: str) -> list[Secret]:
        """By name."""
        ...

    def delete_secret(self, app: str, env: str, name: str) -> bool:
        """False when there was no such secret."""
        ...

    def add_gate_run(self, run: GateRun) -> GateRun:
        """Insert (``run.id`` is ignored); NotFoundError when its rollout does not exist."""
        ...

    def save_gate_run(self, run: GateRun) -> GateRun:
        """Overwrite every field of the run with ``run.id``; NotFoundError when none."""
        ...

    def list_gate_runs(
        self,
        app: str,
        env: str,
        *,
        rollout_id: int | None = None,
        revision: int | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[GateRun]:
        """The newest ``limit`` runs, optionally of one rollout, revision or kind, oldest
        first."""
        ...

    def add_backup(self, backup: Backup) -> Backup:
        """Insert (``backup.id`` is ignored); returns it with its new ``id``."""
        ...

    def save_backup(self, backup: Backup) -> Backup:
        """Overwrite every field of the backup with ``backup.id``; NotFoundError when none."""
        ...

    def get_backup(self, backup_id: int) -> Backup:
        """NotFoundError naming the backup when it does not exist."""
        ...

    def list_backups(self, app: str, env: str, *, limit: int = 100) -> list[Backup]:
        """The newest ``limit`` backups, oldest first."""
        ...

    def delete_backup(self, backup_id: int) -> None:
        """Forget a backup's record. Idempotent."""
        ...

    def lease(self, name: str, identity: str, *, ttl: float) -> Lease:
        """The leader lease ``name`` for this process, named ``identity`` to the others.

        ``ttl``: seconds after which a holder that stopped renewing loses it. Opens nothing
        until ``Lease.acquire`` is called.
        """
        ...
