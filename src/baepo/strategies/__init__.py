"""Strategies: pure planners from (spec, status, observation, now) to the next actions."""
