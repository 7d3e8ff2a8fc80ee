"""docs/spec.md is generated from the models and up to date; every YAML block in it loads; the
starter that `baepo init` writes parses and explains itself."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from baepo.errors import ConfigError
from baepo.spec import reference
from baepo.spec.loader import parse_spec
from baepo.spec.starter import DEFAULT_COMMAND, STARTER_SPEC, app_name_from, starter_spec

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "spec.md"


def yaml_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```$", markdown, flags=re.DOTALL | re.MULTILINE)


def test_docs_spec_md_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == reference.render_reference(), (
        "docs/spec.md is out of date: run scripts/gen-docs"
    )


def test_every_yaml_example_in_the_docs_loads() -> None:
    blocks = yaml_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) == 1 + len(reference.EXAMPLES)
    for block in blocks:
        parse_spec(block, source="docs/spec.md")


def test_the_docs_name_every_key() -> None:
    text = DOC.read_text(encoding="utf-8")
    for ref in reference.iter_fields():
        assert f"| `{ref.name}` |" in text, ref.dotted
        assert ref.field.description, ref.dotted
        assert ref.field.description.replace("|", "\\|") in text, ref.dotted


def test_the_examples_show_what_they_say() -> None:
    specs = {title: parse_spec(text) for title, _words, text in reference.EXAMPLES}
    rolling = specs["Rolling with percentages"]
    assert rolling.strategy.rolling is not None
    assert rolling.strategy.rolling.resolve(rolling.replicas) == (2, 0)
    assert specs["Recreate"].strategy.kind == "recreate"
    probes = specs["Health probes"].health
    assert probes.liveness is not None
    assert probes.readiness.timeout == 0.5
    assert probes.readiness.initial_delay == 1.5


def test_gen_docs_check_mode(tmp_path: Path) -> None:
    stale = tmp_path / "spec.md"
    stale.write_text("old\n")
    assert reference.main(["--check", str(stale)]) == 1
    assert reference.main([str(stale)]) == 0
    assert stale.read_text() == reference.render_reference()
    assert reference.main(["--check", str(stale)]) == 0


def test_scripts_gen_docs_is_executable_and_current() -> None:
    script = ROOT / "scripts" / "gen-docs"
    assert script.stat().st_mode & 0o111
    result = subprocess.run([str(script), "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_starter_parses_with_sensible_values() -> None:
    spec = parse_spec(STARTER_SPEC, source="starter")
    assert spec.app == "my-app"
    assert spec.run.command == DEFAULT_COMMAND
    assert "{port}" in spec.run.command
    assert spec.version == "0.1.0"
    assert spec.health.liveness is not None
    assert spec.strategy.rolling is not None
    surge, unavailable = spec.strategy.rolling.resolve(spec.replicas)
    assert (surge, unavailable) == (1, 0)


def test_every_starter_section_is_explained() -> None:
    lines = STARTER_SPEC.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+:", line):
            before = lines[i - 1] if i else ""
            assert before.startswith("#"), f"section {line!r} has no comment"


def test_starter_with_an_app_and_a_command() -> None:
    command = ["node", "server.js", "--port={port}", 'quote " and \\ backslash', "ünï"]
    spec = parse_spec(starter_spec("shop-api", command))
    assert spec.app == "shop-api"
    assert spec.run.command == command


@pytest.mark.parametrize("bad", ["Shop", "", "-x", "a_b"])
def test_starter_refuses_a_bad_app_name_and_suggests_one(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        starter_spec(bad)
    assert caught.value.hint
    assert repr(app_name_from(bad)) in caught.value.hint


@pytest.mark.parametrize(
    ("folder", "name"),
    [("My_Shop API", "my-shop-api"), ("shop", "shop"), ("___", "app"), ("x" * 80, "x" * 63)],
)
def test_app_name_from_a_folder(folder: str, name: str) -> None:
    assert app_name_from(folder) == name
    parse_spec(starter_spec(app_name_from(folder)))
