"""Environment overlays: merge ``environments.<name>`` of a raw spec mapping over its base.

Merge rules, applied to the raw YAML mapping before model validation:

- mappings merge key by key, recursively (``run.env`` gains or changes single variables);
- lists and scalars replace the base value;
- ``strategy`` replaces the base strategy as a whole, so kinds never mix;
- ``null`` removes the key, so the model's default applies again;
- an environment that ``environments:`` does not name gets the base unchanged.

A mapping resolved for an environment keeps no ``environments`` or ``default_env``: a revision's
config then depends only on its own environment's settings, so editing another environment's
overlay does not make a new revision here. Resolving for ``None`` returns the base as written.

The functions are pure: no I/O, inputs are never modified.
Callers: ``spec.loader`` (``parse_spec(..., env=)``), ``cli.spec_commands`` (``config show``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENVIRONMENTS_KEY = "environments"
DEFAULT_ENV_KEY = "default_env"
# Keys an overlay may not set: the overlay list itself, and the app's identity.
FIXED_KEYS = (ENVIRONMENTS_KEY, DEFAULT_ENV_KEY, "app")
# Top-level keys an overlay replaces as a whole instead of merging into.
REPLACED_KEYS = ("strategy",)

Loc = tuple[str, ...]


@dataclass(frozen=True)
class Resolved:
    """A merged spec mapping and, for each key path the overlay set or removed, its origin."""

    data: dict[str, Any]
    origins: dict[Loc, str] = field(default_factory=dict)

    @property
    def sources(self) -> dict[str, str]:
        """Dotted key path (``run.env.LOG_LEVEL``) to origin (``environments.production``)."""
        return {".".join(loc): origin for loc, origin in sorted(self.origins.items())}

    def origin_of(self, loc: tuple[int | str, ...]) -> Loc | None:
        """The overlay-set key path that ``loc`` lies in, or None when it comes from the base."""
        for end in range(len(loc), 0, -1):
            prefix = tuple(str(part) for part in loc[:end])
            if prefix in self.origins:
                return prefix
        return None


def environment_names(raw: Mapping[str, Any]) -> list[str]:
    """The names under ``environments:`` (empty when it is missing or not a mapping)."""
    envs = raw.get(ENVIRONMENTS_KEY)
    return [name for name in envs if isinstance(name, str)] if isinstance(envs, dict) else []


def overlay_of(raw: Mapping[str, Any], env: str | None) -> Mapping[str, Any] | None:
    """The overlay mapping for ``env``, or None when there is none (or it is not a mapping)."""
    envs = raw.get(ENVIRONMENTS_KEY)
    if env is None or not isinstance(envs, dict):
        return None
    overlay = envs.get(env)
    return overlay if isinstance(overlay, dict) else None


def resolve(raw: Mapping[str, Any], env: str | None) -> dict[str, Any]:
    """The spec mapping for ``env``: the base with that environment's overlay merged in and the
    overlays themselves left out; for ``None``, the base as written."""
    return resolve_with_origins(raw, env).data


def resolve_with_origins(raw: Mapping[str, Any], env: str | None) -> Resolved:
    """Like :func:`resolve`, also recording which key paths the overlay set or removed."""
    base = copy.deepcopy(dict(raw))
    if env is not None:
        base.pop(ENVIRONMENTS_KEY, None)
        base.pop(DEFAULT_ENV_KEY, None)
    overlay = overlay_of(raw, env)
    if overlay is None:
        return Resolved(base)
    origins: dict[Loc, str] = {}
    origin = f"{ENVIRONMENTS_KEY}.{env}"
    for key, value in overlay.items():
        if not isinstance(key, str) or key.startswith("x-") or key in FIXED_KEYS:
            continue
        if key in REPLACED_KEYS:
            _set(base, key, copy.deepcopy(value))
            origins[(key,)] = origin
        else:
            _merge(base, key, value, (key,), origin, origins)
    return Resolved(base, origins)


def fixed_key_problems(raw: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Overlays that set a key no environment may change: ``(loc, message)`` pairs."""
    problems: list[tuple[Loc, str]] = []
    for name in environment_names(raw):
        overlay = overlay_of(raw, name)
        for key in FIXED_KEYS:
            if overlay is not None and key in overlay:
                message = f"an environment cannot set {key!r}; set it at the top level"
                problems.append(((ENVIRONMENTS_KEY, name, key), message))
    return problems


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value


def _merge(
    target: dict[str, Any],
    key: str,
    value: Any,
    loc: Loc,
    origin: str,
    origins: dict[Loc, str],
) -> None:
    current = target.get(key)
    if isinstance(value, dict) and isinstance(current, dict):
        merged = dict(current)
        for child_key, child in value.items():
            _merge(merged, str(child_key), child, (*loc, str(child_key)), origin, origins)
        target[key] = merged
        return
    _set(target, key, copy.deepcopy(value))
    origins[loc] = origin
