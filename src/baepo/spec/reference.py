"""Generate ``docs/spec.md``, the reference of ``baepo.yaml``, from the spec models.

Every section and key comes from the models' fields and descriptions, the full example is the
starter that ``baepo init`` writes, and each YAML example is a complete spec that a test loads.
``python -m baepo.spec.reference [--check] [FILE]`` writes the file (``scripts/gen-docs``), or
with ``--check`` exits 1 when it is out of date.

Callers: ``scripts/gen-docs``, tests (the docs are up to date; every example loads).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic.functional_validators import BeforeValidator

from baepo.spec.models import Spec
from baepo.spec.rollback import GUARD_KINDS
from baepo.spec.starter import STARTER_SPEC
from baepo.spec.strategies import StrategySpec
from baepo.spec.units import format_duration, parse_duration

DEFAULT_OUTPUT = Path("docs/spec.md")


@dataclass(frozen=True)
class FieldRef:
    """One key of the spec: where it sits, the model that declares it and its Pydantic field."""

    path: tuple[str, ...]
    model: type[BaseModel]
    name: str
    field: FieldInfo

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def iter_fields(model: type[BaseModel] = Spec, prefix: tuple[str, ...] = ()) -> Iterator[FieldRef]:
    """Every key of the spec, depth first in declaration order, with its full key path."""
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        yield FieldRef(path, model, name, field)
        nested = nested_model(field)
        if nested is not None:
            yield from iter_fields(nested, path)


def nested_model(field: FieldInfo) -> type[BaseModel] | None:
    """The section model a field holds (``health`` → HealthSpec), or None for plain values."""
    annotation: Any = field.annotation
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        annotation = members[0] if len(members) == 1 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def field_kind(field: FieldInfo) -> str:
    """One word for what a field holds: model, duration, count, int, number, bool, str, list,
    dict."""
    if nested_model(field) is not None:
        return "model"
    optional = [getattr(a, "__metadata__", ()) for a in get_args(field.annotation)]
    for meta in [*field.metadata, *(m for metadata in optional for m in metadata)]:
        if isinstance(meta, BeforeValidator):
            if meta.func is parse_duration:
                return "duration"
            return GUARD_KINDS.get(meta.func, "count")
    members = [a for a in get_args(field.annotation) if a is not type(None)] or [field.annotation]
    if get_origin(field.annotation) in (list, dict, Literal):
        members = [field.annotation]
    origin = get_origin(members[0])
    if origin in (list, dict):
        return str(origin.__name__)
    if origin is Literal:
        return "choice"
    return {int: "int", bool: "bool", float: "number"}.get(members[0], "str")


def describe_type(field: FieldInfo) -> str:
    """The type of a field in plain words, with its bounds."""
    kind = field_kind(field)
    nested = nested_model(field)
    if nested is StrategySpec:
        words = "a strategy name, or a mapping with one strategy"
    elif nested is not None:
        words = "mapping"
    else:
        words = {
            "duration": "duration",
            "count": "count or percentage",
            "list": "list of strings",
            "dict": "mapping of strings",
            "int": "integer",
            "number": "number",
            "bool": "true or false",
            "str": "string",
            "choice": "one of " + ", ".join(f"`{c}`" for c in get_args(field.annotation)),
            "rate": "rate (`5%` or `0.05`) or `off`",
            "margin": "share (`5%` or `0.05`)",
            "ratio": "ratio (`200%` or `2.0`) or `off`",
            "latency": "duration or `off`",
            "threshold": "integer (≥ 1) or `off`",
        }[kind]
    held = (get_args(field.annotation) or (None,))[-1]
    if kind in ("list", "dict") and isinstance(held, type) and issubclass(held, BaseModel):
        words = f"{'list' if kind == 'list' else 'mapping'} of sections (see below)"
    bounds = []
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Ge):
            bounds.append(f"≥ {meta.ge}")
        elif isinstance(meta, annotated_types.Le):
            bounds.append(f"≤ {meta.le}")
        elif isinstance(meta, annotated_types.MinLen):
            bounds.append(f"at least {meta.min_length} item")
    if bounds:
        words += f" ({', '.join(bounds)})"
    if not field.is_required() and field.default is None and field.default_factory is None:
        words += ", optional"
    return words


def describe_default(field: FieldInfo) -> str:
    """The default of a field as a user would write it."""
    if field.is_required():
        return "required"
    value: Any = field.default
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    if isinstance(value, StrategySpec):
        return f"`{value.kind}`"
    if isinstance(value, BaseModel):
        return "see below"
    kind = field_kind(field)
    if kind in GUARD_KINDS.values():
        if value is None:
            return "`off`"
        if kind in ("rate", "ratio", "margin"):
            return f"`{value * 100:g}%`"
        if kind == "latency":
            return f"`{format_duration(float(value))}`"
    if value is None:
        return "not set"
    if field_kind(field) == "duration":
        return f"`{format_duration(float(value))}`"
    if isinstance(value, str):
        return f"`{value}`"
    if value == {}:
        return "`{}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _sections() -> list[tuple[type[BaseModel], list[str]]]:
    """Each section model once, in order of first appearance, with every path it is used at."""
    found: dict[type[BaseModel], list[str]] = {Spec: []}
    for ref in iter_fields():
        nested = nested_model(ref.field)
        if nested is not None:
            found.setdefault(nested, []).append(ref.dotted)
    _add_held_sections(found, Spec, (), "analysis")
    _add_held_sections(found, Spec, (), "notifications")
    return list(found.items())


def _add_held_sections(
    found: dict[type[BaseModel], list[str]],
    model: type[BaseModel],
    prefix: tuple[str, ...],
    key: str,
) -> None:
    """Sections held in a mapping or list (``analysis.NAME``, ``...metrics[]``), recursively."""
    annotation: Any = model.model_fields[key].annotation
    origin = get_origin(annotation)
    held = get_args(annotation)[-1] if origin in (list, dict) else None
    if not (isinstance(held, type) and issubclass(held, BaseModel)):
        return
    path = (*prefix, f"{key}.NAME" if origin is dict else f"{key}[]")
    found.setdefault(held, []).append(".".join(path))
    for name, field in held.model_fields.items():
        nested = nested_model(field)
        if nested is not None:
            found.setdefault(nested, []).append(".".join((*path, name)))
        else:
            _add_held_sections(found, held, path, name)


def _section_markdown(model: type[BaseModel], paths: list[str]) -> list[str]:
    title = ", ".join(f"`{p}`" for p in paths) if paths else "Top level"
    lines = [f"### {title}", "", (model.__doc__ or "").strip(), ""]
    if model is StrategySpec:
        lines += ["Write `strategy: rolling` for a strategy with its defaults.", ""]
    if not model.model_fields:
        return [*lines, "This section has no keys: write it as `{}` or leave its value empty.", ""]
    lines += ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        row = [f"`{name}`", describe_type(field), describe_default(field), field.description or ""]
        lines.append("| " + " | ".join(_cell(cell) for cell in row) + " |")
    return [*lines, ""]


EXAMPLES: list[tuple[str, str, str]] = [
    (
        "The smallest spec",
        "Everything not written takes its default: one replica, a rolling update, readiness "
        "probed on `/` every second.",
        'app: hello\nrun:\n  command: ["python3", "-m", "http.server", "{port}"]\n',
    ),
    (
        "Rolling with percentages",
        "With 8 replicas, `max_surge: 25%` starts up to 2 extra instances (rounded up) and "
        "`max_unavailable: 10%` lets no instance be unready (10% of 8 rounded down is 0). "
        "When both come to 0, baepo uses a surge of 1 so the update can proceed.",
        'app: shop-api\nversion: "2.3.1"\nrun:\n  command: ["./shop-api", "--port", '
        '"{port}"]\nreplicas: 8\nstrategy:\n  rolling:\n    max_surge: 25%\n'
        "    max_unavailable: 10%\nprogress_deadline: 5m\n",
    ),
    (
        "Recreate",
        "Stops every old instance before starting the new ones: there is downtime. Use it for "
        "development, or for an app that must never run two versions at once.",
        'app: report-worker\nrun:\n  command: ["python3", "-m", "worker"]\n'
        "  env:\n    QUEUE: reports\nstrategy: recreate\n",
    ),
    (
        "Canary with steps",
        "5 % of requests go to the new revision, then 25 % after a ten-minute pause, then 50 % "
        "once a person runs `baepo promote`, then everything. Clients keep their side across "
        "steps (a cookie), and testers reach the canary at any weight with `X-Canary: always`.",
        'app: shop-api\nrun:\n  command: ["./shop-api", "--port", "{port}"]\nreplicas: 4\n'
        "strategy:\n  canary:\n    steps:\n      - set_weight: 5\n      - pause: {duration: 10m}\n"
        "      - set_weight: 25\n      - pause: {}\n      - set_weight: 50\n"
        "      - pause: {duration: 5m}\n    sticky: {cookie: shop_side}\n"
        "    header_route: {header: X-Canary, value: always}\n"
        "    abort_scale_down_delay: 1m\n",
    ),
    (
        "Blue-green with a preview address",
        "The new revision answers on port 8081 before it takes any production traffic; "
        "`baepo promote` switches all of it at once, and the old revision stays warm for five "
        "minutes so `baepo undo` is instant.",
        'app: shop-api\nrun:\n  command: ["./shop-api", "--port", "{port}"]\nreplicas: 3\n'
        'router: {listen: "127.0.0.1:8080"}\nstrategy:\n  blue_green:\n'
        '    preview_listen: "127.0.0.1:8081"\n    auto_promotion_enabled: false\n'
        "    scale_down_delay: 5m\n",
    ),
    (
        "Health probes",
        "Readiness decides who gets traffic; liveness restarts an instance that hangs. "
        "`initial_delay` gives a slow starter time before its first probe.",
        'app: shop-api\nrun:\n  command: ["./shop-api", "--port", "{port}"]\n'
        "replicas: 3\nhealth:\n  readiness:\n    path: /health/ready\n    interval: 2s\n"
        "    timeout: 500ms\n    failure_threshold: 3\n    initial_delay: 1.5s\n"
        "  liveness:\n    path: /health\n    interval: 5s\n    failure_threshold: 3\n",
    ),
    (
        "Canary with automated analysis",
        "After 10 % of traffic has gone to the new revision for a while, the `checks` template "
        "compares it with the stable revision (the baseline) every 30 seconds, ten times. The "
        "analysis fails, and the release rolls back, when more measurements fail than "
        "`failure_limit` allows: here the second failed error-rate measurement, or the first "
        "p95 that is more than 20 % slower than the baseline's.",
        'app: shop-api\nrun:\n  command: ["./shop-api", "--port", "{port}"]\nreplicas: 4\n'
        "strategy:\n  canary:\n    steps:\n      - set_weight: 10\n      - pause: {duration: 2m}\n"
        "      - analysis: {templates: [checks]}\n      - set_weight: 50\n"
        "analysis:\n  checks:\n    metrics:\n      - name: errors\n        query: error_rate\n"
        "        interval: 30s\n        count: 10\n"
        "        success_condition: canary.error_rate <= 0.01\n        failure_limit: 1\n"
        "      - name: latency\n        query: p95\n        interval: 30s\n        count: 10\n"
        "        success_condition: canary.p95 <= baseline.p95 * 1.2\n",
    ),
    (
        "Rollback guards",
        "The guards are on without a `rollback:` section; this one tightens the error rate, "
        "turns the absolute latency guard off, adds a throughput guard and watches the new "
        "revision for five minutes after promotion.",
        'app: shop-api\nrun:\n  command: ["./shop-api", "--port", "{port}"]\nreplicas: 4\n'
        "rollback:\n  error_rate: 1%\n  latency_p95: off\n  latency_vs_baseline: 150%\n"
        "  failed_health_checks: 5\n  min_throughput_vs_baseline: 50%\n  window: 1m\n"
        "  watch: 5m\n",
    ),
    (
        "Anchors for shared values",
        "Top-level keys starting with `x-` are ignored, so they can hold YAML anchors.",
        "x-probe: &probe\n  interval: 2s\n  timeout: 1s\napp: shop-api\nrun:\n"
        '  command: ["./shop-api", "--port", "{port}"]\nhealth:\n  readiness:\n'
        "    <<: *probe\n    path: /health/ready\n  liveness:\n    <<: *probe\n    path: /health\n",
    ),
]

_INTRO = """\
# `baepo.yaml` reference

<!-- Generated by scripts/gen-docs from src/baepo/spec/models.py: edit those, not this file. -->

A spec file describes one app: how to start it, how to check its health, and how a new version
replaces the old one. baepo looks for `baepo.yaml` (or `baepo.yml`) in the current folder;
`-f FILE` names another. `baepo init` writes the commented starter shown below.

## Writing values

- **Durations** are written `500ms`, `30s`, `2m`, `1.5h`, or as a number of seconds, from 0 to
  366 days (`8784h`); anything longer is a typo that would break a rollout's clock, so it is an
  error.
- **Counts or percentages** are a number of instances (`2`, at most 1000) or a share of
  `replicas` (`25%`, from `0%` to `100%`).
- **Every number has a range**, shown in the tables below (e.g. `replicas` from 0 to 100,
  retries at most 100, analysis counts and limits at most 10000, ratios at most `100000%`). A
  value outside it is an error naming the key and the range, so whatever `baepo validate`
  accepts also deploys.
- **Listeners may not clash.** `router.listen`, `router.metrics_listen` and
  `strategy.blue_green.preview_listen` need different ports, or different addresses; a
  wildcard address (`0.0.0.0`, `[::]`) takes its port on every address, and `localhost` clashes
  with `127.0.0.1` and `[::1]`.
- **A freeze `schedule` must fire**: a date that never exists (`0 0 30 2 *`, 31 April) is an
  error. `0 0 29 2 *` is accepted (it fires in leap years).
- **Strings stay strings.** YAML reads `1.10` as the number 1.1, so a version must be quoted:
  `version: "1.10"`. The same goes for environment values such as `PORT: "8080"`. Words such as
  `yes`, `on` or `2024-01-01` are read as plain strings; only `true` and `false` are booleans.
- **Every key is checked.** An unknown key, a key written twice or a value of the wrong kind is
  an error naming the key path and the line, e.g.
  `baepo.yaml:12: strategy.rolling.max_surge: expected a count (2) or a percentage ...`.
- **Anchors** (`&name`, `*name`, `<<: *name`) work; top-level keys starting with `x-` are
  ignored, so they can hold shared values.
- **Editor completion:** `baepo schema` prints a JSON Schema (draft 2020-12). Save it as
  `baepo.schema.json` and start the spec with
  `# yaml-language-server: $schema=baepo.schema.json`.
"""


def render_reference() -> str:
    """The full text of ``docs/spec.md``."""
    lines = [_INTRO, "## A full example", "", "What `baepo init` writes:", ""]
    lines += ["```yaml", STARTER_SPEC.rstrip("\n"), "```", "", "## Keys", ""]
    for model, paths in _sections():
        lines += _section_markdown(model, paths)
    lines += ["## Examples", ""]
    for title, text, yaml_text in EXAMPLES:
        lines += [f"### {title}", "", text, "", "```yaml", yaml_text.rstrip("\n"), "```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the reference (default ``docs/spec.md``); with ``--check``, only compare."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [arg for arg in args if arg != "--check"]
    target = Path(paths[0]) if paths else DEFAULT_OUTPUT
    text = render_reference()
    if check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            print(f"{target} is out of date: run scripts/gen-docs", file=sys.stderr)
            return 1
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
