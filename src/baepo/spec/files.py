"""Finding a spec file, and reading its app name cheaply.

Light on imports on purpose (no pydantic): read-only CLI commands only need the app's name and
must start fast. Callers: ``spec.loader`` (re-exports ``find_spec_file``), ``spec.models``
(``APP_NAME_RE``), the CLI.
"""

from __future__ import annotations

import re
from pathlib import Path

from baepo.errors import ConfigError

SPEC_FILENAMES = ("baepo.yaml", "baepo.yml")
INIT_HINT = "run `baepo init` to write one, or pass -f FILE"
APP_NAME_RE = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


def find_spec_file(start: Path, explicit: Path | None) -> Path:
    """The spec file to use: ``explicit`` (``-f FILE``, or a folder holding one), else
    ``baepo.yaml`` or ``baepo.yml`` in ``start``. Raises ConfigError when there is none."""
    if explicit is not None:
        candidate = explicit if explicit.is_absolute() else start / explicit
        if candidate.is_dir():
            return find_spec_file(candidate, None)
        if not candidate.is_file():
            raise ConfigError(f"{explicit}: no such file", hint=INIT_HINT)
        return candidate
    found = [start / name for name in SPEC_FILENAMES if (start / name).is_file()]
    if not found:
        raise ConfigError(f"no baepo.yaml in {start}", hint=INIT_HINT)
    if len(found) > 1:
        raise ConfigError(
            f"both baepo.yaml and baepo.yml are in {start}",
            hint="remove one, or pass -f FILE",
        )
    return found[0]


def _quick_read(path: Path) -> dict[str, object]:
    """The top level of a YAML file, or an empty mapping when it cannot be read."""
    import yaml

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(path.read_text(), Loader=loader)  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def quick_app_name(path: Path) -> str | None:
    """The ``app:`` of a spec file when it plainly names a valid app, else None.

    No validation beyond that: callers needing the spec use ``spec.loader.load_spec``, whose
    errors are located; this only spares read-only commands that cost.
    """
    name = _quick_read(path).get("app")
    if isinstance(name, str) and re.match(APP_NAME_RE, name):
        return name
    return None


def quick_default_env(path: Path) -> str | None:
    """The ``default_env:`` of a spec file when it plainly names a valid one, else None
    (as cheap, and as unvalidated, as ``quick_app_name``)."""
    name = _quick_read(path).get("default_env")
    if isinstance(name, str) and re.match(APP_NAME_RE, name):
        return name
    return None
