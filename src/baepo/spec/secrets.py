"""Where an instance's secret environment variables come from.

Callers: ``spec.models`` (the ``secrets`` field); the controller resolves them when it starts
an instance.
"""

from __future__ import annotations

from pydantic import Field

from baepo.spec.base import SpecModel


class SecretSource(SpecModel):
    """One of: a secret stored with `baepo secret set`, an environment variable of the
    server, or a file."""

    secret: str | None = Field(default=None, description="The name of a stored secret.")
    env: str | None = Field(
        default=None, description="An environment variable of the baepo server."
    )
    file: str | None = Field(
        default=None, description="A file whose content (without a final newline) is the value."
    )


SecretValue = str | SecretSource
"""A bare string names a stored secret."""
