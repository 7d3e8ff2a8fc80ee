"""Environment overlays: the merge rules of ``spec.overlays``, the loader's ``env=`` and its
located problems, redaction for ``config show``, and the examples in docs/environments.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from baepo.errors import ConfigError
from baepo.spec import overlays, sensitive
from baepo.spec.loader import load_spec, parse_spec, parse_spec_with_sources

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "environments.md"

BASE: dict[str, Any] = {
    "app": "shop",
    "run": {"command": ["python", "app.py"], "env": {"A": "1", "B": "2"}, "cwd": "srv"},
    "replicas": 1,
    "strategy": {"canary": {"steps": [{"set_weight": 20}, {"pause": "10s"}]}},
    "health": {"readiness": {"path": "/ready", "interval": "1s"}},
    "notifications": [{"name": "a", "url": "json://x", "events": ["failed"]}],
}

MERGES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, str]]] = [
    ("scalar replaces", {"replicas": 4}, {"replicas": 4}, {"replicas": "p"}),
    (
        "mapping merges recursively",
        {"health": {"readiness": {"path": "/live"}}},
        {"health": {"readiness": {"path": "/live", "interval": "1s"}}},
        {"health.readiness.path": "p"},
    ),
    (
        "run.env merges key by key",
        {"run": {"env": {"B": "3", "C": "4"}}},
        {
            "run": {
                "command": ["python", "app.py"],
                "env": {"A": "1", "B": "3", "C": "4"},
                "cwd": "srv",
            }
        },
        {"run.env.B": "p", "run.env.C": "p"},
    ),
    (
        "list replaces",
        {"run": {"command": ["app"]}},
        {"run": {"command": ["app"], "env": {"A": "1", "B": "2"}, "cwd": "srv"}},
        {"run.command": "p"},
    ),
    (
        "strategy replaces as a whole",
        {"strategy": {"rolling": {"max_surge": 1}}},
        {"strategy": {"rolling": {"max_surge": 1}}},
        {"strategy": "p"},
    ),
    (
        "same strategy kind also replaces",
        {"strategy": {"canary": {"steps": [{"set_weight": 50}]}}},
        {"strategy": {"canary": {"steps": [{"set_weight": 50}]}}},
        {"strategy": "p"},
    ),
    (
        "null removes an optional key",
        {"run": {"cwd": None, "env": {"A": None}}},
        {"run": {"command": ["python", "app.py"], "env": {"B": "2"}}},
        {"run.cwd": "p", "run.env.A": "p"},
    ),
    (
        "null removes a section",
        {"notifications": None},
        {"notifications": None},
        {"notifications": "p"},
    ),
    (
        "new section",
        {"router": {"listen": "127.0.0.1:9000"}},
        {"router": {"listen": "127.0.0.1:9000"}},
        {"router": "p"},
    ),
    ("empty overlay", {}, {}, {}),
    ("empty mapping merges as nothing", {"run": {"env": {}}}, {}, {}),
]


@pytest.mark.parametrize(
    ("overlay", "changed", "sources"),
    [case[1:] for case in MERGES],
    ids=[case[0] for case in MERGES],
)
def test_merge_rules(
    overlay: dict[str, Any], changed: dict[str, Any], sources: dict[str, str]
) -> None:
    raw = {**BASE, "environments": {"p": overlay}, "default_env": "p"}
    resolved = overlays.resolve_with_origins(raw, "p")
    expected = {**BASE, **changed}
    expected = {k: v for k, v in expected.items() if v is not None}
    assert resolved.data == expected
    assert resolved.sources == {k: f"environments.{v}" for k, v in sources.items()}
    assert overlays.resolve(raw, "p") == expected
    assert raw["environments"]["p"] == overlay, "the input is left unchanged"
    assert raw["run"]["env"] == {"A": "1", "B": "2"}


@pytest.mark.parametrize("env", ["unknown", "default"])
def test_without_a_matching_overlay_the_base_is_used(env: str) -> None:
    raw = {**BASE, "environments": {"p": {"replicas": 5}}, "default_env": "p"}
    resolved = overlays.resolve_with_origins(raw, env)
    assert resolved.data == BASE
    assert resolved.sources == {}


def test_the_base_as_written_keeps_its_overlays() -> None:
    raw = {**BASE, "environments": {"p": {"replicas": 5}}, "default_env": "p"}
    assert overlays.resolve(raw, None) == raw


def test_other_environments_do_not_leak() -> None:
    raw = {**BASE, "environments": {"p": {"replicas": 5}, "q": {"run": {"env": {"Q": "1"}}}}}
    assert overlays.resolve(raw, "q")["replicas"] == 1
    assert overlays.resolve(raw, "p")["run"]["env"] == {"A": "1", "B": "2"}


def test_origin_of_finds_the_overlay_prefix() -> None:
    raw = {**BASE, "environments": {"p": {"strategy": {"rolling": {}}, "run": {"env": {"X": "1"}}}}}
    resolved = overlays.resolve_with_origins(raw, "p")
    assert resolved.origin_of(("strategy", "rolling", "max_surge")) == ("strategy",)
    assert resolved.origin_of(("run", "env", "X")) == ("run", "env", "X")
    assert resolved.origin_of(("run", "env", "A")) is None
    assert resolved.origin_of(("replicas",)) is None


SPEC = """\
app: shop
run:
  command: [python, app.py]
  env: {LOG_LEVEL: info, DB_PASSWORD: hunter2}
replicas: 1
strategy: {canary: {steps: [{set_weight: 20}, {pause: {duration: 10s}}]}}
default_env: staging
environments:
  staging:
    router: {listen: "127.0.0.1:9001"}
  production:
    replicas: 4
    run:
      env: {LOG_LEVEL: warning}
    strategy: blue_green
"""


def test_parse_spec_resolves_the_environment() -> None:
    base = parse_spec(SPEC)
    assert base.replicas == 1
    assert base.strategy.canary is not None
    assert base.default_env == "staging"
    assert set(base.environments) == {"staging", "production"}
    spec, sources = parse_spec_with_sources(SPEC, env="production")
    assert spec.replicas == 4
    assert spec.strategy.blue_green is not None and spec.strategy.canary is None
    assert spec.run.env == {"LOG_LEVEL": "warning", "DB_PASSWORD": "hunter2"}
    assert sources == {
        "replicas": "environments.production",
        "run.env.LOG_LEVEL": "environments.production",
        "strategy": "environments.production",
    }
    assert (spec.environments, spec.default_env) == ({}, None)
    assert parse_spec(SPEC, env="staging").router.listen == "127.0.0.1:9001"
    unlisted = parse_spec(SPEC, env="qa")
    assert unlisted == base.model_copy(update={"environments": {}, "default_env": None})


def test_editing_one_overlay_leaves_other_environments_unchanged() -> None:
    edited = SPEC.replace("replicas: 4", "replicas: 6")
    assert parse_spec(edited, env="staging") == parse_spec(SPEC, env="staging")
    assert parse_spec(edited, env="production") != parse_spec(SPEC, env="production")


def test_load_spec_records_env_and_sources(tmp_path: Path) -> None:
    path = tmp_path / "baepo.yaml"
    path.write_text(SPEC)
    loaded = load_spec(path, env="production")
    assert loaded.env == "production"
    assert loaded.spec.replicas == 4
    assert loaded.sources["replicas"] == "environments.production"
    assert load_spec(path).sources == {}


BAD: list[tuple[str, str, list[tuple[str, int, str]]]] = [
    (
        "unknown key",
        "  production:\n    replicaz: 4\n",
        [("environments.production.replicaz", 9, "did you mean 'replicas'")],
    ),
    (
        "bad value",
        "  production:\n    replicas: many\n",
        [("environments.production.replicas", 9, "expected an integer")],
    ),
    (
        "nested bad value",
        "  production:\n    health:\n      readiness: {path: ready}\n",
        [("environments.production.health.readiness.path", 10, "must start with '/'")],
    ),
    (
        "bad env var name",
        "  production:\n    run:\n      env: {1BAD: x}\n",
        [("environments.production.run.env", 10, "not a valid environment variable name")],
    ),
    (
        "strategy replaced by an invalid one",
        "  production:\n    strategy: {rolling: {max_surge: lots}}\n",
        [("environments.production.strategy.rolling.max_surge", 9, "")],
    ),
    (
        "required key removed",
        "  production:\n    run: null\n",
        [("environments.production.run", 9, "required")],
    ),
    (
        "overlay not a mapping",
        "  production: 4\n",
        [("environments.production", 8, "expected")],
    ),
    (
        "bad environment name",
        "  Prod_1: {replicas: 2}\n",
        [("environments.Prod_1", 8, "is not valid")],
    ),
    (
        "overlay sets app",
        "  production: {app: other}\n",
        [("environments.production.app", 8, "cannot set 'app'")],
    ),
    (
        "problems in two environments",
        "  a: {replicas: -1}\n  b: {replicaz: 1}\n",
        [("environments.a.replicas", 8, "or more"), ("environments.b.replicaz", 9, "unknown")],
    ),
]

BAD_BASE = """\
app: shop
run:
  command: [python, app.py]
replicas: 1
x-anchor: &x {a: 1}
health: {readiness: {path: /}}
environments:
"""


@pytest.mark.parametrize("env", [None, "production", "a"])
@pytest.mark.parametrize(
    ("overlay", "expected"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_overlays_are_located(
    overlay: str, expected: list[tuple[str, int, str]], env: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec(BAD_BASE + overlay, source="baepo.yaml", env=env)
    found = [(p.path, p.line, p.message) for p in caught.value.problems]
    assert len(found) == len(expected), found
    for (path, line, message), (want_path, want_line, want_words) in zip(
        found, expected, strict=True
    ):
        assert (path, line) == (want_path, want_line), found
        assert want_words in message, found


def test_base_problems_keep_their_base_path() -> None:
    text = BAD_BASE.replace("replicas: 1", "replicas: -1") + "  production: {replicas: 2}\n"
    with pytest.raises(ConfigError) as caught:
        parse_spec(text, env="production")
    assert [(p.path, p.line) for p in caught.value.problems] == [("replicas", 4)]


def test_secret_looking_env_values_are_redacted() -> None:
    data = sensitive.mask_spec(
        {
            "run": {"env": {"DB_PASSWORD": "a", "API_TOKEN": "b", "LOG_LEVEL": "info"}},
            "environments": {"p": {"run": {"env": {"signing_key": "c", "Secret_X": "d"}}}},
        }
    )
    assert data["run"]["env"] == {"DB_PASSWORD": "***", "API_TOKEN": "***", "LOG_LEVEL": "info"}
    assert data["environments"]["p"]["run"]["env"] == {"signing_key": "***", "Secret_X": "***"}


def test_docs_environments_examples_load_in_every_environment() -> None:
    blocks = re.findall(
        r"^```yaml\n(.*?)^```$", DOC.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE
    )
    assert blocks
    for block in blocks:
        base = parse_spec(block, source="docs/environments.md")
        for env in base.environments:
            parse_spec(block, source="docs/environments.md", env=env)
