"""The ``baepo.yaml`` models (Pydantic v2, ``extra="forbid"``).

Every field carries a description: it flows into ``baepo schema`` and ``docs/spec.md``.
Callers: ``spec.loader`` (parse a file), the controller and strategies (read resolved values).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from baepo.spec.analysis import AnalysisTemplateSpec
from baepo.spec.backup import BackupSpec
from baepo.spec.base import LISTEN_RE, Line, SpecModel, check_listen
from baepo.spec.files import APP_NAME_RE
from baepo.spec.gates import ChecksSpec, HooksSpec, MigrateSpec
from baepo.spec.notifications import Channels
from baepo.spec.policy import ApprovalSpec, FreezeWindow
from baepo.spec.rollback import RollbackSpec
from baepo.spec.secrets import SecretValue
from baepo.spec.strategies import (
    RollingSpec,
    StrategySpec,
)
from baepo.spec.target import TargetSpec
from baepo.spec.units import Duration


class RunSpec(SpecModel):
    """How to start one instance of the app on the local target."""

    command: list[str] = Field(
        min_length=1,
        description=(
            "The program and its arguments. `{port}` in any argument is replaced by the port "
            "baepo allocated for the instance; `PORT` is also set in its environment."
        ),
        examples=[["python", "-m", "shop", "--port", "{port}"]],
    )
    cwd: str | None = Field(
        default=None,
        description="Working directory, relative to the spec file's folder. Default: that folder.",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra environment variables for every instance. A value whose name contains "
            "`password`, `token`, `secret` or `key` is taken for a secret: `validate` warns "
            "that it belongs in `secrets:`, revisions keep it encrypted and every view shows "
            "it as `***`."
        ),
    )
    stop_grace_period: Duration = Field(
        default=10.0,
        description="Time between SIGTERM and SIGKILL when an instance is stopped.",
    )
    user: str | None = Field(
        default=None,
        description=(
            "The OS account every command of this spec runs as on the server's machine "
            "(local instances, hooks, checks, migrations, command backups, `job` metrics) "
            "when the server runs as root. Default: the server's `--run-user`, `nobody` "
            "unless set. An account with uid 0 is refused unless the server was started with "
            "`--allow-root-instances`; an account missing on the machine is refused at "
            "deploy. A server that is not root runs them as its own account: then this may "
            "only name that account. Instances on the hosts target run as the SSH account "
            "of each host. See docs/auth.md."
        ),
        examples=["shop"],
        pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*\$?$",
    )

    @field_validator("command")
    @classmethod
    def _no_empty_program(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the first item must name a program")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                raise ValueError(f"{name!r} is not a valid environment variable name")
        return value


class ProbeSpec(SpecModel):
    """An HTTP probe: GET `path` on the instance; any 2xx or 3xx answer is a success."""

    path: str = Field(default="/", description="HTTP path to GET, starting with `/`.")
    interval: Duration = Field(default=1.0, description="Time between two probes.")
    timeout: Duration = Field(default=1.0, description="How long one probe may take.")
    failure_threshold: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Consecutive failures before the probe counts as failed.",
    )
    success_threshold: int = Field(
        default=1,
        ge=1,
        le=100,
        description="Consecutive successes before the probe counts as passing.",
    )
    initial_delay: Duration = Field(
        default=0.0, description="Time after the instance starts before the first probe."
    )

    @field_validator("path")
    @classmethod
    def _path_starts_with_slash(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/', e.g. /health")
        return value


class HealthSpec(SpecModel):
    """Health checks. Readiness gates traffic; liveness restarts a stuck instance."""

    readiness: ProbeSpec = Field(
        default_factory=ProbeSpec,
        description="An instance receives traffic only while its readiness probe passes.",
    )
    liveness: ProbeSpec | None = Field(
        default=None,
        description="When it fails `failure_threshold` times in a row, the instance is restarted.",
    )
    ready_timeout: Duration | None = Field(
        default=None,
        description=(
            "Fail fast: when no instance of a new revision has become ready this long after "
            "the first one started, the rollout fails (rolls back) at once with the readiness "
            "probe's answers as evidence, instead of waiting out `progress_deadline`. Default: "
            "5 times the time the stable revision's instances took to become ready, and at "
            "least 60s (60s for a first deploy), plus `readiness.initial_delay`."
        ),
        examples=["2m"],
    )

    @field_validator("ready_timeout")
    @classmethod
    def _positive_timeout(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be more than 0, e.g. 2m; leave it out for the default")
        return value


class RouterSpec(SpecModel):
    """The router that sits in front of the app's instances: baepo's own, HAProxy or nginx."""

    kind: Literal["builtin", "haproxy", "nginx"] = Field(
        default="builtin",
        description=(
            "Which proxy routes the app's traffic. `builtin`: baepo's own router, nothing to "
            "install. `haproxy`: HAProxy (2.4 or newer), whose weights change at runtime through "
            "its admin socket without a reload. `nginx`: nginx, whose weighted upstreams are "
            "applied with a graceful reload. baepo generates the proxy's whole configuration and "
            "runs the proxy itself; see docs/routers.md for the trade-offs."
        ),
    )
    binary: str | None = Field(
        default=None,
        description=(
            "Path of the `haproxy` or `nginx` executable. Without it, the one on `PATH` (or in "
            "`/usr/sbin`) is used. Ignored by the built-in router."
        ),
    )
    listen: str = Field(
        default="127.0.0.1:8080",
        description="Address the router listens on for the app's users, `host:port`.",
    )
    drain_timeout: Duration = Field(
        default=30.0,
        description="How long in-flight requests may take to finish on an instance being removed.",
    )
    upstream_timeout: Duration = Field(
        default=60.0,
        description="How long the router waits for an instance to start answering a request.",
    )
    idle_timeout: Duration = Field(
        default=75.0, description="Idle client keep-alive connections are closed after this time."
    )
    metrics_listen: str | None = Field(
        default=None,
        description=(
            "Address, `host:port`, where the router serves `GET /metrics` for Prometheus to "
            "scrape: requests per revision and status class (`baepo_router_requests_total`), "
            "a latency histogram (`baepo_router_request_duration_seconds`) and requests in "
            "flight, labelled by `app`, `env`, `listener` and `revision`. "
            "Without it, the router serves no metrics endpoint."
        ),
    )

    @field_validator("listen")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        return check_listen(value)

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_address(cls, value: str | None) -> str | None:
        return None if value is None else check_listen(value)

    @property
    def host(self) -> str:
        match = LISTEN_RE.match(self.listen)
        assert match
        return match.group("host").strip("[]")

    @property
    def port(self) -> int:
        match = LISTEN_RE.match(self.listen)
        assert match
        return int(match.group("port"))


class RestartSpec(SpecModel):
    """How a dying instance is restarted, and when it counts as crash-looping."""

    backoff_initial: Duration = Field(default=0.2, description="First delay before a restart.")
    backoff_max: Duration = Field(default=10.0, description="Longest delay between restarts.")
    crash_loop_restarts: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="This many restarts within `crash_loop_window` marks the instance failed.",
    )
    crash_loop_window: Duration = Field(default=60.0, description="Window for crash counting.")


class LogSpec(SpecModel):
    """Where instance output goes: rotating files under the state directory."""

    max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, le=2**40, description="Rotate a log file at this size."
    )
    backups: int = Field(default=3, ge=0, le=100, description="How many rotated files to keep.")


def _overlays_schema(schema: dict[str, Any]) -> None:
    """JSON Schema of ``environments``: names follow the app rules, each value is a partial spec
    (checked by the loader once merged, so the schema only asks for a mapping)."""
    schema.pop("patternProperties", None)
    schema["propertyNames"] = {"pattern": APP_NAME_RE}
    schema["additionalProperties"] = {
        "type": "object",
        "additionalProperties": True,
        "description": "An overlay: any keys of this spec except app, environments, default_env.",
    }


class Spec(SpecModel):
    """A `baepo.yaml`: one app, how to run it, how to check it, how to release it."""

    app: Annotated[str, Field(pattern=APP_NAME_RE)] = Field(
        description=(
            "The app's name: lower-case letters, digits and dashes, starting and ending with a "
            "letter or digit, at most 63 characters."
        ),
        examples=["shop-api"],
    )
    version: Line | None = Field(
        default=None,
        max_length=128,
        description="The artifact version to release. `baepo deploy --version` overrides it.",
        examples=["1.4.0"],
    )
    run: RunSpec = Field(description="How to start one instance.")
    replicas: int = Field(default=1, ge=0, le=100, description="How many instances to run.")
    target: TargetSpec = Field(default_factory=TargetSpec, description="Where instances run.")
    health: HealthSpec = Field(default_factory=HealthSpec, description="Health checks.")
    router: RouterSpec = Field(default_factory=RouterSpec, description="The built-in router.")
    strategy: StrategySpec = Field(
        default_factory=lambda: StrategySpec(rolling=RollingSpec()),
        description="How a new revision replaces the old one. Default: rolling, 25% / 25%.",
    )
    progress_deadline: Duration = Field(
        default=600.0,
        description=(
            "A rollout that makes no progress for this long (no new instance becomes ready) "
            "fails and rolls back."
        ),
    )
    restart: RestartSpec = Field(default_factory=RestartSpec, description="Restart policy.")
    logs: LogSpec = Field(default_factory=LogSpec, description="Instance log files.")
    analysis: dict[str, AnalysisTemplateSpec] = Field(
        default_factory=dict,
        description=(
            "Named analysis templates, run by canary steps `analysis: {templates: [name]}`. "
            "Names follow the rules of `app`."
        ),
    )
    rollback: RollbackSpec = Field(
        default_factory=RollbackSpec,
        description="Guards that roll a misbehaving release back; on by default.",
    )
    notifications: Channels = Field(
        default_factory=list,
        description=(
            "Channels told about releases through apprise (Slack, e-mail, webhooks...): each "
            "a mapping with `name`, `url_env` (or a secret-free `url`), `events` and an "
            "optional `template`. See docs/notifications.md."
        ),
    )
    approval: ApprovalSpec = Field(
        default_factory=ApprovalSpec,
        description=(
            "`required`: a deploy waits for an approver (`baepo approve`). Usually set in the "
            "production overlay. See docs/pipeline.md."
        ),
    )
    freeze: list[FreezeWindow] = Field(
        default_factory=list,
        description="Windows when deploys are refused, unless an admin overrides with a reason.",
    )
    checks: ChecksSpec = Field(
        default_factory=ChecksSpec, description="Checks that must pass before and after."
    )
    hooks: HooksSpec = Field(default_factory=HooksSpec, description="Commands around a release.")
    migrate: MigrateSpec | None = Field(
        default=None,
        description="The app's migration commands, run as a gate before traffic shifts.",
    )
    backup: BackupSpec | None = Field(default=None, description="How to back up the database.")
    secrets: dict[str, SecretValue] = Field(
        default_factory=dict,
        description=(
            "Secret environment variables of every instance: each maps a variable name to a "
            "secret stored for this app and environment (`baepo secret set`), or to "
            "`{env: NAME}` (a server variable an admin allowed with `--allow-secret-env`) or "
            "`{file: PATH}` (a relative path inside the spec's folder: no `..`, no absolute "
            "path, no symlink leading out). Anything else is refused at deploy. Values never "
            "appear in output, logs or history."
        ),
        examples=[{"DATABASE_PASSWORD": "db-password"}],
    )
    environments: dict[Annotated[str, Field(pattern=APP_NAME_RE)], dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "Per-environment overlays: each maps an environment name (the rules of `app`) to a "
            "partial spec merged over this one when deploying to that environment. Mappings "
            "merge key by key (`run.env` too), lists and other values replace, `strategy` "
            "replaces as a whole and `null` removes a key. An environment not listed here uses "
            "the spec as written. See docs/environments.md."
        ),
        examples=[{"production": {"replicas": 4}}],
        json_schema_extra=_overlays_schema,
    )
    default_env: Annotated[str, Field(pattern=APP_NAME_RE)] | None = Field(
        default=None,
        description=(
            "The environment `baepo config show` uses when `--env` is not given. "
            "Without it, the spec as written (no overlay) is shown."
        ),
        examples=["staging"],
    )

    @model_validator(mode="after")
    def _host_batches_need_hosts(self) -> Spec:
        rolling = self.strategy.rolling
        batched = rolling is not None and rolling.hosts_at_a_time is not None
        if batched and self.target.kind != "hosts":
            raise ValueError(
                "strategy.rolling.hosts_at_a_time: host batches need `target: {kind: hosts}`; "
                "remove it for a local app"
            )
        return self
