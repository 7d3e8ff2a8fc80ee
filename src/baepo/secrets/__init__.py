"""Secrets: encryption at rest with a key kept outside the database, and resolution of an
instance's secret environment variables.

Callers: the controller (starting instances) and the API (``baepo secret``).
"""
