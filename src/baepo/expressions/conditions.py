"""Analysis conditions: ``canary.p95 <= baseline.p95 * 1.2`` compiled once, evaluated safely.

``compile_condition`` parses a condition with :mod:`ast` and accepts only the whitelist of
``analysis.grammar`` (numbers, names, fields, constant indexes, ``+ - * / %``, comparisons,
``and``/``or``/``not`` and a few pure functions), so a bad condition is a
:class:`~baepo.errors.ConfigError` when the spec is loaded. ``Condition.evaluate`` walks the tree
(no ``eval``); a failure with the values at hand is a :class:`ConditionError`. ``describe``
renders a condition with its values for verdict reasons.

Callers: the analysis engine (evaluate, describe) and the spec's analysis templates (compile).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from baepo.expressions import grammar
from baepo.expressions.evaluation import ConditionError, Evaluator, is_list, is_number

__all__ = ["Condition", "ConditionError", "compile_condition", "describe"]

_LIST_SHOWN = 5
_INT_DIGITS_SHOWN = 16


@dataclass(frozen=True)
class Condition:
    """A checked condition. Build it with :func:`compile_condition`."""

    text: str
    names: frozenset[str]
    tree: ast.Expression = field(repr=False, compare=False)

    def evaluate(self, variables: Mapping[str, Any]) -> bool:
        """Whether the condition holds for ``variables``; a ConditionError when it cannot be
        told (a missing value, an index out of range, division by zero, a non-bool result)."""
        evaluator = Evaluator(self.text, variables)
        result = evaluator.value(self.tree.body)
        if not isinstance(result, bool):
            raise ConditionError(
                f"{self.text}: gave {_format(result)}, not true or false; "
                f"compare it, e.g. `{self.text} > 0`"
            )
        return result


def compile_condition(text: str, *, path: str = "") -> Condition:
    """The :class:`Condition` written in ``text``, or a ConfigError whose problems say what is
    not allowed and at which column. ``path`` is the spec key the text came from."""
    tree = grammar.parse(text, path)
    return Condition(text=text.strip(), names=grammar.free_names(tree), tree=tree)


def describe(condition: Condition, variables: Mapping[str, Any]) -> str:
    """``condition`` with its values in place of names, and computed sides of a comparison
    followed by their value: ``0.31 <= 0.2 * 1.2 (0.24)``. Never raises: a value that cannot
    be computed is left as written."""
    return _Renderer(Evaluator(condition.text, variables)).render(condition.tree.body)[0]


# Binding strength, as in Python: a child binding less tightly than its parent needs ().
_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _UNARY, _ATOM = range(1, 9)


class _Renderer:
    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    def render(self, node: ast.expr) -> tuple[str, int]:
        """The text of ``node`` with values substituted, and how tightly it binds."""
        if _is_reference(node):
            try:
                value = self.evaluator.value(node)
            except ConditionError:
                return self.evaluator.source(node), _ATOM
            text = _format(value)
            return text, _UNARY if text.startswith("-") else _ATOM
        if isinstance(node, ast.BoolOp):
            strength = _AND if isinstance(node.op, ast.And) else _OR
            word = " and " if strength == _AND else " or "
            return word.join(self.child(v, strength + 1) for v in node.values), strength
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return "not " + self.child(node.operand, _ATOM), _NOT
        if isinstance(node, ast.UnaryOp):
            sign = "-" if isinstance(node.op, ast.USub) else "+"
            return sign + self.child(node.operand, _UNARY + 1), _UNARY
        if isinstance(node, ast.BinOp):
            strength = _SUM if isinstance(node.op, ast.Add | ast.Sub) else _PRODUCT
            symbol = grammar.BIN_OPS[type(node.op)]
            left = self.child(node.left, strength)
            right = self.child(node.right, strength + 1)
            return f"{left} {symbol} {right}", strength
        if isinstance(node, ast.Compare):
            parts = [self.side(node.left)]
            for op, operand in zip(node.ops, node.comparators, strict=True):
                parts += [grammar.COMPARE_OPS[type(op)], self.side(operand)]
            return " ".join(parts), _COMPARE
        if isinstance(node, ast.Call):
            args = ", ".join(self.child(a, _OR) for a in node.args)
            return f"{self.evaluator.source(node.func)}({args})", _ATOM
        return self.evaluator.source(node), _ATOM

    def child(self, node: ast.expr, least: int) -> str:
        text, strength = self.render(node)
        return text if strength >= least else f"({text})"

    def side(self, node: ast.expr) -> str:
        """One side of a comparison; a computed side is followed by its value."""
        text = self.child(node, _COMPARE + 1)
        if isinstance(node, ast.Constant) or _is_reference(node):
            return text
        try:
            return f"{text} ({_format(self.evaluator.value(node))})"
        except ConditionError:
            return text


def _is_reference(node: ast.expr) -> bool:
    """A variable, or a field or index of one: shown as its value."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return isinstance(node, ast.Name)


def _format(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if is_number(value):
        return str(value) if abs(value) < 10**_INT_DIGITS_SHOWN else _format_large(value)
    if is_list(value):
        shown = [_format(v) for v in value[:_LIST_SHOWN]]
        if len(value) > _LIST_SHOWN:
            shown.append(f"… {len(value)} values")
        return "[" + ", ".join(shown) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_format(v)}" for k, v in list(value.items())[:5]) + "}"
    return f"<{type(value).__name__}>"


def _format_large(value: int) -> str:
    """A whole number too long to show in full (``str`` refuses past 4300 digits)."""
    try:
        return f"{float(value):.6g}"
    except OverflowError:
        return f"{'-' if value < 0 else ''}~1e{int(math.log10(abs(value)))}"
