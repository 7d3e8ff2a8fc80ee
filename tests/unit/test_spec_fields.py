"""Every key of every spec section, derived from the models: a bad value, a missing required key,
an unknown or misspelt key each give a problem naming the key path and its line.

New fields are covered automatically: the cases are generated from ``reference.iter_fields``.
"""

from __future__ import annotations

import copy
from typing import Any

import annotated_types
import pytest
import yaml

from baepo.errors import ConfigError, Problem
from baepo.spec.loader import parse_spec
from baepo.spec.models import Spec
from baepo.spec.reference import FieldRef, field_kind, iter_fields, nested_model
from baepo.spec.strategies import StrategySpec

BASE: dict[str, Any] = {
    "app": "shop",
    "run": {"command": ["python3", "-m", "shop"]},
    # optional sections with required keys of their own, so each of their keys can be tested
    "migrate": {"up": ["shop-migrate", "up"]},
    "backup": {"kind": "command", "create": ["dump"], "restore": ["load"]},
    "target": {
        "kind": "hosts",
        "hosts": [{"address": "10.0.0.11"}],
        "release": {"build": {"command": ["make"]}},
    },
}
FIELDS = list(iter_fields())
BAD_VALUES: dict[str, tuple[Any, str]] = {
    "model": ("oops", "expected a mapping of keys"),
    "duration": ("soon", "expected a duration"),
    "count": ("lots", "expected a count"),
    "int": ("three", "expected an integer, got 'three'"),
    "bool": ("maybe", "expected true or false, got 'maybe'"),
    "str": (["a", "b"], "expected a string, got a list"),
    "list": ("oops", "expected a list"),
    "choice": ("oops", "expected one of "),
    "dict": ("oops", "expected a mapping of keys, got 'oops'"),
    "rate": ("lots", "expected a rate such as 5% or 0.05 (0 to 1), or off, got 'lots'"),
    "ratio": ("lots", "expected a ratio such as 200% or 2.0 (above 0), or off, got 'lots'"),
    "latency": ("soon", "expected a duration such as 2s or 500ms, or off, got 'soon'"),
    "threshold": ("lots", "expected a count of 1 or more, or off, got 'lots'"),
    "margin": ("lots", "expected a share such as 5% or 0.05 (0 to 1), got 'lots'"),
}


def with_value(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """BASE with ``value`` at ``path``, creating the sections on the way."""
    doc = copy.deepcopy(BASE)
    here = doc
    for key in path[:-1]:
        here = here.setdefault(key, {})
    here[path[-1]] = value
    return doc


def line_of(text: str, path: tuple[str, ...]) -> int:
    """The 1-based line of the key at ``path`` in block-style YAML indented by two."""
    lines = text.splitlines()
    index = -1
    for depth, key in enumerate(path):
        prefix = "  " * depth + f"{key}:"
        index = next(i for i in range(index + 1, len(lines)) if lines[i].startswith(prefix))
    return index + 1


def problems_of(doc: dict[str, Any]) -> tuple[str, list[Problem]]:
    text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    with pytest.raises(ConfigError) as caught:
        parse_spec(text, source="baepo.yaml")
    return text, caught.value.problems


def ids(ref: FieldRef) -> str:
    return ref.dotted


def test_the_models_are_walked() -> None:
    dotted = {ref.dotted for ref in FIELDS}
    assert {"app", "run.command", "health.readiness.interval", "strategy.rolling.max_surge"} <= (
        dotted
    )
    assert "health.liveness.timeout" in dotted
    assert len(FIELDS) > 30


@pytest.mark.parametrize("ref", FIELDS, ids=ids)
def test_a_bad_value_names_the_key_path_and_line(ref: FieldRef) -> None:
    kind = field_kind(ref.field)
    value, expected = BAD_VALUES[kind]
    text, found = problems_of(with_value(ref.path, value))
    assert [p.path for p in found] == [ref.dotted], found
    assert found[0].line == line_of(text, ref.path)
    if nested_model(ref.field) is StrategySpec:
        expected = "unknown strategy 'oops'"
    assert expected in found[0].message


def out_of_bounds(ref: FieldRef) -> list[tuple[Any, str]]:
    """Values just outside what ``ref`` accepts, each with a fragment of the expected message."""
    kind = field_kind(ref.field)
    bounds = {type(m): m for m in ref.field.metadata}
    cases: list[tuple[Any, str]] = []
    if kind == "int" and annotated_types.Ge in bounds:
        low = bounds[annotated_types.Ge].ge
        cases.append((low - 1, f"must be {low} or more, got {low - 1}"))
    if kind == "int" and annotated_types.Le in bounds:
        high = bounds[annotated_types.Le].le
        low_text = bounds[annotated_types.Ge].ge if annotated_types.Ge in bounds else None
        range_text = f"from {low_text} to {high}" if low_text is not None else f"{high} or less"
        cases.append((high + 1, f"must be {range_text}, got {high + 1}"))
        cases.append((int("9" * 400), f"must be {range_text}, got 999"))
    if kind == "duration":
        cases += [("8785h", "at most 8784h (366 days), got '8785h'"), (10**400, "at most 8784h")]
        cases += [(-1, "finite number of seconds, 0 or more"), ("-5s", "got '-5s'")]
        cases += [("1d", "got '1d'"), (True, "expected a duration"), (".inf", "got '.inf'")]
    if kind == "count":
        cases += [(-1, "0 or more, got -1"), ("101%", "got '101%'"), ("1.5", "got '1.5'")]
        cases += [(1001, "from 0 to 1000, got 1001")]
        cases += [(True, "expected a count"), (2.5, "got 2.5")]
    if kind == "rate":
        cases += [("101%", "got '101%'"), (1.5, "got 1.5"), (-1, "got -1"), (True, "got True")]
    if kind == "ratio":
        cases += [("0%", "got '0%'"), (0, "got 0"), (".inf", "got '.inf'"), (True, "got True")]
        cases += [(1001, "at most 1000 (100000%), got 1001")]
    if kind == "latency":
        cases += [("-5s", "got '-5s'"), ("1d", "got '1d'"), (True, "got True"), ("on", "'on'")]
    if kind == "threshold":
        cases += [(0, "got 0"), (2.5, "got 2.5"), (True, "got True"), ("3", "got '3'")]
    if kind == "list" and annotated_types.MinLen in bounds:
        cases.append(([], "at least 1 item"))
    return cases


BOUNDED = [ref for ref in FIELDS if out_of_bounds(ref)]


def test_bounded_fields_are_found() -> None:
    assert {"replicas", "run.command", "strategy.rolling.max_surge"} <= {r.dotted for r in BOUNDED}


def test_every_integer_field_has_an_upper_bound() -> None:
    """A number `validate` accepts must fit every later use (clocks, the store, loops)."""
    unbounded = [
        ref.dotted
        for ref in FIELDS
        if field_kind(ref.field) == "int"
        and not any(isinstance(m, annotated_types.Le) for m in ref.field.metadata)
    ]
    assert unbounded == []


@pytest.mark.parametrize("ref", BOUNDED, ids=ids)
def test_a_value_out_of_bounds_names_the_key(ref: FieldRef) -> None:
    for value, expected in out_of_bounds(ref):
        text, found = problems_of(with_value(ref.path, value))
        assert [p.path for p in found] == [ref.dotted], (value, found)
        assert found[0].line == line_of(text, ref.path)
        assert expected in found[0].message, (value, found[0].message)


REQUIRED = [ref for ref in FIELDS if ref.field.is_required()]


@pytest.mark.parametrize("ref", REQUIRED, ids=ids)
def test_a_missing_required_key_is_named_with_its_description(ref: FieldRef) -> None:
    doc = copy.deepcopy(BASE)
    parent = doc
    for key in ref.path[:-1]:
        parent = parent[key]
    del parent[ref.name]
    _text, found = problems_of(doc)
    missing = [p for p in found if p.path == ref.dotted]
    assert missing, found
    assert missing[0].message == f"required: {ref.field.description}"
    assert missing[0].line is not None


def test_only_app_and_run_command_are_required() -> None:
    assert {ref.dotted for ref in REQUIRED} == {
        "app",
        "run",
        "run.command",
        "migrate.up",
        "backup.kind",
        "target.release.build.command",
    }


SECTIONS = [((), Spec)] + [
    (ref.path, model) for ref in FIELDS if (model := nested_model(ref.field)) is not None
]


@pytest.mark.parametrize(
    ("path", "model"), SECTIONS, ids=[".".join(p) or "top" for p, _ in SECTIONS]
)
def test_an_unknown_key_in_each_section_lists_the_known_keys(
    path: tuple[str, ...], model: type[Spec]
) -> None:
    text, found = problems_of(with_value((*path, "bogus_key"), 1))
    dotted = ".".join((*path, "bogus_key"))
    assert [p.path for p in found] == [dotted], found
    assert found[0].line == line_of(text, (*path, "bogus_key"))
    assert found[0].message.startswith("unknown key 'bogus_key'; expected one of ")
    assert ", ".join(model.model_fields) in found[0].message


@pytest.mark.parametrize("ref", FIELDS, ids=ids)
def test_a_misspelt_key_gets_a_suggestion(ref: FieldRef) -> None:
    typo = ref.name[:-1] if len(ref.name) > 3 else ref.name + "s"
    doc = with_value((*ref.path[:-1], typo), 1)
    _text, found = problems_of(doc)
    unknown = [p for p in found if p.path.endswith(typo)]
    assert unknown, found
    assert unknown[0].message == f"unknown key {typo!r}; did you mean {ref.name!r}?"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("app",), "Shop_API", "'Shop_API' is not valid. The app's name: lower-case"),
        (("app",), "-shop", "is not valid"),
        (("app",), "a" * 64, "is not valid"),
        (("run", "command"), [" "], "the first item must name a program"),
        (("run", "env"), {"BAD NAME": "x"}, "'BAD NAME' is not a valid environment variable"),
        (("health", "readiness", "path"), "health", "must start with '/'"),
        (("router", "listen"), "8080", "expected host:port"),
        (("router", "listen"), "localhost:70000", "expected host:port"),
        (("strategy",), {"rolling": {}, "recreate": {}}, "choose exactly one strategy"),
        (("strategy",), {}, "choose exactly one strategy"),
    ],
)
def test_field_validators_speak_plainly(path: tuple[str, ...], value: Any, expected: str) -> None:
    text, found = problems_of(with_value(path, value))
    assert [p.path for p in found] == [".".join(path)], found
    assert found[0].line == line_of(text, path)
    assert expected in found[0].message
