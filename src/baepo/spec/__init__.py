"""The user-facing spec: models, loading with located errors, JSON Schema.

Callers: the CLI (validate, deploy), the API (deploy bodies), the controller (resolved config).
"""
