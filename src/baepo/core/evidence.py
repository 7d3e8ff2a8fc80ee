"""Evidence of a failed start: an instance's last output lines, made safe to show anywhere.

The last lines a program printed before it exited are the best clue to why it failed (a
``ModuleNotFoundError``, "address already in use"). Before they leave the machine they ran on
they are bounded (``TAIL_LINES`` lines of at most ``LINE_CHARS`` characters), stripped of
terminal escapes and control characters (they end up in terminals and the dashboard) and
redacted (the instance's secret values become ``***``), as ``core.causes`` does for a gate's
output. Pure and stdlib only. Callers: the local instance supervisor
(``platforms.local.supervisor``) and the failure causes of ``strategies.rollout``; the hosts
agent, which cannot import baepo, does the same in its own few lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from baepo.core import causes

TAIL_LINES = 20
LINE_CHARS = causes.EVIDENCE_WIDTH
MIN_SECRET = 4  # shorter values are not blanked: that would blank ordinary words
_PORT_CONFLICT_RE = re.compile(
    # Python, Node.js, Go, Java, nginx, HAProxy ("Address already in use"), gunicorn
    # ("Connection in use"), baepo's router ("port 8080 is already in use").
    r"address already in use|eaddrinuse|errno 98\b|\] connection in use:"
    r"|port \d+ is already in use",
    re.IGNORECASE,
)


def output_tail(
    lines: Iterable[str], secrets: Iterable[str] = (), count: int = TAIL_LINES
) -> tuple[str, ...]:
    """The last ``count`` non-blank lines of ``lines`` as evidence (``core.causes.output_tail``:
    secrets blanked, terminal escapes and control characters gone, lines cut to 300
    characters). Secret values shorter than ``MIN_SECRET`` are left: blanking them would
    blank ordinary words."""
    text = "\n".join(line.rstrip("\r\n") for line in lines)
    hidden = [secret for secret in secrets if len(secret) >= MIN_SECRET]
    return tuple(causes.output_tail(text, hidden, count)) if count > 0 else ()


def port_conflict(lines: Iterable[str]) -> bool:
    """Whether a program's output says the address it tried to listen on is taken."""
    return any(_PORT_CONFLICT_RE.search(line) for line in lines)
