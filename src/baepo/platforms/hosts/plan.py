"""What the hosts platform does for a release, as pure functions over values.

Where a new instance goes (``choose_host``), what an instance's agent is told
(``instance_request``), what is uploaded for a release (``release_payload``: the spec's folder
as a tar archive, or the archive file of ``target.release``), how a host gets and builds its
release folder (``ship_release``) and the whole plan of a deploy of N replicas as actions
(``release_plan``; ``host_plan`` for one host of a batch), which ``commands.render_plan``
prints as a dry run.
Callers: ``platform.HostsPlatform``; tests.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from baepo.core.ports import HostConfig, HostsTarget, InstanceSpec
from baepo.errors import ConfigError, Problem
from baepo.platforms.hosts import commands
from baepo.platforms.hosts.commands import Action

# Never shipped: baepo's own state folder, version control, caches.
EXCLUDED = frozenset({".baepo", ".git", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache"})


def choose_host(hosts: Sequence[HostConfig], counts: Mapping[str, int]) -> HostConfig:
    """The host with the fewest instances (``counts`` by address); the first such on a tie."""
    return min(hosts, key=lambda host: counts.get(host.address, 0))


def remote_cwd(target: HostsTarget, app: str, env: str, revision: int) -> str:
    release = commands.release_dir(target.path, app, env, revision)
    return f"{release}/{target.workdir}".rstrip("/") if target.workdir else release


def instance_request(spec: InstanceSpec, target: HostsTarget, host: HostConfig) -> dict[str, Any]:
    """The JSON the agent's ``start`` reads: what to run, where, and how to supervise it."""
    return {
        "app": spec.app,
        "environment": spec.env,
        "revision": spec.revision,
        "host": host.address,
        "command": list(spec.command),
        "cwd": remote_cwd(target, spec.app, spec.env, spec.revision),
        "env": dict(spec.env_vars),
        "secret_env": dict(spec.secret_env),
        "stop_grace_period": spec.stop_grace_period,
        "backoff_initial": spec.backoff_initial,
        "backoff_max": spec.backoff_max,
        "crash_loop_restarts": spec.crash_loop_restarts,
        "crash_loop_window": spec.crash_loop_window,
        "log_max_bytes": spec.log_max_bytes,
        "readiness": asdict(spec.readiness),
        "liveness": asdict(spec.liveness) if spec.liveness is not None else None,
    }


def archive_folder(source: Path) -> bytes:
    """``source`` as an uncompressed tar (paths relative to it), without ``EXCLUDED`` entries."""

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        return None if any(part in EXCLUDED for part in parts) else info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for entry in sorted(source.iterdir()):
            tar.add(entry, arcname=entry.name, filter=keep)
    return buffer.getvalue()


def release_payload(target: HostsTarget) -> bytes | None:
    """What is uploaded to every host for a release: the spec's folder as a tar archive, the
    bytes of ``release.archive``, or None for a ``release.url`` (each host downloads it).
    ConfigError when the archive cannot be read."""
    release = target.release
    if release.url:
        return None
    if release.archive:
        try:
            return Path(release.archive).read_bytes()
        except OSError as exc:
            problem = f"cannot read {release.archive}: {exc.strerror or exc}"
            raise ConfigError(
                f"the release archive {release.archive} cannot be read",
                problems=[Problem("target.release.archive", problem)],
                hint="build the archive first, or fix its path (relative to the spec's folder)",
            ) from exc
    return archive_folder(Path(target.source))


def ship_release(
    spec: InstanceSpec, target: HostsTarget, host: HostConfig, payload: bytes | None
) -> list[Action]:
    """The actions that put release ``spec.revision`` in place on ``host`` and build it:
    upload and unpack (the folder or the archive) or fetch, then the build command if any."""
    release = target.release
    where_ = (host, target.path, spec.app, spec.env, spec.revision)
    if release.url:
        actions = commands.fetch_release(*where_, release.url, release.sha256)
    elif release.archive:
        actions = commands.upload_archive(*where_, payload or b"", release.archive)
    else:
        actions = commands.upload_release(*where_, payload or b"", target.source)
    if release.build:
        actions.append(
            commands.build_release(
                *where_,
                release.build,
                release.build_timeout,
                dict(spec.env_vars),
                target.workdir,
            )
        )
    return actions


def host_plan(
    spec: InstanceSpec,
    host: HostConfig,
    ids: Sequence[str],
    *,
    agent_source: bytes,
    payload: bytes | None,
) -> list[Action]:
    """The actions on one host for a batch of a rolling deploy: the agent, the release, then
    a start for each of ``ids``."""
    target = spec.target
    if target is None:
        return []
    actions = commands.prepare_host(host, target.path, agent_source)
    actions += ship_release(spec, target, host, payload)
    request = instance_request(spec, target, host)
    actions += [
        commands.start(host, target.path, spec.app, spec.env, instance_id, request)
        for instance_id in ids
    ]
    return actions


def release_plan(
    spec: InstanceSpec, replicas: int, *, agent_source: bytes, payload: bytes | None
) -> list[Action]:
    """Every action a deploy of ``replicas`` new instances of ``spec`` runs, host by host,
    then the starts spread over the hosts (instance ids shown as ``<id-N>``). ``payload`` is
    what ``release_payload`` gives."""
    target = spec.target
    if target is None:
        return []
    actions: list[Action] = []
    for host in target.hosts:
        actions += commands.prepare_host(host, target.path, agent_source)
        actions += ship_release(spec, target, host, payload)
    counts: dict[str, int] = {}
    for number in range(1, replicas + 1):
        host = choose_host(target.hosts, counts)
        counts[host.address] = counts.get(host.address, 0) + 1
        request = instance_request(spec, target, host)
        actions.append(
            commands.start(host, target.path, spec.app, spec.env, f"<id-{number}>", request)
        )
    return actions
