"""Metric analysis: judging measurements against conditions written in the spec.

``analysis.conditions`` is the public surface of the condition language
(``compile_condition``, ``Condition``, ``ConditionError``, ``describe``). Callers: the analysis
engine and the spec's analysis templates.
"""
