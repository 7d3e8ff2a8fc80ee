"""Sticky sessions and header routes in HAProxy, as pure functions of a routing table's rules.

The semantics are the built-in router's (``core.ports.Sticky``, ``core.ports.HeaderRoute``,
``routers.builtin.rules``); only the means differ. With rules, the configuration gains one
backend per revision, ``baepo_r<N>``, holding that revision's servers at equal weights, and
frontend rules that pick one of them into ``txn.baepo_be`` before the weighted backend ``app``:

- a header route (in the table's order, the first match wins) names its revision's backend
  when the header (any case, any occurrence) equals the value exactly and the backend has a
  usable server (``nbsrv``), so a revision without ready servers is skipped;
- otherwise a sticky bucket 0..99 (a valid ``NAME=<0..99>`` cookie, or ``crc32`` of the
  header's first value, the same hash as the built-in router) is looked up in the bucket map
  (``buckets.map``: bucket -> backend), whose contiguous ranges are the built-in router's
  ``bucket_ranges``, newest revision first;
- a cookie client without a bucket that leads anywhere draws one (``rand(100)``), which picks
  its revision by the same map (so shares follow the weights to 1 %) and is set as the cookie
  on the answer; a header-sticky request without the header takes the weighted ``app``.

Weights move buckets: the adapter rewrites the map at runtime (``prepare``/``commit map``,
atomic); only new rules or a revision without a backend need a new configuration. Callers:
``render.render`` and ``adapter.HAProxyRouter``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from baepo.core.ports import Backend, HeaderRoute, Sticky
from baepo.errors import ConfigError, Problem
from baepo.routers.builtin import rules as builtin_rules
from baepo.routers.builtin import table as builtin_table

BUCKETS = builtin_rules.BUCKETS
MAP_FILE = "buckets.map"
# Names HAProxy reads as one word inside a fetch's parentheses, with no quoting.
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_BACKEND_PREFIX = "baepo_r"


@dataclass(frozen=True)
class Rules:
    """The rules in force and the revisions that have a backend of their own."""

    sticky: Sticky | None
    header_routes: tuple[HeaderRoute, ...]
    revisions: tuple[int, ...]
    map_file: Path

    def to_json(self) -> dict[str, object]:
        return {
            "sticky": _sticky_json(self.sticky),
            "header_routes": [[r.header, r.value, r.revision] for r in self.header_routes],
            "revisions": list(self.revisions),
        }


def backend_name(revision: int) -> str:
    """``baepo_r3``: the backend of revision 3's servers (as named in the bucket map)."""
    return f"{_BACKEND_PREFIX}{revision}"


def validate(
    backends: Sequence[Backend], sticky: Sticky | None, header_routes: Sequence[HeaderRoute]
) -> None:
    """Raise ConfigError naming the field when the rules are invalid (as the built-in router
    judges them) or name a cookie or header HAProxy cannot read unquoted."""
    problems: list[Problem] = []
    try:
        if sticky is not None:
            fields = {"cookie": sticky.cookie, "header": sticky.header}
            builtin_table.parse_sticky({k: v for k, v in fields.items() if v is not None})
        builtin_table.parse_header_routes(
            [{"header": r.header, "value": r.value, "revision": r.revision} for r in header_routes],
            {b.revision for b in backends},
        )
    except builtin_table.TableError as exc:
        path, _, reason = str(exc).partition(": ")
        problems.append(Problem(path, reason))
    names = [(f"header_routes[{i}].header", r.header) for i, r in enumerate(header_routes)]
    if sticky is not None:
        names.append(("sticky.cookie", sticky.cookie) if sticky.cookie else
                      ("sticky.header", sticky.header or ""))  # fmt: skip
    for path, name in names:
        if not NAME_RE.fullmatch(name) and not any(p.path == path for p in problems):
            problems.append(
                Problem(
                    path,
                    f"{name!r}: the haproxy router reads names of letters, digits, "
                    "'-', '_' and '.'",
                )
            )
    if problems:
        raise ConfigError("the haproxy router cannot serve these routing rules", problems=problems)


def bucket_map(backends: Sequence[Backend]) -> dict[int, str]:
    """``{bucket: backend}`` for every owned bucket: revisions with weight > 0 and ready
    upstreams own contiguous ranges, newest first (``builtin.rules.bucket_ranges``)."""
    ranges = builtin_rules.bucket_ranges(
        [(b.revision, b.weight if b.upstreams else 0) for b in backends]
    )
    return {
        bucket: backend_name(revision)
        for revision, (first, end) in ranges.items()
        for bucket in range(first, end)
    }


def render_map(entries: dict[int, str]) -> str:
    """The bucket map file: ``<bucket> <backend>`` lines."""
    return "".join(f"{bucket} {name}\n" for bucket, name in sorted(entries.items()))


def map_commands(map_file: Path, version: str, entries: dict[int, str]) -> list[str]:
    """Admin commands that fill map version ``version`` and commit it (one atomic swap)."""
    out = [f"add map @{version} {map_file} {b} {n}" for b, n in sorted(entries.items())]
    out.append(f"commit map @{version} {map_file}")
    return out


def quote(text: str) -> str:
    """``text`` as one double-quoted HAProxy word (``\\``, ``"`` and ``$`` escaped)."""
    return '"' + re.sub(r'(["\\$])', r"\\\1", text) + '"'


def frontend(rules: Rules) -> list[str]:
    """The frontend's lines that choose ``txn.baepo_be`` (and the cookie to set)."""
    unset = "!{ var(txn.baepo_be) -m found }"
    lines: list[str] = []
    for route in rules.header_routes:
        target = backend_name(route.revision)
        lines.append(
            f"    http-request set-var(txn.baepo_be) str({target}) if {unset} "
            f"{{ req.fhdr({route.header}) -m str {quote(route.value)} }} "
            f"{{ nbsrv({target}) gt 0 }}"
        )
    sticky = rules.sticky
    lookup = f"map_int({rules.map_file})"
    if sticky is not None and sticky.cookie is not None:
        cookie = f"req.cook({sticky.cookie})"
        lines += [
            f"    http-request set-var(txn.baepo_be) {cookie},{lookup} if {unset} "
            f"{{ {cookie} -m reg ^[0-9]{{1,2}}$ }}",
            f"    http-request set-var(txn.baepo_new) rand({BUCKETS}) if {unset}",
            f"    http-request set-var(txn.baepo_be) var(txn.baepo_new),{lookup} if {unset} "
            "{ var(txn.baepo_new) -m found }",
            f"    http-request unset-var(txn.baepo_new) if {unset}",
            "    http-response add-header Set-Cookie "
            + quote(f"{sticky.cookie}=%[var(txn.baepo_new)]; Path=/; HttpOnly; SameSite=Lax")
            + " if { var(txn.baepo_new) -m found }",
        ]
    elif sticky is not None and sticky.header is not None:
        value = f"req.fhdr({sticky.header},1)"
        lines.append(
            f"    http-request set-var(txn.baepo_be) {value},crc32,mod({BUCKETS}),{lookup} "
            f"if {unset} {{ {value} -m found }}"
        )
    lines.append("    use_backend %[var(txn.baepo_be)] if { var(txn.baepo_be) -m found }")
    return lines


def _sticky_json(sticky: Sticky | None) -> dict[str, str] | None:
    if sticky is None:
        return None
    return (
        {"cookie": sticky.cookie} if sticky.cookie is not None else {"header": sticky.header or ""}
    )
