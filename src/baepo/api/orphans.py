"""What a state directory shows ran here that the database does not explain (invariant 12).

A deleted, emptied or swapped database would otherwise be replaced by a fresh one without a
word: the history gone, and the router and instances left running with nobody managing them.
At start the server compares the database's apps with the traces in the state directory
(instance folders, router folders, the database backups taken by ``backup:`` gates, logs of
stopped instances) and refuses to start when some are unexplained, unless told to adopt them.
Nothing here stops, moves or deletes anything. Callers: ``api.server`` at start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from baepo.errors import StateError
from baepo.shell.process import pid_alive

ADOPT_FLAG = "--adopt-orphans"


@dataclass(frozen=True)
class Trace:
    """One thing found in the state directory: its folder (relative), the app+env folder name
    it belongs to (``<app>.<env>``; None for the whole state dir), and what it shows."""

    path: str
    group: str | None
    what: str
    running: bool = False


def find_traces(state_dir: Path) -> list[Trace]:
    """Every instance and router folder, and (for the whole directory) backups and logs."""
    traces = [*_instances(state_dir), *_routers(state_dir)]
    for name, what in (("backups", "database backups"), ("logs", "logs of stopped instances")):
        folder = state_dir / name
        if _children(folder, folders_only=False):
            traces.append(Trace(name + "/", None, what))
    return traces


def unexplained(traces: Iterable[Trace], known: Iterable[tuple[str, str]]) -> list[Trace]:
    """The traces of app+envs the database does not know. Traces of the whole directory count
    only when the database knows no app at all."""
    groups = {f"{app}.{env}" for app, env in known}
    return [
        t
        for t in traces
        if (t.group is None and not groups)
        or (t.group is not None and not _explained(t.group, groups))
    ]


def refusal(
    found: list[Trace], state_dir: Path, database: str, file: Path | None, *, missing: bool
) -> StateError:
    """The error that stops the server: the evidence, then the ways out. ``database`` is the
    redacted URL, ``file`` the SQLite file (None for PostgreSQL)."""
    shown = "; ".join(f"{t.path} ({t.what})" for t in found[:12])
    more = f"; and {len(found) - 12} more" if len(found) > 12 else ""
    running = sum(t.running for t in found)
    serving = f" ({running} still running)" if running else ""
    named = str(file) if file is not None else database
    state = "is missing" if missing else "does not know them"
    restore = (
        f"stop here and put the lost database file back at {file} (from your backup)"
        if file is not None
        else f"stop here and restore the lost database into {database} (from your backup)"
    )
    return StateError(
        f"refusing to start: {state_dir} shows apps ran here{serving} but the database "
        f"{named} {state}: {shown}{more}. Starting would leave them unmanaged and their "
        "history lost",
        hint=f"{restore}; or keep this database and take over what runs with baepo server "
        f"start {ADOPT_FLAG} (nothing is stopped or deleted; the next deploy of each app "
        "replaces what it finds, see docs/behaviour.md)",
    )


def _explained(group: str, groups: set[str]) -> bool:
    # A router of another listener is ``<app>.<env>.<listener>``.
    return group in groups or any(group.startswith(g + ".") for g in groups)


def _instances(state_dir: Path) -> list[Trace]:
    found = []
    for group in _children(state_dir / "instances"):
        instances = _children(group)
        if not instances:
            continue
        alive = sum(pid_alive(_pid(i / "supervisor.pid")) for i in instances)
        found.append(
            Trace(
                f"instances/{group.name}/",
                group.name,
                f"{len(instances)} instance(s), {alive} supervised process(es) running",
                running=alive > 0,
            )
        )
    return found


def _routers(state_dir: Path) -> list[Trace]:
    """The built-in router's folders (``routers/<app>.<env>[.<listener>]``) and HAProxy's or
    nginx's (``routers/<kind>/<app>.<env>.<listener>``, see ``routers.proxyfiles``)."""
    found = []
    for folder in _children(state_dir / "routers"):
        if "." in folder.name:
            found.append(_router(folder, f"routers/{folder.name}/", "router.pid"))
            continue
        for group in _children(folder):  # a proxy kind's folder: no app name is without a dot
            found.append(
                _router(group, f"routers/{folder.name}/{group.name}/", f"{folder.name}.pid")
            )
    return found


def _router(folder: Path, shown: str, pid_file: str) -> Trace:
    pid = _pid(folder / pid_file)
    alive = pid_alive(pid)
    what = f"router pid {pid} running" if alive else "router state"
    return Trace(shown, folder.name, what, running=alive)


def _children(folder: Path, *, folders_only: bool = True) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() or not folders_only)
    except OSError:
        return []


def _pid(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0
