"""The plugin registry: maps platform and router kinds to their classes.

An unknown kind is a ConfigError that lists the known ones. Callers: ``api.server``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from baepo.core.ports import Platform, Router
from baepo.errors import ConfigError, Problem
from baepo.platforms.local.platform import LocalPlatform
from baepo.routers.builtin.adapter import BuiltinRouter

PLATFORMS: dict[str, Callable[[Path], Platform]] = {"local": LocalPlatform}
ROUTERS: dict[str, Callable[[Path], Router]] = {"builtin": BuiltinRouter}

T = TypeVar("T")


def _pick(table: dict[str, Callable[[Path], T]], kind: str, what: str) -> Callable[[Path], T]:
    if kind not in table:
        known = ", ".join(sorted(table))
        raise ConfigError(
            f"unknown {what} kind {kind!r}",
            problems=[Problem(what, f"unknown kind {kind!r}; known kinds: {known}")],
        )
    return table[kind]


def make_platform(kind: str, state_dir: Path) -> Platform:
    return _pick(PLATFORMS, kind, "platform")(state_dir)


def make_router(kind: str, state_dir: Path) -> Router:
    return _pick(ROUTERS, kind, "router")(state_dir)
