"""Control characters and direction overrides never enter baepo: a spec holding one is a
located error, a CLI option holding one is a usage error (exit 2) naming the option."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from baepo.errors import ConfigError
from baepo.spec.loader import parse_spec
from baepo.spec.text import control_problem

BASE = 'app: shop\nrun: {command: ["x"]}\n'


@pytest.mark.parametrize(
    ("text", "one_line", "expected"),
    [
        ("1.4.0", True, None),
        ("a message\nover\tlines", False, None),
        ("한국어 배포 ✓", True, None),
        ("1.0\x1b[31m", True, "contains a control character (U+001B at character 4); remove it"),
        ("\x9b31m", False, "contains a control character (U+009B at character 1); remove it"),
        ("x\x00", False, "U+0000 at character 2"),
        ("x\x7f", False, "U+007F at character 2"),
        ("x\r", False, "U+000D at character 2"),
        ("1.0\u202e1", False, "U+202E right-to-left override at character 4"),
        ("1.0\n", True, "must be one line, without tabs or newlines (U+000A at character 4)"),
        ("a\tb", True, "must be one line, without tabs or newlines (U+0009 at character 2)"),
    ],
)
def test_control_problem(text: str, one_line: bool, expected: str | None) -> None:
    found = control_problem(text, one_line=one_line)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert expected in found


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            'version: "1.0\\e[31m"\n',
            "baepo.yaml:3: version: contains a control character (U+001B at character 4); "
            "remove it",
        ),
        ('version: "1.0\\n2"\n', "baepo.yaml:3: version: must be one line"),
        (
            'freeze: [{reason: "x\\e]0;owned\\a", start: 2026-01-01, end: 2026-01-02}]\n',
            "baepo.yaml:3: freeze[0].reason: contains a control character (U+001B",
        ),
        (
            'hooks: {pre_deploy: [{name: "a\\u202eb", command: [x]}]}\n',
            "baepo.yaml:3: hooks.pre_deploy[0].name: contains a control character (U+202E",
        ),
        (
            'environments: {prod: {version: "\\x85"}}\n',
            "baepo.yaml:3: environments.prod.version: contains a control character (U+0085",
        ),
        ('"x-\\e": 1\nrun: {command: ["x"], env: {"\\e": "1"}}\n', "in the key '\\x1b'"),
    ],
)
def test_a_spec_with_a_control_character_is_refused_where_it_is(extra: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec(
            BASE + extra if not extra.startswith('"x') else "app: shop\n" + extra,
            source="baepo.yaml",
        )
    found = [p.render() for p in caught.value.problems]
    assert any(expected in problem for problem in found), found


def test_a_version_with_an_escape_is_one_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec(BASE + 'version: "1.0\\e[31m"\n', source="baepo.yaml")
    assert len(caught.value.problems) == 1, caught.value.problems


def test_tabs_and_newlines_stay_allowed_in_text() -> None:
    spec = parse_spec(
        BASE + 'freeze: [{reason: "year end:\\n\\tno deploys", start: 2026-12-20, '
        "end: 2027-01-02}]\n"
    )
    assert spec.freeze[0].reason == "year end:\n\tno deploys"


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["deploy", "--version", "1.0\x1b[2J"], "'--version'"),
        (["deploy", "--message", "x\x1b]0;title\x07"], "'--message' / '-m'"),
        (["deploy", "--override-freeze", "\u202eok"], "'--override-freeze'"),
        (["lock", "--reason", "\x9b2J"], "'--reason' / '-r'"),
        (["reject", "--reason", "no\x07"], "'--reason' / '-r'"),
        (["undo", "-m", "\x1b[31m"], "'--message' / '-m'"),
        (["promote-release", "--from", "a", "--to", "b", "--version", "1\n2"], "'--version'"),
    ],
)
def test_a_cli_option_with_a_control_character_is_a_usage_error(
    args: list[str], option: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "baepo", *args],
        check=False,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"Invalid value for {option}" in result.stderr, result.stderr
