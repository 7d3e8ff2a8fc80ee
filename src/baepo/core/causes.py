"""Failure causes in words: the label of each kind, the causes people and gates give, and
evidence lines cut from a command's output.

Every surface (``baepo status``, ``history``, the dashboard, notifications, ``baepo report``)
shows a cause as ``<label>: <summary>`` followed by its evidence lines, with the labels of
:data:`LABELS`, so a cause reads the same everywhere. Pure and light (the CLI imports it).
Callers: ``controller.operations``, ``controller.gates``, ``controller.reconciler``,
``strategies.rollout``, ``cli.render``, ``web.pages``, ``notify.messages``, ``core.kpi``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from baepo.core.model import Cause, CauseKind

LABELS: dict[str, str] = {
    CauseKind.START_FAILED: "start failed",
    CauseKind.NEVER_READY: "never ready",
    CauseKind.PORT_CONFLICT: "port conflict",
    CauseKind.CRASH_LOOP: "crash loop",
    CauseKind.ROLLBACK_GUARD: "rollback guard",
    CauseKind.ANALYSIS: "analysis",
    CauseKind.GATE: "gate, hook or migration",
    CauseKind.DEADLINE: "deadline",
    CauseKind.INFRASTRUCTURE: "infrastructure",
    CauseKind.ABORTED: "stopped by a person",
    CauseKind.SUPERSEDED: "superseded",
}
"""The words for each kind, on every surface (keys are the kinds' values)."""

MASK = "***"
EVIDENCE_LINES = 10  # the last lines of an output kept as evidence
EVIDENCE_WIDTH = 300  # characters per evidence line, the rest cut off
_CONTROL = re.compile(
    "\x1b\\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)  # terminal escapes first, then single control and direction characters


def label(kind: str) -> str:
    """The words for ``kind`` (a kind this version does not know reads as itself)."""
    return LABELS.get(kind, kind.replace("_", " "))


def headline(cause: Mapping[str, Any]) -> str:
    """``<label>: <summary>`` of a cause as the API shows it (``Cause.to_json``)."""
    return f"{label(str(cause.get('kind', '')))}: {cause.get('summary', '')}"


def redact(text: str, hidden: Iterable[str]) -> str:
    """``text`` with every value of ``hidden`` (longest first) replaced by ``***``."""
    for value in sorted((v for v in hidden if v), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def output_tail(output: str, hidden: Iterable[str] = (), lines: int = EVIDENCE_LINES) -> list[str]:
    """The last ``lines`` non-blank lines of a command's output as evidence: secrets in
    ``hidden`` replaced by ``***``, terminal escapes and control characters removed, each line
    cut to :data:`EVIDENCE_WIDTH` characters."""
    clean = _CONTROL.sub("", redact(output, hidden).replace("\t", " "))
    kept = [line.rstrip() for line in clean.splitlines() if line.strip()][-lines:]
    return [
        line if len(line) <= EVIDENCE_WIDTH else line[: EVIDENCE_WIDTH - 1] + "…" for line in kept
    ]


def by_person(actor: str, action: str, said: str = "") -> Cause:
    """A person ended the rollout (``action``: what they ran), with what they said."""
    evidence = [f"by {actor}", f"with {action}"]
    if said.strip():
        evidence.append(f"said: {said.strip()}")
    return Cause(CauseKind.ABORTED, f"{action} by {actor}", tuple(evidence))


def superseded(actor: str, revision: int, version: str) -> Cause:
    """A newer deploy (``revision``) replaced the rollout before it finished."""
    return Cause(
        CauseKind.SUPERSEDED,
        f"replaced by revision {revision} ({version}), deployed by {actor}",
        (f"by {actor}", f"with baepo deploy --supersede (revision {revision}, {version})"),
    )


def gate_failed(
    kind: str,
    stage: str,
    name: str,
    message: str,
    exit_code: int | None,
    output: str,
    hidden: Iterable[str] = (),
) -> Cause:
    """A gate (check, hook, backup, migration) failed: its name, exit code and last lines."""
    hidden = list(hidden)
    what = f"{kind} {name!r} ({stage})"
    evidence = [f"{what}: {redact(message, hidden)}"]
    if exit_code is not None:
        evidence.append(f"exit code {exit_code}")
    tail = output_tail(output, hidden)
    if tail:
        evidence.append(f"last {len(tail)} line(s) of its output:")
        evidence += [f"  {line}" for line in tail]
    return Cause(CauseKind.GATE, f"{what} failed: {redact(message, hidden)}", tuple(evidence))


def infrastructure(summary: str, *evidence: str) -> Cause:
    """The router, the platform, a host or the store failed the rollout."""
    return Cause(CauseKind.INFRASTRUCTURE, summary, tuple(evidence))
