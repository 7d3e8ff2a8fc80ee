"""The base of every spec section, and value checks shared by several sections.

Callers: ``spec.models`` and ``spec.strategies``; the API's request bodies (``Line``, ``Text``).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from baepo.spec.text import control_problem

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


def check_line(value: str) -> str:
    """``value`` if it is one line without control characters, else a ValueError."""
    problem = control_problem(value, one_line=True)
    if problem is not None:
        raise ValueError(problem)
    return value


def check_text(value: str) -> str:
    """``value`` if it has no control characters but tabs and newlines, else a ValueError."""
    problem = control_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Line = Annotated[str, AfterValidator(check_line)]
"""A one-line string: no control characters, tabs or newlines (a version, an actor)."""

Text = Annotated[str, AfterValidator(check_text)]
"""A string that may hold tabs and newlines but no other control characters (a message)."""
