"""Metric analysis: templates compiled from the spec, judged against their conditions.

The condition language itself lives in ``baepo.expressions``. Callers: the analysis engine.
"""
