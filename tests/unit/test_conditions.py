"""The condition language: what it evaluates, what it refuses, and that nothing else escapes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baepo.errors import ConfigError
from baepo.expressions.conditions import Condition, ConditionError, compile_condition, describe
from baepo.expressions.grammar import MAX_CONDITION_CHARS

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Snapshot:
    p95: float
    error_rate: float | None = None

    def reset(self) -> None:
        """A method: never reachable from a condition."""


CANARY = {"p95": 0.31, "error_rate": 0.02}
BASELINE = Snapshot(p95=0.2, error_rate=0.019)


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("result < 0.01", {"result": 0.005}, True),
        ("result < 0.01", {"result": 0.01}, False),
        ("result[0] >= 0.95", {"result": [0.97, 0.1]}, True),
        ("result[-1] >= 0.95", {"result": [0.97, 0.1]}, False),
        ('result["p95"] < 1', {"result": {"p95": 0.5}}, True),
        ("canary.p95 <= baseline.p95 * 1.2", {"canary": CANARY, "baseline": BASELINE}, False),
        ("canary.p95 <= baseline.p95 * 2", {"canary": CANARY, "baseline": BASELINE}, True),
        (
            "canary.error_rate <= baseline.error_rate * 1.1 + 0.001",
            {"canary": CANARY, "baseline": BASELINE},
            True,
        ),
        ("result > 0 and result < 5", {"result": 3}, True),
        ("result > 0 and result < 5", {"result": 7}, False),
        ("result < 0 or result > 5", {"result": 7}, True),
        ("not (result >= 0.5)", {"result": 0.4}, True),
        ("0 < result < 5", {"result": 4.9}, True),
        ("0 < result < 5", {"result": 5}, False),
        ("0 < result <= 5 != 6", {"result": 5}, True),
        ("len(result) > 0", {"result": [1]}, True),
        ("len(result) > 0", {"result": []}, False),
        ("max(result) < 2", {"result": [1, 1.5]}, True),
        ("min(result) < 1", {"result": [1, 1.5]}, False),
        ("max(a, b, 3) == 3", {"a": 1, "b": 2}, True),
        ("sum(result) == 6", {"result": [1, 2, 3]}, True),
        ("mean(result) == 2", {"result": [1, 2, 3]}, True),
        ("abs(result - 1) < 0.1", {"result": 0.95}, True),
        ("all(result)", {"result": [1, 2]}, True),
        ("any(result)", {"result": [0, 0]}, False),
        ("isnan(result)", {"result": math.nan}, True),
        ("not isnan(result) and result < 1", {"result": 0.5}, True),
        ("result % 2 == 1", {"result": 7}, True),
        ("-result < +result", {"result": 1}, True),
        ("result / 4 == 0.5", {"result": 2}, True),
        ("result == None", {"result": None}, True),
        ("result != None and result > 1", {"result": None}, False),
        ("result == True", {"result": True}, True),
        # short-circuit: the right side would fail (missing name, index, division by zero)
        ("result < 0 and missing > 1", {"result": 1}, False),
        ("len(result) == 0 or result[0] > 1", {"result": []}, True),
        ("result == 0 or 1 / result > 0.5", {"result": 0}, True),
        ("1 > 2 < missing", {}, False),
        ("(\n  result < 1\n)", {"result": 0}, True),
    ],
)
def test_evaluates(text: str, variables: dict[str, Any], expected: bool) -> None:
    assert compile_condition(text).evaluate(variables) is expected


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("result < 0.01", {"result"}),
        ("canary.p95 <= baseline.p95 * 1.2", {"canary", "baseline"}),
        ("max(result) < limit", {"result", "limit"}),
        ("1 < 2", set()),
    ],
)
def test_names_are_the_free_variables(text: str, names: set[str]) -> None:
    assert compile_condition(text).names == names


def test_condition_is_a_frozen_value() -> None:
    condition = compile_condition("  result < 1 ")
    assert isinstance(condition, Condition)
    assert condition.text == "result < 1"
    assert condition == compile_condition("result < 1")
    with pytest.raises(AttributeError):
        condition.text = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("result.__class__", "`__class__` is not allowed: attribute names cannot start with _"),
        ("result._x < 1", "`_x` is not allowed: attribute names cannot start with _ (column 8)"),
        ("__import__('os')", "calls to `__import__` are not allowed"),
        ("__x < 1", "`__x` is not allowed: names cannot start with _"),
        (
            "open('x')",
            "calls to `open` are not allowed; allowed functions: "
            "abs, all, any, isnan, len, max, mean, min, sum (column 1)",
        ),
        ("result.count(1) > 0", "calls to `result.count` are not allowed"),
        ("max(result)(1)", "calls to `max(result)` are not allowed"),
        ("result ** 2 < 4", "`**` is not allowed; operators allowed: + - * / %"),
        ("9 ** 9 ** 9", "`**` is not allowed"),
        ("result // 2 < 4", "`//` is not allowed"),
        ("result & 1", "`&` is not allowed"),
        ("~result", "`~` is not allowed; unary operators allowed: - + not"),
        ("1 in result", "`in` is not allowed; comparisons allowed: < <= > >= == !="),
        ("result is None", "`is` is not allowed"),
        ("lambda: 1", "lambda is not allowed (column 1)"),
        ("[x for x in result]", "comprehensions are not allowed"),
        ("any(x > 1 for x in result)", "comprehensions are not allowed (column 4)"),
        ("'abc' == result", "strings are only allowed as keys"),
        ("f'{result}' == 1", "f-strings are not allowed"),
        ("(x := 1) > 0", "`:=` is not allowed (column 2)"),
        ("1 if result else 2", "`x if c else y` is not allowed"),
        ("[1, 2]", "list literals are not allowed"),
        ("(1, 2)", "tuples are not allowed"),
        ("{1: 2}", "dict literals are not allowed"),
        ("{1}", "set literals are not allowed"),
        ("result[1:2] < 1", "slices are not allowed"),
        ("result[i] < 1", "an index must be a whole number or a key"),
        ("result[True] < 1", "an index must be a whole number or a key"),
        ("max(*result) < 1", "`*` unpacking is not allowed"),
        ("max(result, key=abs) < 1", "max() takes no keyword arguments"),
        ("abs(1, 2) < 1", "abs() takes 1 argument, not 2"),
        ("max() < 1", "max() takes 1 or more arguments, not 0"),
        ("abs < 1", "`abs` is a function: call it"),
        ("b'x' == result", "`b'x'` is not allowed: only numbers"),
        ("1j == result", "`1j` is not allowed: only numbers"),
        ("... == result", "`...` is not allowed: only numbers"),
        ("await result", "`await` is not allowed"),
        ("result <", "is not a valid expression"),
        ("import os", "is not a valid expression"),
        ("result = 1", "is not a valid expression"),
        ("a\x00", "is not a valid expression"),
        ("", "is empty"),
        ("  ", "is empty"),
        ("x" * (MAX_CONDITION_CHARS + 1), f"at most {MAX_CONDITION_CHARS}"),
        ("-" * 100 + "1", "nested too deeply"),
        ("(" * 210 + "1" + ")" * 210, "is not a valid expression"),
        ("(result\n < x._y)", "line 2, column 6"),
    ],
)
def test_refused_when_compiled(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_condition(text, path="analysis.templates[0].condition")
    problems = caught.value.problems
    assert problems
    assert any(message in p.message for p in problems), [p.message for p in problems]
    assert all(p.path == "analysis.templates[0].condition" for p in problems)


def test_every_problem_is_reported() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_condition("open(1) + x.__dict__ + 2 ** 3")
    assert len(caught.value.problems) == 3


@pytest.mark.parametrize(
    ("text", "variables", "message"),
    [
        ("result[1] < 1", {"result": [0.5]}, "result[1]: index out of range (result has 1 value)"),
        ("result[0] < 1", {"result": []}, "result[0]: index out of range (result has 0 values)"),
        ("result < 1", {}, "result: no value named result (known: no values given)"),
        ("resutl < 1", {"result": 1}, "resutl: no value named resutl (known: result)"),
        ("result / x > 1", {"result": 1, "x": 0}, "result / x: division by zero"),
        ("result % 0.0 > 1", {"result": 1}, "result % 0.0: division by zero"),
        (
            "canary.p95 < 1",
            {"canary": {"p50": 1}},
            "canary.p95: canary has no field p95 (fields: p50)",
        ),
        ("canary.p99 < 1", {"canary": BASELINE}, "canary.p99: canary has no field p99"),
        ("canary.reset == 1", {"canary": BASELINE}, "canary.reset: reset is not a value"),
        ("result.p95 < 1", {"result": 3}, "result.p95: result is a number, not a record"),
        ('result["p99"] < 1', {"result": {"p95": 1}}, "result[\"p99\"]: result has no key 'p99'"),
        ("result[0] < 1", {"result": 3}, "result[0]: result is a number, not a list"),
        (
            "canary.error_rate < 1",
            {"canary": Snapshot(p95=1)},
            "canary.error_rate < 1: cannot compare canary.error_rate: it is None (no value)",
        ),
        ("result < 1", {"result": [1, 2]}, "cannot compare result: it is a list of 2 values"),
        ("result + 1 > 1", {"result": None}, "result + 1: result is None (no value), not a number"),
        ("max(result) < 1", {"result": []}, "max(result): result has no values"),
        ("mean(result) < 1", {"result": [1, None]}, "mean(result): result[1] is None"),
        ("len(result) < 1", {"result": 1}, "len(result): result is a number, not a list"),
        ("result + 1", {"result": 1}, "result + 1: gave 2, not true or false"),
        ("result", {"result": [1]}, "result: gave [1], not true or false"),
        ("result * 1e308 > 1", {"result": 10**400}, "result * 1e308:"),
        (
            "result * result",
            {"result": 10**4000},
            "result * result: gave ~1e8000, not true or false",
        ),
    ],
)
def test_runtime_errors_are_condition_errors(
    text: str, variables: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(text).evaluate(variables)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        (
            "canary.p95 <= baseline.p95 * 1.2",
            {"canary": CANARY, "baseline": BASELINE},
            "0.31 <= 0.2 * 1.2 (0.24)",
        ),
        ("result[0] >= 0.95", {"result": [0.97]}, "0.97 >= 0.95"),
        ("max(result) < 2", {"result": [1, 3]}, "max([1, 3]) (3) < 2"),
        ("not (result >= 0.5)", {"result": 0.4}, "not (0.4 >= 0.5)"),
        ("result > 0 and result < 5", {"result": 3}, "3 > 0 and 3 < 5"),
        ("(a + b) * 2 > -c", {"a": 1, "b": 2, "c": -1}, "(1 + 2) * 2 (6) > -(-1) (1)"),
        ("result < 1", {}, "result < 1"),
        ("a < b", {"a": 10**20, "b": -(10**400)}, "1e+20 < -~1e400"),
        (
            "a * a * a * a * a * a * a * a * a * a * a < 1",
            {"a": 10**400},
            " * ".join(["~1e400"] * 11) + " (~1e4400) < 1",
        ),
        ("len(result) > 9", {"result": list(range(7))}, "len([0, 1, 2, 3, 4, … 7 values]) (7) > 9"),
    ],
)
def test_describe_substitutes_values(text: str, variables: dict[str, Any], expected: str) -> None:
    assert describe(compile_condition(text), variables) == expected


TEXT_PIECES = [
    *"()[]{}.,:;+-*/%<>=!~&|^@'\"\\ \n\t0123456789abcrx_",
    "result",
    "canary.p95",
    "__class__",
    " and ",
    " or ",
    "not ",
    "lambda",
    "for",
    "in",
    "**",
    "//",
    ":=",
    "f'",
    "max(",
    "mean(",
    "open(",
    "1e400",
    "\x00",
    "\ud800",
    "é",
]


@FUZZ
@given(st.one_of(st.text(max_size=80), st.lists(st.sampled_from(TEXT_PIECES), max_size=40)))
def test_any_text_compiles_or_is_a_config_error(text: str | list[str]) -> None:
    source = text if isinstance(text, str) else "".join(text)
    try:
        condition = compile_condition(source)
    except ConfigError as exc:
        problems = exc.problems
    else:
        assert isinstance(condition, Condition)
        return
    assert problems, "a refused condition says why"


def _expressions() -> st.SearchStrategy[str]:
    leaves = st.one_of(
        st.sampled_from(["a", "b", "result", "rec.p95", "rec.missing", 'rec["p95"]', "None"]),
        st.sampled_from(["result[0]", "result[-1]", "result[5]", "True", "0", "0.0"]),
        st.integers(-(10**30), 10**30).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
    )

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binary = st.tuples(
            inner,
            st.sampled_from(["+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!="]),
            inner,
        ).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
        logic = st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        )
        unary = st.tuples(st.sampled_from(["-", "+", "not "]), inner).map(
            lambda t: f"({t[0]}{t[1]})"
        )
        calls = st.tuples(
            st.sampled_from(["abs", "len", "sum", "all", "any", "mean", "isnan", "min", "max"]),
            inner,
        ).map(lambda t: f"{t[0]}({t[1]})")
        pairs = st.tuples(st.sampled_from(["min", "max"]), inner, inner).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        )
        return st.one_of(binary, logic, unary, calls, pairs)

    return st.recursive(leaves, extend, max_leaves=12)


NUMBERS = st.one_of(st.integers(-(10**400), 10**400), st.floats(), st.none(), st.booleans())
VALUES = st.one_of(
    NUMBERS,
    st.lists(NUMBERS, max_size=4),
    st.dictionaries(st.sampled_from(["p95", "other"]), NUMBERS, max_size=2),
    st.builds(Snapshot, p95=st.floats(), error_rate=st.none() | st.floats()),
    st.text(max_size=3),
)


@FUZZ
@given(_expressions(), st.dictionaries(st.sampled_from(["a", "b", "result", "rec"]), VALUES))
def test_valid_conditions_only_raise_condition_errors(text: str, variables: dict[str, Any]) -> None:
    condition = compile_condition(text)
    try:
        assert isinstance(condition.evaluate(variables), bool)
    except ConditionError as exc:
        message = exc.message
    else:
        message = "evaluated"
    assert message
    assert isinstance(describe(condition, variables), str)
