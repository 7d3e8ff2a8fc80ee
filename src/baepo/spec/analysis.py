"""The ``analysis:`` section: named analysis templates, each a list of metrics to measure.

A canary step ``analysis: {templates: [name]}`` runs templates defined here. A metric names
its ``provider`` (``builtin``, ``prometheus``, ``web`` or ``job``) and, for the last three, a
section of the same name. Checks that span keys (provider sections, known builtin queries,
unique metric names, template names used by canary steps) are made by :func:`check_analysis`,
which returns findings with key paths for the loader to locate.

Callers: ``spec.models`` (the field), ``spec.loader`` (:func:`check_analysis`), the analysis
engine (reads templates; compiles the conditions).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from baepo.errors import ConfigError
from baepo.expressions.conditions import compile_condition
from baepo.spec.base import SpecModel
from baepo.spec.files import APP_NAME_RE
from baepo.spec.strategies import StrategySpec
from baepo.spec.units import MAX_COUNT, MAX_RATIO, Duration

PROVIDERS = ("builtin", "prometheus", "web", "job")
BUILTIN_QUERIES = (
    "error_rate",
    "rate_5xx",
    "rate_4xx",
    "request_rate",
    "p50",
    "p95",
    "p99",
    "mean_latency",
)
COUNTING_RULE = (
    "The analysis fails when the number of failed measurements exceeds `failure_limit`: "
    "`0` fails on the first failed measurement, `3` on the fourth."
)

Loc = tuple[str | int, ...]
Finding = tuple[Loc, str]


class PrometheusSpec(SpecModel):
    """Where to send a PromQL query (provider `prometheus`)."""

    address: str = Field(
        min_length=1,
        description="The Prometheus server's base URL, e.g. `http://127.0.0.1:9090`.",
    )
    query: str | None = Field(
        default=None,
        description="The PromQL query; without it, the metric's `query` is used.",
    )


class WebSpec(SpecModel):
    """An HTTP endpoint whose JSON answer is the measurement (provider `web`)."""

    url: str = Field(min_length=1, description="The URL to request.")
    method: Literal["GET", "POST"] = Field(default="GET", description="`GET` or `POST`.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers to send.")
    json_path: str | None = Field(
        default=None,
        description="Where the value sits in the JSON answer, e.g. `$.data.ok`. Default: all.",
    )
    timeout: Duration = Field(default=10.0, description="How long one request may take.")


class JobSpec(SpecModel):
    """A command whose exit status is the measurement: 0 passes (provider `job`)."""

    command: list[str] = Field(
        min_length=1, description="The program and its arguments, run without a shell."
    )
    timeout: Duration = Field(default=60.0, description="How long one run may take.")


class MetricSpec(SpecModel):
    """One metric: what to measure, how often, and when a measurement passes or fails.

    In a template with a `judge:`, a metric is compared with the baseline by the statistical
    judge instead: it has no conditions, and `direction`, `critical`, `group` and
    `allowed_increase`/`allowed_decrease` say what counts as worse.
    """

    name: str = Field(min_length=1, description="The metric's name, unique within its template.")
    provider: Literal["builtin", "prometheus", "web", "job"] = Field(
        default="builtin",
        description=(
            "Where the measurement comes from: `builtin` (the router's own counters), "
            "`prometheus`, `web` or `job`; the last three need a section of the same name."
        ),
    )
    query: str | None = Field(
        default=None,
        description=(
            "For `builtin`: one of " + ", ".join(f"`{q}`" for q in BUILTIN_QUERIES) + ". "
            "For `prometheus`: the PromQL query when `prometheus.query` is not set."
        ),
    )
    prometheus: PrometheusSpec | None = Field(
        default=None, description="With provider `prometheus`: the server and query."
    )
    web: WebSpec | None = Field(default=None, description="With provider `web`: the request.")
    job: JobSpec | None = Field(default=None, description="With provider `job`: the command.")
    interval: Duration = Field(default=10.0, description="Time between two measurements.")
    count: int | None = Field(
        default=None,
        ge=1,
        le=MAX_COUNT,
        description=(
            "How many measurements to take (errors do not count). Without it: one in a "
            "canary step or around a blue-green promotion. Background analysis ignores "
            "it: it measures every `interval` until the final switch."
        ),
    )
    initial_delay: Duration = Field(
        default=0.0, description="Time after the analysis starts before the first measurement."
    )
    success_condition: str | None = Field(
        default=None,
        description=(
            "A measurement passes when this holds, e.g. `canary.p95 <= baseline.p95 * 1.2`. "
            "At least one of `success_condition` and `failure_condition` is required."
        ),
    )
    failure_condition: str | None = Field(
        default=None,
        description=(
            "A measurement fails when this holds, e.g. `canary.error_rate > 0.05`. "
            "With only `success_condition`, a measurement that does not pass fails."
        ),
    )
    failure_limit: int = Field(default=0, ge=0, le=MAX_COUNT, description=COUNTING_RULE)
    inconclusive_limit: int = Field(
        default=0,
        ge=0,
        le=MAX_COUNT,
        description=(
            "The analysis stops as inconclusive (waiting for `baepo promote` or `baepo abort`) "
            "when the number of inconclusive measurements exceeds this."
        ),
    )
    consecutive_error_limit: int = Field(
        default=4,
        ge=0,
        le=MAX_COUNT,
        description=(
            "The analysis fails when the number of measurements in a row that could not be "
            "taken (an error, not a verdict) exceeds this."
        ),
    )
    dry_run: bool = Field(
        default=False,
        description="Measure and report, but never fail the analysis because of this metric.",
    )
    direction: Literal["increase", "decrease", "either"] = Field(
        default="increase",
        description="With a judge: which change is bad (`increase` for errors and latency).",
    )
    critical: bool = Field(
        default=False,
        description="With a judge: a bad result for this metric fails the whole judgement.",
    )
    group: str | None = Field(
        default=None,
        description="With a judge: the group the metric scores in (default: its own name).",
    )
    allowed_increase: float | None = Field(
        default=None,
        gt=0,
        le=MAX_RATIO,
        description=(
            "With a judge: a canary mean up to this ratio of the baseline's is accepted "
            "even when significant (default 1.0: any significant increase is bad)."
        ),
    )
    allowed_decrease: float | None = Field(
        default=None,
        gt=0,
        le=MAX_RATIO,
        description="With a judge: the same for decreases (default 1.0).",
    )

    @field_validator("success_condition", "failure_condition")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        """Check the expression when the spec is loaded, so a bad one never reaches a rollout."""
        if value is None:
            return value
        if not value.strip():
            raise ValueError("a condition cannot be empty; remove the key or write one")
        try:
            compile_condition(value)
        except ConfigError as exc:
            raise ValueError("; ".join(p.message for p in exc.problems) or exc.message) from exc
        return value

    @property
    def effective_query(self) -> str | None:
        """The query to run: the provider section's own, else the metric's."""
        if self.prometheus is not None and self.prometheus.query is not None:
            return self.prometheus.query
        return self.query


class JudgeSpec(SpecModel):
    """Compare the canary with the baseline statistically (Kayenta's Mann-Whitney judge).

    Every `interval` the judge takes each metric's values per `step` since the analysis
    started, for the canary and for the stable revision over the same steps, classifies each
    metric (a 98% confidence interval of the shift, then the effect size), and scores the
    groups. A score at or below `marginal_score` fails the analysis at once; after `count`
    judgements the last score decides: `pass_score` or more passes, less is inconclusive.
    The first judgement waits for at least three steps of data.
    """

    interval: Duration = Field(default=10.0, description="Time between two judgements.")
    count: int = Field(default=6, ge=1, le=MAX_COUNT, description="How many judgements to make.")
    step: Duration = Field(
        default=5.0, description="The length of one data point: values are rates over a step."
    )
    pass_score: float = Field(default=95.0, ge=0, le=100, description="Score that passes.")
    marginal_score: float = Field(
        default=75.0, ge=0, le=100, description="A score at or below this fails."
    )
    weights: dict[str, Annotated[float, Field(ge=0, le=MAX_RATIO)]] = Field(
        default_factory=dict,
        description="Weight of each metric group in the score (groups left out share the rest).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> JudgeSpec:
        if self.marginal_score > self.pass_score:
            raise ValueError("marginal_score must not be above pass_score")
        return self


class AnalysisTemplateSpec(SpecModel):
    """A named set of metrics that a canary step can run with `analysis: {templates: [name]}`."""

    metrics: list[MetricSpec] = Field(
        min_length=1, description="The metrics to measure; all of them must pass."
    )
    args: dict[str, str] = Field(
        default_factory=dict, description="Named values the queries can refer to."
    )
    judge: JudgeSpec | None = Field(
        default=None,
        description="Judge the metrics against the baseline statistically instead of by "
        "conditions (builtin metrics only).",
    )


def check_analysis(
    templates: Mapping[str, AnalysisTemplateSpec], strategy: StrategySpec
) -> list[Finding]:
    """What the models cannot check key by key: template names, provider sections, builtin
    queries, unique metric names, and templates named by canary steps. Pure."""
    findings: list[Finding] = []
    for name, template in templates.items():
        if not re.match(APP_NAME_RE, name):
            message = (
                f"{name!r} is not a valid template name: lower-case letters, digits and "
                "dashes, starting and ending with a letter or digit"
            )
            findings.append((("analysis", name), message))
        seen: set[str] = set()
        for index, metric in enumerate(template.metrics):
            loc: Loc = ("analysis", name, "metrics", index)
            if metric.name in seen:
                findings.append(((*loc, "name"), f"metric {metric.name!r} is defined twice"))
            seen.add(metric.name)
            findings += [((*loc, *where), text) for where, text in _check_provider(metric)]
            findings += [((*loc, *where), text) for where, text in _check_judged(template, metric)]
            findings += [((*loc, *where), text) for where, text in _check_names(metric)]
    findings += _check_steps(templates, strategy)
    return findings


CONDITION_NAMES: dict[str, tuple[str, ...]] = {
    "builtin": ("result", "canary", "baseline"),
    "prometheus": ("result",),
    "web": ("result",),
    "job": ("result", "exit_code", "passed"),
}
"""The names each provider's conditions can read."""


def _check_names(metric: MetricSpec) -> list[tuple[Loc, str]]:
    found: list[tuple[Loc, str]] = []
    known = CONDITION_NAMES[metric.provider]
    for key in ("success_condition", "failure_condition"):
        text = getattr(metric, key)
        if text is None:
            continue
        for name in sorted(compile_condition(text).names - set(known)):
            close = difflib.get_close_matches(name, known, n=1)
            advice = f"did you mean {close[0]!r}? " if close else ""
            found.append(
                (
                    (key,),
                    f"unknown name {name!r}; {advice}a {metric.provider} metric's conditions "
                    f"can use {', '.join(known)}",
                )
            )
    return found


def _check_judged(template: AnalysisTemplateSpec, metric: MetricSpec) -> list[tuple[Loc, str]]:
    conditions = metric.success_condition is not None or metric.failure_condition is not None
    if template.judge is None:
        if not conditions:
            return [((), "give success_condition, failure_condition or both")]
        return []
    found: list[tuple[Loc, str]] = []
    if conditions:
        found.append(((), "a metric of a template with a judge has no conditions: remove them"))
    if metric.provider != "builtin":
        found.append((("provider",), "the judge compares builtin metrics only"))
    return found


def _check_provider(metric: MetricSpec) -> list[tuple[Loc, str]]:
    found: list[tuple[Loc, str]] = []
    for section in ("prometheus", "web", "job"):
        if getattr(metric, section) is not None and metric.provider != section:
            found.append(
                (
                    (section,),
                    f"a `{section}:` section needs `provider: {section}`, "
                    f"but provider is {metric.provider!r}",
                )
            )
    if metric.provider in ("prometheus", "web", "job") and getattr(metric, metric.provider) is None:
        found.append(((), f"provider {metric.provider!r} needs a `{metric.provider}:` section"))
    if metric.prometheus is not None and metric.effective_query is None:
        found.append((("prometheus", "query"), "provider 'prometheus' needs a query"))
    if metric.provider == "builtin":
        if metric.query is None:
            found.append(((), f"provider 'builtin' needs a query: {', '.join(BUILTIN_QUERIES)}"))
        elif metric.query not in BUILTIN_QUERIES:
            close = difflib.get_close_matches(metric.query, BUILTIN_QUERIES, n=1)
            advice = f"did you mean {close[0]!r}? " if close else ""
            found.append(
                (
                    ("query",),
                    f"unknown builtin query {metric.query!r}; {advice}"
                    f"expected one of {', '.join(BUILTIN_QUERIES)}",
                )
            )
    return found


def _check_steps(
    templates: Mapping[str, AnalysisTemplateSpec], strategy: StrategySpec
) -> list[Finding]:
    known = ", ".join(sorted(templates)) or "none: define them under `analysis:`"
    uses: list[tuple[Loc, list[str]]] = []
    if strategy.canary is not None:
        for step_index, step in enumerate(strategy.canary.steps):
            if step.analysis is not None:
                loc: Loc = ("strategy", "canary", "steps", step_index, "analysis", "templates")
                uses.append((loc, step.analysis.templates))
        background = strategy.canary.background_analysis
        if background is not None:
            uses.append(
                (("strategy", "canary", "background_analysis", "templates"), background.templates)
            )
    if strategy.blue_green is not None:
        for key in ("pre_promotion_analysis", "post_promotion_analysis"):
            section = getattr(strategy.blue_green, key)
            if section is not None:
                uses.append((("strategy", "blue_green", key, "templates"), section.templates))
    findings: list[Finding] = []
    for loc, names in uses:
        if not names:
            findings.append((loc, "name at least one analysis template"))
        for index, name in enumerate(names):
            if name not in templates:
                close = difflib.get_close_matches(name, list(templates), n=1)
                advice = f"did you mean {close[0]!r}? " if close else ""
                message = f"no analysis template {name!r}; {advice}known templates: {known}"
                findings.append(((*loc, index), message))
    return findings
