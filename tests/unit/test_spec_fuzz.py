"""Fuzz the spec loader: whatever text comes in, only a Spec or a ConfigError comes out."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from baepo.errors import ConfigError
from baepo.spec.loader import parse_spec
from baepo.spec.models import Spec
from baepo.spec.reference import iter_fields, nested_model

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

YAML_PIECES = [
    *"[]{}:,-&*!|>'\"#%@`? \n\t\r<=~.0123456789abexyz_\\",
    "app",
    "run",
    "command",
    "<<",
    "!!int",
    "!!str",
    "!!binary",
    "!!set",
    "&a",
    "*a",
    "---",
    "...",
    "\x00",
    "\ud800",
    "\ufeff",
    "\x85",
    "\u2028",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2000:\n",
    "1e400",
    ".inf",
    "0o",
    "0x",
]

KEYS = sorted({ref.name for ref in iter_fields()} | {"x-a", "bogus"})
keys = st.one_of(
    st.sampled_from(KEYS), st.integers(), st.none(), st.booleans(), st.floats(), st.text()
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["30s", "500ms", "25%", "101%", "-1", "shop", "/health", "rolling"]),
)
yaml_data = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)


def check(text: str) -> None:
    error: ConfigError | None = None
    try:
        spec = parse_spec(text, source="fuzz.yaml")
    except ConfigError as exc:
        error = exc
    else:
        assert isinstance(spec, Spec)
    if error is not None:
        assert error.problems
        for problem in error.problems:
            assert problem.source == "fuzz.yaml"
            assert problem.line is None or problem.line >= 1
        assert str(error).startswith("fuzz.yaml: ")


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    check(text)


@FUZZ
@given(st.lists(st.sampled_from(YAML_PIECES), max_size=60).map("".join))
def test_yaml_like_text(text: str) -> None:
    check(text)


@FUZZ
@given(st.dictionaries(keys, yaml_data, max_size=8), st.booleans())
def test_random_yaml_shaped_data(data: dict[Any, Any], flow: bool) -> None:
    check(yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True))


def sections(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """Mappings with some of ``model``'s keys, each holding random data or a nested section."""
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, field in model.model_fields.items():
        nested = nested_model(field)
        optional[name] = yaml_data if nested is None else yaml_data | sections(nested)
    return st.fixed_dictionaries({}, optional=optional)


@FUZZ
@given(sections(Spec))
def test_near_valid_specs(data: dict[str, Any]) -> None:
    data.setdefault("app", "shop")
    data.setdefault("run", {"command": ["x"]})
    check(yaml.safe_dump(data, sort_keys=False))


@FUZZ
@given(st.binary(max_size=200))
def test_binary_junk_decoded_leniently(raw: bytes) -> None:
    check(raw.decode("utf-8", errors="surrogateescape"))
    check(raw.decode("latin-1"))


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=60, max_value=5000), st.sampled_from(["[", "{a: ", "- ", "a:\n "]))
def test_deep_nesting(depth: int, opener: str) -> None:
    check(opener * depth)
