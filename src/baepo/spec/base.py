"""The base of every spec section, and value checks shared by several sections.

Callers: ``spec.models`` and ``spec.strategies``.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

LISTEN_RE = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+):(?P<port>\d{1,5})$")


class SpecModel(BaseModel):
    """Base for every spec section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def check_listen(value: str) -> str:
    """A ``host:port`` listen address, or a ValueError saying what is expected."""
    match = LISTEN_RE.match(value)
    if not match or not 0 < int(match.group("port")) < 65536:
        raise ValueError("expected host:port, e.g. 127.0.0.1:8080")
    return value
