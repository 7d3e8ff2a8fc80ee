"""Unit tests of the spec's JSON Schema: its structure, and that it agrees with the loader.

The schema is checked with a small evaluator of the keywords it uses (the test fails if it starts
using another one), and also with the ``jsonschema`` library when that happens to be installed.
"""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

import pytest
import yaml

from baepo.errors import ConfigError
from baepo.spec.loader import parse_spec
from baepo.spec.reference import EXAMPLES, field_kind, iter_fields
from baepo.spec.schema import SCHEMA_DIALECT, spec_json_schema
from baepo.spec.starter import STARTER_SPEC

ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "default", "examples"}
ASSERTIONS = {
    "$ref", "type", "properties", "patternProperties", "additionalProperties", "required",
    "anyOf", "enum", "pattern", "minimum", "maximum", "items", "minItems", "minProperties",
    "maxProperties", "minLength", "maxLength",
}  # fmt: skip
TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "null": type(None),
    "boolean": bool,
}


def errors(schema: dict[str, Any], value: Any, root: dict[str, Any], at: str = "") -> list[str]:
    """What is wrong with ``value`` under ``schema``: the keywords used by spec_json_schema."""
    unknown = set(schema) - ANNOTATIONS - ASSERTIONS
    assert not unknown, f"evaluator does not know {unknown} at {at}"
    found: list[str] = []
    if "$ref" in schema:
        found += errors(root["$defs"][schema["$ref"].rsplit("/", 1)[-1]], value, root, at)
    if "anyOf" in schema and all(errors(s, value, root, at) for s in schema["anyOf"]):
        found.append(f"{at}: matches no choice")
    if "type" in schema:
        wanted = TYPES[schema["type"]]
        is_bool = isinstance(value, bool)
        if (is_bool != (wanted is bool)) or not isinstance(value, wanted):
            return [*found, f"{at}: not {schema['type']}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{at}: not in enum")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        found.append(f"{at}: pattern")
    if "minLength" in schema and isinstance(value, str) and len(value) < schema["minLength"]:
        found.append(f"{at}: minLength")
    if "maxLength" in schema and isinstance(value, str) and len(value) > schema["maxLength"]:
        found.append(f"{at}: maxLength")
    if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
        found.append(f"{at}: minimum")
    if "maximum" in schema and isinstance(value, int | float) and value > schema["maximum"]:
        found.append(f"{at}: maximum")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{at}: minItems")
        for i, item in enumerate(value):
            found += errors(schema.get("items", {}), item, root, f"{at}[{i}]")
    if isinstance(value, dict):
        if not schema.get("minProperties", 0) <= len(value) <= schema.get("maxProperties", 10**9):
            found.append(f"{at}: number of keys")
        found += [f"{at}.{k}: required" for k in schema.get("required", []) if k not in value]
        for key, item in value.items():
            if key in schema.get("properties", {}):
                found += errors(schema["properties"][key], item, root, f"{at}.{key}")
            elif any(re.search(p, key) for p in schema.get("patternProperties", {})):
                continue
            elif schema.get("additionalProperties") is False:
                found.append(f"{at}.{key}: additional property")
            elif isinstance(schema.get("additionalProperties"), dict):
                found += errors(schema["additionalProperties"], item, root, f"{at}.{key}")
    return found


def validate(value: Any) -> list[str]:
    schema = spec_json_schema()
    found = errors(schema, value, schema)
    try:
        jsonschema: Any = importlib.import_module("jsonschema")
    except ImportError:
        return found
    library = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(value)]
    assert bool(found) == bool(library), (found, library)
    return found


SAMPLES = [STARTER_SPEC] + [text for _title, _words, text in EXAMPLES]


@pytest.mark.parametrize("text", SAMPLES)
def test_the_schema_accepts_the_sample_specs(text: str) -> None:
    parse_spec(text)
    assert validate(yaml.safe_load(text)) == []


@pytest.mark.parametrize(
    "doc",
    [
        {"run": {"command": ["x"]}},
        {"app": "shop", "run": {"command": ["x"]}, "replica": 2},
        {"app": "shop", "run": {"command": ["x"], "bogus": 1}},
        {"app": "shop", "run": {"command": []}},
        {"app": "Shop", "run": {"command": ["x"]}},
        {"app": "shop", "run": {"command": ["x"]}, "replicas": 101},
        {"app": "shop", "run": {"command": ["x"]}, "strategy": "canari"},
        {"app": "shop", "run": {"command": ["x"]}, "strategy": {}},
        {"app": "shop", "run": {"command": ["x"]}, "strategy": {"rolling": {}, "recreate": {}}},
        {"app": "shop", "run": {"command": ["x"]}, "strategy": {"rolling": {"max_surge": "101%"}}},
        {"app": "shop", "run": {"command": ["x"]}, "health": {"readiness": {"interval": "soon"}}},
        {"app": "shop", "run": {"command": ["x"], "env": {"PORT": 8080}}},
        {"app": "shop", "run": {"command": ["x"]}, "version": 1.1},
    ],
)
def test_the_schema_and_the_loader_both_reject(doc: dict[str, Any]) -> None:
    assert validate(doc)
    with pytest.raises(ConfigError):
        parse_spec(yaml.safe_dump(doc))


def test_the_schema_identifies_itself() -> None:
    schema = spec_json_schema()
    assert schema["$schema"] == SCHEMA_DIALECT == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]
    assert schema["title"] == "baepo.yaml"
    assert schema["required"] == ["app", "run"]
    assert schema["$defs"]["RunSpec"]["required"] == ["command"]
    json.dumps(schema)


def objects(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [found for item in node for found in objects(item)]
    if not isinstance(node, dict):
        return []
    here = [node] if node.get("type") == "object" else []
    return here + [found for value in node.values() for found in objects(value)]


def test_every_object_forbids_unknown_keys() -> None:
    schema = spec_json_schema()
    found = objects(schema)
    assert len(found) >= 10
    for obj in found:
        assert "additionalProperties" in obj, obj
        if "properties" in obj:
            assert obj["additionalProperties"] is False, obj


def test_every_field_is_described_and_durations_say_how_to_write_them() -> None:
    schema = spec_json_schema()
    for ref in iter_fields():
        props = schema["properties"] if len(ref.path) == 1 else None
        if props is None:
            owner = schema["$defs"][ref.model.__name__]
            props = owner["properties"]
        prop = props[ref.name]
        assert prop.get("description"), ref.dotted
        if field_kind(ref.field) == "duration":
            assert "500ms, 30s, 2m" in prop["description"], ref.dotted
            if prop.get("default") is None and "null" in json.dumps(prop.get("anyOf")):
                continue  # an optional duration, not set by default
            assert isinstance(prop.get("default"), str), ref.dotted
            assert re.fullmatch(r"\d+(\.\d+)?(ms|s|m|h)", prop["default"]), ref.dotted


def test_a_strategy_can_be_written_as_a_name() -> None:
    strategy = spec_json_schema()["properties"]["strategy"]
    names = [choice for choice in strategy["anyOf"] if choice.get("type") == "string"]
    assert names[0]["enum"] == ["recreate", "rolling", "canary", "blue_green"]


def test_x_keys_are_allowed_at_the_top_level_only() -> None:
    assert validate({"app": "shop", "run": {"command": ["x"]}, "x-anchors": {"a": 1}}) == []
    assert validate({"app": "shop", "run": {"command": ["x"], "x-anchors": 1}})


def test_the_schema_is_fresh_each_call() -> None:
    first = spec_json_schema()
    first["properties"].clear()
    assert spec_json_schema()["properties"]
