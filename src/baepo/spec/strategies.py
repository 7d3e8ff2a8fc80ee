"""The ``strategy:`` section: recreate, rolling, canary (with steps) or blue-green.

Field names follow Argo Rollouts' (``maxSurge`` → ``max_surge``, ``autoPromotionSeconds`` →
``auto_promotion_seconds``, ...), so its users find their way. Callers: ``spec.models``; the
strategies read the resolved values.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from baepo.spec.base import SpecModel, check_listen
from baepo.spec.units import CountOrPercent, Duration, resolve_count

STRATEGY_NAMES = ("recreate", "rolling", "canary", "blue_green")
_HEADER_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


class RecreateSpec(SpecModel):
    """Stop every old instance, then start the new ones. Has downtime; use for dev or singletons."""


class RollingSpec(SpecModel):
    """Replace instances a few at a time, as a Kubernetes Deployment does."""

    max_surge: CountOrPercent = Field(
        default="25%",
        description=(
            "How many instances may run above `replicas` during the update "
            "(a count, or a percentage of replicas rounded up)."
        ),
    )
    max_unavailable: CountOrPercent = Field(
        default="25%",
        description=(
            "How many of `replicas` may be not ready during the update "
            "(a count, or a percentage of replicas rounded down)."
        ),
    )

    hosts_at_a_time: CountOrPercent | None = Field(
        default=None,
        description=(
            "`target: hosts` only: roll host by host, this many hosts at a time (a count, or "
            "a percentage of the hosts rounded down, at least 1). The hosts of a batch get "
            "their new instances beside the old ones, which leave the router and stop as the "
            "new ones become ready; the next batch starts when the batch's hosts run only new, "
            "ready instances. Ansible's `serial`, Kamal's `boot.limit`; `1` is CodeDeploy's "
            'OneAtATime, `"50%"` its HalfAtATime. Without it, instances are replaced one '
            "by one wherever they run. See docs/hosts.md."
        ),
        examples=[1, "50%"],
    )

    @field_validator("hosts_at_a_time")
    @classmethod
    def _at_least_one_host(cls, value: int | str | None) -> int | str | None:
        if value in {0, "0%"}:
            raise ValueError("a batch needs at least 1 host (or a percentage above 0%)")
        return value

    @model_serializer(mode="wrap")
    def _without_unset_batches(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Specs without host batches serialise (and hash) exactly as before the field existed.
        data: dict[str, Any] = handler(self)
        if data.get("hosts_at_a_time") is None:
            data.pop("hosts_at_a_time", None)
        return data

    def resolve(self, replicas: int) -> tuple[int, int]:
        """``(surge, unavailable)`` as instance counts for ``replicas``; never both zero."""
        surge = resolve_count(self.max_surge, replicas, round_up=True)
        unavailable = resolve_count(self.max_unavailable, replicas, round_up=False)
        if surge == 0 and unavailable == 0:
            surge = 1
        return surge, unavailable

    def host_batch_size(self, hosts: int) -> int | None:
        """How many of ``hosts`` roll at a time (at least 1), or None without host batches."""
        if self.hosts_at_a_time is None:
            return None
        return max(1, min(hosts, resolve_count(self.hosts_at_a_time, hosts, round_up=False)))


class PauseSpec(SpecModel):
    """Wait: for `duration`, or (without one) until `baepo promote`."""

    duration: Duration | None = Field(
        default=None, description="How long to wait. Without it: until `baepo promote`."
    )


class CanaryScaleSpec(SpecModel):
    """How many canary instances to run, independent of the traffic weight. Exactly one key."""

    replicas: int | None = Field(default=None, ge=0, le=100, description="An explicit count.")
    weight: int | None = Field(
        default=None, ge=0, le=100, description="A percentage of `replicas` (rounded up)."
    )
    match_traffic_weight: bool | None = Field(
        default=None, description="`true`: follow the traffic weight again (the default)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> CanaryScaleSpec:
        chosen = [k for k in ("replicas", "weight", "match_traffic_weight") if getattr(self, k)]
        if len(chosen) != 1 and not (self.replicas == 0 or self.weight == 0):
            raise ValueError("give exactly one of replicas, weight or match_traffic_weight: true")
        return self


class AnalysisStepSpec(SpecModel):
    """Run analysis templates and continue only when they pass."""

    templates: list[str] = Field(
        default_factory=list, description="Names of analysis templates to run."
    )
    args: dict[str, str] = Field(
        default_factory=dict,
        description="Values for the templates' `{{args.NAME}}` placeholders (override theirs).",
    )


class BackgroundAnalysisSpec(AnalysisStepSpec):
    """Analysis that runs for the whole canary, beside its steps; a failure rolls back."""

    starting_step: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="The step (counted from 0) at which the analysis starts.",
    )


class CanaryStep(SpecModel):
    """One canary step: exactly one of `set_weight`, `pause`, `set_canary_scale`, `analysis`."""

    set_weight: int | None = Field(
        default=None, ge=0, le=100, description="Send this percentage of traffic to the canary."
    )
    pause: PauseSpec | None = Field(
        default=None, description="Wait for a duration, or until `baepo promote`."
    )
    set_canary_scale: CanaryScaleSpec | None = Field(
        default=None, description="Run this many canary instances, whatever the weight."
    )
    analysis: AnalysisStepSpec | None = Field(
        default=None,
        description=(
            "Measure the canary with analysis templates and go on only when they pass; "
            "a failure rolls back, an inconclusive result pauses for a person."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_is_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: ({} if v is None and k != "set_weight" else v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> CanaryStep:
        keys = ("set_weight", "pause", "set_canary_scale", "analysis")
        chosen = [k for k in keys if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(f"a step has exactly one of: {', '.join(keys)}")
        return self

    @model_serializer(mode="wrap")
    def _only_set(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value is not None}

    @property
    def kind(self) -> str:
        for key in ("set_weight", "pause", "set_canary_scale", "analysis"):
            if getattr(self, key) is not None:
                return key
        raise AssertionError("validated step has a kind")

    def describe(self) -> str:
        """The step in a few words, for status views and events."""
        if self.set_weight is not None:
            return f"set weight {self.set_weight}%"
        if self.pause is not None:
            if self.pause.duration is None:
                return "pause until promoted"
            return f"pause {self.pause.duration:g}s"
        if self.set_canary_scale is not None:
            scale = self.set_canary_scale
            if scale.replicas is not None:
                return f"canary scale {scale.replicas} instances"
            if scale.weight is not None:
                return f"canary scale {scale.weight}% of replicas"
            return "canary scale follows the weight"
        assert self.analysis is not None
        return f"analysis {', '.join(self.analysis.templates) or '(no templates)'}"


class StickySpec(SpecModel):
    """Keep each client on one side (canary or stable) as weights change. Exactly one key."""

    cookie: str | None = Field(
        default=None, description="A cookie the router sets to remember the client's side."
    )
    header: str | None = Field(
        default=None, description="A request header whose value picks the side (e.g. a user id)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> StickySpec:
        if (self.cookie is None) == (self.header is None):
            raise ValueError("give exactly one of cookie or header")
        for value in (self.cookie, self.header):
            if value is not None and not _HEADER_RE.match(value):
                raise ValueError(f"{value!r} is not a valid cookie or header name")
        return self


class HeaderRouteSpec(SpecModel):
    """Requests with this header value always go to the canary (for testers)."""

    header: str = Field(default="X-Canary", description="The request header to look at.")
    value: str = Field(default="always", min_length=1, description="The value that matches.")

    @field_validator("header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not _HEADER_RE.match(value):
            raise ValueError(f"{value!r} is not a valid header name")
        return value


class CanarySpec(SpecModel):
    """Shift traffic to the new revision step by step, with pauses and checks in between."""

    steps: list[CanaryStep] = Field(
        default_factory=list,
        description=(
            "What to do, in order. Without steps: the default canary, judged continuously "
            "against the stable revision (20 %, a first look, 50 %, judged until decided, "
            'then all traffic; see docs/analysis.md, "The default canary").'
        ),
    )
    max_surge: CountOrPercent = Field(
        default="25%",
        description="Extra instances allowed while the stable revision is finally replaced.",
    )
    max_unavailable: CountOrPercent = Field(
        default=0,
        description="Instances that may be not ready while the stable revision is replaced.",
    )
    dynamic_stable_scale: bool = Field(
        default=False,
        description="Scale the stable revision down as the canary's weight rises.",
    )
    abort_scale_down_delay: Duration = Field(
        default=30.0,
        description="After an abort, how long the canary's instances stay up (not routed).",
    )
    sticky: StickySpec | None = Field(
        default=None, description="Keep each client on one side across steps."
    )
    header_route: HeaderRouteSpec | None = Field(
        default=None, description="A header that always reaches the canary."
    )
    background_analysis: BackgroundAnalysisSpec | None = Field(
        default=None,
        description=(
            "Templates measured from `starting_step` until the final switch, whatever their "
            "`count`; a failed or error verdict rolls back."
        ),
    )

    def resolve(self, replicas: int) -> tuple[int, int]:
        return RollingSpec(max_surge=self.max_surge, max_unavailable=self.max_unavailable).resolve(
            replicas
        )


class BlueGreenSpec(SpecModel):
    """Start the new revision beside the old one, check it, then switch all traffic at once."""

    preview_listen: str | None = Field(
        default=None,
        description="Address where the new revision answers before promotion, `host:port`.",
    )
    auto_promotion_enabled: bool = Field(
        default=True,
        description="Switch traffic on its own once the preview is ready (else: `baepo promote`).",
    )
    auto_promotion_seconds: Duration = Field(
        default=0.0, description="With auto promotion: wait this long after the preview is ready."
    )
    scale_down_delay: Duration = Field(
        default=30.0,
        description="How long the old revision stays up after the switch (warm, for instant undo).",
    )
    preview_replica_count: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Instances of the preview before promotion (default: `replicas`).",
    )
    abort_scale_down_delay: Duration = Field(
        default=30.0, description="After an abort, how long the preview's instances stay up."
    )
    pre_promotion_analysis: AnalysisStepSpec | None = Field(
        default=None,
        description="Templates measured against the ready preview; the switch waits for them.",
    )
    post_promotion_analysis: AnalysisStepSpec | None = Field(
        default=None,
        description="Templates measured after the switch; a failure switches traffic back.",
    )

    @field_validator("preview_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        return None if value is None else check_listen(value)


class StrategySpec(SpecModel):
    """Exactly one strategy. Written as a name (`rolling`) or a mapping (`rolling: {...}`)."""

    recreate: RecreateSpec | None = Field(default=None, description="Stop all, then start all.")
    rolling: RollingSpec | None = Field(default=None, description="Replace a few at a time.")
    canary: CanarySpec | None = Field(default=None, description="Shift traffic step by step.")
    blue_green: BlueGreenSpec | None = Field(
        default=None, description="Preview beside the old revision, then switch at once."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data in STRATEGY_NAMES:
                return {data: {}}
            close = difflib.get_close_matches(data, STRATEGY_NAMES, n=1)
            advice = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"unknown strategy {data!r}; {advice}expected one of {', '.join(STRATEGY_NAMES)}"
            )
        if isinstance(data, dict):
            return {key: ({} if value is None else value) for key, value in data.items()}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> StrategySpec:
        chosen = [name for name in STRATEGY_NAMES if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(f"choose exactly one strategy: {', '.join(STRATEGY_NAMES)}")
        return self

    @model_serializer(mode="wrap")
    def _only_chosen(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value is not None}

    @property
    def kind(self) -> Literal["recreate", "rolling", "canary", "blue_green"]:
        for name in STRATEGY_NAMES:
            if getattr(self, name) is not None:
                return name  # type: ignore[return-value]
        raise AssertionError("validated strategy has a kind")
