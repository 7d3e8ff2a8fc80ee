"""Gates of a release: checks, hooks, migrations and backups, each run and recorded.

Callers: the controller (automatic gates of a rollout) and the API (runs asked for by hand).
"""
