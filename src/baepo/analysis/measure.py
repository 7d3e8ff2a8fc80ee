"""What a metric provider is: one measurement of one metric, for one revision, at a time.

A provider (``baepo.providers``: builtin, prometheus, web, job) implements
:class:`MetricProvider`. The analysis engine calls ``measure`` at each of a metric's
intervals and judges the returned :class:`Measured` with the metric's conditions: ``result``
is ``Measured.value``, and every entry of ``Measured.variables`` is a name the conditions can
use too (the builtin provider adds ``canary`` and ``baseline``). A measurement that cannot be
taken raises :class:`MeasurementError`; the engine records it as an ``error`` measurement,
never as a pass.

Callers: providers (implement), the analysis engine (call), tests.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from baepo.errors import BaepoError
from baepo.spec.analysis import MetricSpec

__all__ = ["MeasureContext", "Measured", "MeasurementError", "MetricProvider", "render"]


class MeasurementError(BaepoError):
    """A measurement could not be taken: the source is down, timed out, or gave no data.

    The message says what failed in plain words (it is shown in ``baepo analysis``) and never
    contains a secret such as a header value.
    """


@dataclass(frozen=True)
class MeasureContext:
    """What a measurement is about.

    ``revision`` is the revision under analysis (the canary, the blue-green preview or the
    newly promoted side); ``baseline`` the stable revision it is compared with, None when
    there is none. ``window`` is how far back a rate or percentile looks, in seconds (the
    metric's interval). ``args`` are the template's named values, already resolved.
    ``spec_dir`` is the folder relative paths (a job's command) are resolved against;
    ``user`` the spec's ``run.user``, the account a job's command runs as.
    """

    app: str
    env: str
    revision: int
    baseline: int | None
    window: float
    started_at: datetime
    args: Mapping[str, str] = field(default_factory=dict)
    spec_dir: str = "."
    user: str | None = None
    allowed_env: frozenset[str] = frozenset()
    """The server variables ``{{env.NAME}}`` may name (an admin allows them by name)."""

    def placeholders(self) -> dict[str, str]:
        """The values ``{{name}}`` placeholders in queries, URLs and commands are replaced by."""
        values = {
            "app": self.app,
            "env": self.env,
            "revision": str(self.revision),
            "baseline": "" if self.baseline is None else str(self.baseline),
            "stable_revision": "" if self.baseline is None else str(self.baseline),
            "window": f"{max(1, round(self.window))}s",
        }
        values.update({f"args.{name}": value for name, value in self.args.items()})
        return values


@dataclass(frozen=True)
class Measured:
    """One measurement's outcome. ``value`` is what conditions call ``result``: a number, a
    list of numbers, a mapping or a bool. ``output`` is text kept for people (a job's output,
    trimmed). ``variables`` are further names for the conditions."""

    value: Any
    variables: Mapping[str, Any] = field(default_factory=dict)
    output: str = ""


class MetricProvider(Protocol):
    """A source of measurements. ``kind`` is the spec's ``provider:`` value."""

    kind: str

    async def measure(self, metric: MetricSpec, context: MeasureContext) -> Measured:
        """Take one measurement of ``metric`` for ``context.revision``.

        Returns within the metric's own timeout (web, job) or about 10 s; raises
        MeasurementError when the measurement cannot be taken. Never blocks the event loop.
        """
        ...


_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*\}\}")


def render(text: str, context: MeasureContext) -> str:
    """``text`` with each ``{{name}}`` replaced by its value from ``context.placeholders()``,
    and ``{{env.NAME}}`` by the server's environment variable NAME (for secrets such as a
    header's token, which must not be written in the spec: the spec is stored and shown).

    Raises MeasurementError naming an unknown placeholder and listing the known ones.
    """
    values = context.placeholders()

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("env."):
            if name[4:] not in context.allowed_env:
                raise MeasurementError(
                    f"the server does not allow specs to read its environment variable "
                    f"{name[4:]} (baepo server start --allow-secret-env {name[4:]})"
                )
            found = os.environ.get(name[4:])
            if found is None:
                raise MeasurementError(f"the server has no environment variable {name[4:]}")
            return found
        if name not in values:
            known = ", ".join(sorted(values))
            raise MeasurementError(f"unknown placeholder {{{{{name}}}}}; known: {known}")
        return values[name]

    return _PLACEHOLDER.sub(substitute, text)
