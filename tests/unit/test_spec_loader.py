"""Unit tests of the spec loader: located problems, YAML rules, limits, finding and reading
files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from baepo.errors import ConfigError, Problem
from baepo.spec import loader
from baepo.spec.files import find_spec_file
from baepo.spec.loader import LoadedSpec, load_spec, parse_spec
from baepo.spec.reference import EXAMPLES
from baepo.spec.starter import STARTER_SPEC

BASE = 'app: shop\nrun:\n  command: ["python3", "-m", "shop"]\n'


def problems(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        parse_spec(text, source="baepo.yaml")
    assert caught.value.message.startswith("baepo.yaml: not a valid baepo spec")
    assert all(p.source == "baepo.yaml" for p in caught.value.problems)
    return caught.value.problems


def only(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def test_a_minimal_spec_loads_with_defaults() -> None:
    spec = parse_spec(BASE)
    assert spec.app == "shop"
    assert spec.run.command == ["python3", "-m", "shop"]
    assert spec.replicas == 1
    assert spec.strategy.kind == "rolling"


def test_every_problem_is_collected_with_path_line_and_plain_words() -> None:
    text = (
        "app: shop\n"  # 1
        "replica: 3\n"  # 2
        "replicas: three\n"  # 3
        "run:\n"  # 4
        "  command: python app.py\n"  # 5
        "health:\n"  # 6
        "  readiness:\n"  # 7
        "    interval: soon\n"  # 8
        "strategy:\n"  # 9
        "  rolling:\n"  # 10
        "    max_surge: 101%\n"  # 11
    )
    found = {p.path: p for p in problems(text)}
    assert set(found) == {
        "replica",
        "replicas",
        "run.command",
        "health.readiness.interval",
        "strategy.rolling.max_surge",
    }
    assert found["replica"].line == 2
    assert found["replica"].message == "unknown key 'replica'; did you mean 'replicas'?"
    assert found["replicas"].message == "expected an integer, got 'three'"
    assert found["replicas"].line == 3
    assert found["run.command"].line == 5
    assert "expected a list" in found["run.command"].message
    assert found["health.readiness.interval"].line == 8
    assert "expected a duration" in found["health.readiness.interval"].message
    assert found["strategy.rolling.max_surge"].line == 11


def test_problems_are_sorted_by_line_and_rendered_with_the_file() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec("replicas: -1\napp: shop\nbogus: 1\n", source="x/baepo.yaml")
    lines = [p.line or 0 for p in caught.value.problems]
    assert lines == sorted(lines)
    text = str(caught.value)
    assert "x/baepo.yaml:1: replicas: must be 0 or more, got -1" in text
    assert "x/baepo.yaml:3: bogus: unknown key 'bogus'" in text
    assert caught.value.hint


def test_a_list_item_is_named_by_index() -> None:
    problem = only('app: shop\nrun:\n  command:\n    - python3\n    - ["-m"]\n')
    assert problem.path == "run.command[1]"
    assert problem.line == 5
    assert problem.message == "expected a string, got a list"


def test_a_missing_key_points_at_its_parent() -> None:
    problem = only("app: shop\nrun:\n  cwd: src\n")
    assert problem.path == "run.command"
    assert problem.line == 2
    assert problem.message.startswith("required: The program and its arguments")
    top = only("run:\n  command: [x]\n")
    assert (top.path, top.line) == ("app", 1)


def test_a_version_that_yaml_reads_as_a_number_must_be_quoted() -> None:
    problem = only(BASE + "version: 1.10\n")
    assert problem.path == "version"
    assert problem.line == 4
    assert problem.message == 'expected a string, got 1.10; quote it: "1.10"'
    assert parse_spec(BASE + 'version: "1.10"\n').version == "1.10"
    assert only(BASE + "version: 2\n").message.endswith('quote it: "2"')


def test_environment_values_must_be_strings() -> None:
    text = BASE + "  env:\n    PORT: 8080\n    DEBUG: true\n    7: x\n"
    found = {p.path: p.message for p in problems(text)}
    assert found["run.env.PORT"] == 'expected a string, got 8080; quote it: "8080"'
    assert found["run.env.DEBUG"] == 'expected a string, got true; quote it: "true"'
    assert found["run.env.7"].startswith("expected a key that is a string")


def test_yaml_1_2_core_schema_keeps_words_and_dates_as_strings() -> None:
    text = BASE + "  env:\n    A: yes\n    B: on\n    C: 2024-01-01\nversion: 1:30\n"
    spec = parse_spec(text)
    assert spec.run.env == {"A": "yes", "B": "on", "C": "2024-01-01"}
    assert spec.version == "1:30"
    assert parse_spec(BASE + "replicas: 0o17\n").replicas == 15
    assert parse_spec(BASE + "replicas: 0x0a\n").replicas == 10
    assert parse_spec(BASE + "replicas: 010\n").replicas == 10


def test_lax_conversions_are_refused() -> None:
    assert only(BASE + 'replicas: "3"\n').message == "expected an integer, got '3'"
    assert only(BASE + "replicas: true\n").message == "expected an integer, got true"
    assert only(BASE + "replicas: 2.0\n").message == "expected an integer, got 2.0"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("app: [shop\n", 2, "invalid YAML: expected ',' or ']'"),
        ("app: shop\n\trun: x\n", 2, "invalid YAML"),
        ("app: *nothing\n", 1, "undefined alias"),
        ("a: 1\n---\nb: 2\n", 2, "expected a single document"),
        ("app: shop\nrun: !!binary aGVsbG8=\n", 2, "YAML tag !!binary is not supported"),
        ("app: !!python/object:os.system x\n", 1, "is not supported"),
        ("replicas: !!int three\n", 1, "not an integer"),
        ("replicas: !!float x\n", 1, "not a number"),
        ("replicas: !!bool maybe\n", 1, "not true or false"),
        ("a: &x [*x]\n", 1, "refers to a value that contains it"),
        ("a: \x00\n", 1, "unreadable character #x0000"),
        ("a:\n  " + "[" * 100 + "]" * 100 + "\n", 2, "nested more than 64 levels"),
        ("? [a, b]\n: 1\n", 1, "unhashable"),
    ],
)
def test_unreadable_yaml_is_one_located_problem(text: str, line: int, fragment: str) -> None:
    problem = only(text)
    assert problem.path == ""
    assert problem.line == line
    assert fragment in problem.message


def test_huge_numbers_are_a_problem_not_a_crash() -> None:
    assert "not an integer" in only("replicas: " + "9" * 5000 + "\n").message
    assert only(BASE + "replicas: 99999999999999999999\n").message.startswith(
        "must be from 0 to 100, got 99999"
    )


@pytest.mark.parametrize("text", ["", "   \n", "# just a comment\n", "---\n", "~\n"])
def test_an_empty_file_is_a_problem(text: str) -> None:
    message = only(text).message
    assert "empty" in message or "must be a mapping" in message


@pytest.mark.parametrize(
    ("text", "got"), [("- a\n- b\n", "a list"), ("shop\n", "'shop'"), ("42\n", "42")]
)
def test_the_top_level_must_be_a_mapping(text: str, got: str) -> None:
    problem = only(text)
    assert problem.message.endswith(f"must be a mapping of keys (app: ..., run: ...), got {got}")
    assert problem.line == 1


def test_duplicate_keys_are_errors_at_every_level() -> None:
    text = BASE + "replicas: 2\nreplicas: 3\nhealth:\n  readiness: {path: /a, path: /b}\n"
    found = {p.path: p for p in problems(text)}
    assert found["replicas"].line == 5
    assert found["replicas"].message == (
        "duplicate key 'replicas' (first set on line 4); keep only one"
    )
    assert found["health.readiness.path"].line == 7


def test_duplicate_keys_inside_list_items_are_found() -> None:
    problem = only("app: shop\nrun:\n  command: [x]\n  env: {A: '1', A: '2'}\n")
    assert problem.path == "run.env.A"


def test_anchors_aliases_and_merge_keys_work() -> None:
    text = (
        "x-probe: &probe\n  interval: 2s\n  timeout: 500ms\n"
        + BASE
        + "health:\n  readiness:\n    <<: *probe\n    path: /ready\n"
        + "  liveness:\n    <<: *probe\n    interval: 5s\n"
    )
    spec = parse_spec(text)
    assert spec.health.readiness.interval == 2.0
    assert spec.health.readiness.path == "/ready"
    assert spec.health.liveness is not None
    assert spec.health.liveness.interval == 5.0
    assert spec.health.liveness.timeout == 0.5


def test_a_key_merged_from_an_anchor_is_located_at_its_definition() -> None:
    text = "x-bad: &bad\n  interval: soon\n" + BASE + "health:\n  readiness:\n    <<: *bad\n"
    problem = only(text)
    assert problem.path == "health.readiness.interval"
    assert problem.line == 2


def test_only_top_level_x_keys_are_ignored() -> None:
    assert only(BASE + "run2:\n  x-note: 1\n").path == "run2"
    assert only("app: shop\nrun:\n  command: [x]\n  x-note: 1\n").path == "run.x-note"


def test_unknown_strategy_names_get_a_suggestion() -> None:
    problem = only(BASE + "strategy: rollin\n")
    assert problem.path == "strategy"
    assert "did you mean 'rolling'?" in problem.message
    assert "unknown key 'canari'" in only(BASE + "strategy: {canari: {}}\n").message


def test_a_strategy_is_a_name_or_a_mapping_with_one_of_them() -> None:
    assert parse_spec(BASE + "strategy: recreate\n").strategy.kind == "recreate"
    assert parse_spec(BASE + "strategy:\n  rolling:\n").strategy.kind == "rolling"
    assert only(BASE + "strategy: {rolling: , recreate: }\n").message == (
        "choose exactly one strategy: recreate, rolling, canary, blue_green"
    )


def test_size_limits() -> None:
    assert "too large" in only("a: " + "x" * (loader.MAX_SPEC_CHARS + 1)).message
    laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    laughs += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    assert "too large: more than" in only("\n".join(laughs)).message
    merges = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}"]
    merges += [f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}]}}" for i in range(1, 10)]
    assert "too large" in only("\n".join(merges)).message


def test_many_problems_are_capped_but_counted() -> None:
    text = "app: shop\nrun:\n  command: [" + ", ".join(["1"] * 80) + "]\n"
    with pytest.raises(ConfigError) as caught:
        parse_spec(text)
    assert "(80 problems)" in caught.value.message
    assert len(caught.value.problems) == loader.MAX_PROBLEMS + 1
    assert caught.value.problems[-1].message == f"... and {80 - loader.MAX_PROBLEMS} more"


# --- files -------------------------------------------------------------------------------------


def test_load_spec_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "baepo.yaml"
    path.write_text(BASE, encoding="utf-8")
    loaded = load_spec(path)
    assert isinstance(loaded, LoadedSpec)
    assert loaded.spec.app == "shop"
    assert loaded.path == path.resolve()
    assert loaded.directory == tmp_path.resolve()
    assert loaded.text == BASE


def test_load_spec_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "baepo.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert load_spec(path).spec.app == "shop"


def test_load_spec_names_the_file_in_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "baepo.yaml"
    path.write_text("app: shop\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_spec(path)
    assert caught.value.message.startswith(f"{path}: ")
    assert caught.value.problems[0].source == str(path)
    assert str(caught.value).splitlines()[1].strip().startswith(f"{path}:1: run: required")


def test_binary_junk_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "baepo.yaml"
    path.write_bytes(b"app: shop\n\xff\xfe\x00\x81junk")
    with pytest.raises(ConfigError) as caught:
        load_spec(path)
    assert caught.value.problems[0].line == 2
    assert "not UTF-8" in caught.value.problems[0].message


def test_load_spec_of_a_missing_or_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file") as caught:
        load_spec(tmp_path / "nope.yaml")
    assert caught.value.hint == loader.INIT_HINT
    with pytest.raises(ConfigError, match="cannot read it"):
        load_spec(tmp_path)


def test_find_spec_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        find_spec_file(tmp_path, None)
    assert caught.value.hint == "run `baepo init` to write one, or pass -f FILE"
    (tmp_path / "baepo.yml").write_text(BASE)
    assert find_spec_file(tmp_path, None) == tmp_path / "baepo.yml"
    (tmp_path / "baepo.yaml").write_text(BASE)
    with pytest.raises(ConfigError, match=r"both baepo\.yaml and baepo\.yml"):
        find_spec_file(tmp_path, None)
    (tmp_path / "baepo.yml").unlink()
    assert find_spec_file(tmp_path, None) == tmp_path / "baepo.yaml"


def test_find_spec_file_with_an_explicit_path(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text(BASE)
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "baepo.yaml").write_text(BASE)
    assert find_spec_file(tmp_path, Path("other.yaml")) == tmp_path / "other.yaml"
    assert find_spec_file(Path("/"), tmp_path / "other.yaml") == tmp_path / "other.yaml"
    assert find_spec_file(tmp_path, Path("svc")) == tmp_path / "svc" / "baepo.yaml"
    with pytest.raises(ConfigError, match=r"missing\.yaml: no such file"):
        find_spec_file(tmp_path, Path("missing.yaml"))


def test_a_dumped_spec_loads_back_the_same() -> None:
    for text in [STARTER_SPEC, *(example for _title, _words, example in EXAMPLES)]:
        spec = parse_spec(text)
        dumped = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
        assert parse_spec(dumped) == spec
