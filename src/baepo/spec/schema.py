"""The JSON Schema of ``baepo.yaml`` (draft 2020-12), for editors and other tools.

Generated from the Pydantic models, then adjusted where the models accept more shapes than
Pydantic can describe: a strategy written as a bare name, durations spelled ``30s``, top-level
``x-`` keys for YAML anchors. Point the YAML language server at it with a first line such as
``# yaml-language-server: $schema=baepo.schema.json``.

Callers: the CLI (``baepo schema``), the API (serves it), ``spec.reference`` and tests.
"""

from __future__ import annotations

import copy
from typing import Any

from baepo.spec.models import Spec
from baepo.spec.strategies import StrategySpec
from baepo.spec.units import DURATION_JSON_SCHEMA, format_duration

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:baepo:spec:v1"
EXTENSION_PATTERN = "^x-"


def spec_json_schema() -> dict[str, Any]:
    """A fresh JSON Schema dict describing a valid ``baepo.yaml``."""
    generated = copy.deepcopy(Spec.model_json_schema(mode="validation"))
    schema: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "$id": SCHEMA_ID,
        "title": "baepo.yaml",
    }
    schema.update(generated)
    schema["title"] = "baepo.yaml"
    schema["patternProperties"] = {
        EXTENSION_PATTERN: {"description": "Ignored by baepo; a place for YAML anchors."}
    }
    _allow_strategy_names(schema)
    _walk(schema)
    return schema


def _allow_strategy_names(schema: dict[str, Any]) -> None:
    names = list(StrategySpec.model_fields)
    strategy = schema["properties"]["strategy"]
    ref = strategy.pop("$ref")
    strategy["anyOf"] = [
        {"type": "string", "enum": names, "description": "A strategy with its defaults."},
        {"$ref": ref},
    ]
    definition = schema["$defs"][ref.rsplit("/", 1)[-1]]
    definition["minProperties"] = 1
    definition["maxProperties"] = 1


def _optional_duration(node: dict[str, Any]) -> bool:
    """A field that holds a duration or nothing (``Duration | None``) and says what it is."""
    members = node.get("anyOf")
    return (
        "description" in node
        and isinstance(members, list)
        and len(members) == 2
        and {"type": "null"} in members
        and any(
            isinstance(m, dict) and m.get("anyOf") == DURATION_JSON_SCHEMA["anyOf"] for m in members
        )
    )


def _walk(node: Any) -> None:
    """Describe durations in their own words and give their defaults as ``30s``, not ``30.0``."""
    if isinstance(node, list):
        for item in node:
            _walk(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("anyOf") == DURATION_JSON_SCHEMA["anyOf"] or _optional_duration(node):
        unit_words = DURATION_JSON_SCHEMA["description"]
        own = node.get("description")
        node["description"] = f"{own} {unit_words}" if own and own != unit_words else unit_words
        default = node.get("default")
        if isinstance(default, int | float) and not isinstance(default, bool):
            node["default"] = format_duration(float(default))
    for value in node.values():
        _walk(value)
