"""Compile the conditions of the spec's analysis templates, each reported at its key path.

The spec layer sits below ``analysis`` and cannot compile conditions itself, so this runs when
a spec is put to use: a bad condition is a ConfigError whose problems name
``analysis.NAME.metrics[N].success_condition`` (or ``failure_condition``).

Callers: the analysis engine and commands that check a spec before a release.
"""

from __future__ import annotations

from collections.abc import Mapping

from baepo.errors import ConfigError, Problem
from baepo.expressions.conditions import Condition, compile_condition
from baepo.spec.analysis import AnalysisTemplateSpec

ConditionPair = tuple[Condition | None, Condition | None]


def compile_templates(
    templates: Mapping[str, AnalysisTemplateSpec],
) -> dict[tuple[str, str], ConditionPair]:
    """``(success, failure)`` conditions per ``(template, metric)``; every bad one is a problem."""
    compiled: dict[tuple[str, str], ConditionPair] = {}
    problems: list[Problem] = []
    for name, template in templates.items():
        for index, metric in enumerate(template.metrics):
            pair: list[Condition | None] = []
            for key in ("success_condition", "failure_condition"):
                text: str | None = getattr(metric, key)
                path = f"analysis.{name}.metrics[{index}].{key}"
                try:
                    pair.append(None if text is None else compile_condition(text, path=path))
                except ConfigError as exc:
                    problems += exc.problems or [Problem(path, exc.message)]
                    pair.append(None)
            compiled[name, metric.name] = (pair[0], pair[1])
    if problems:
        noun = "condition" if len(problems) == 1 else "conditions"
        raise ConfigError(f"invalid analysis {noun}", problems=problems)
    return compiled
