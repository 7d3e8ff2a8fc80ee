"""Free text users give baepo: versions, messages, reasons, names.

Such text ends up in terminals, the dashboard, notifications and logs, so control characters
(C0 and C1, DEL) and Unicode direction embeddings, overrides and isolates (U+202A to U+202E,
U+2066 to U+2069) are refused where it enters: an escape sequence in a version would recolour
or rewrite other users' terminals, and a direction override makes ``1.0.1`` read as something
else. The left-to-right and right-to-left marks (U+200E, U+200F) stay allowed for text in
right-to-left scripts. Tab and newline are allowed in text (messages,
reasons); a line (a version, an actor, a name) takes neither.

Pure and light (no pydantic), so the CLI can check its options with it. Callers:
``spec.loader`` (every string of a spec), ``spec.base`` (the ``Line`` and ``Text`` types of
spec fields and API bodies), ``cli.context`` (options).
"""

from __future__ import annotations

import re
import unicodedata

_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAK_RE = re.compile("[\t\n]")


def control_problem(text: str, *, one_line: bool = False) -> str | None:
    """What is wrong with ``text`` as user text, or None when nothing is. Pure.

    ``one_line``: tab and newline are refused too.
    """
    found = _CONTROL_RE.search(text) or (_LINE_BREAK_RE.search(text) if one_line else None)
    if found is None:
        return None
    char = found.group()
    name = unicodedata.name(char, "")
    where = (
        f"U+{ord(char):04X}{f' {name.lower()}' if name else ''} at character {found.start() + 1}"
    )
    if char in "\t\n":
        return f"must be one line, without tabs or newlines ({where})"
    return f"contains a control character ({where}); remove it"
