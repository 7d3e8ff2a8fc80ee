"""From a revision to what the ports need: instance and router settings, as pure functions.

Callers: the reconciler (starting instances, running the router).
"""

from __future__ import annotations

import os
from pathlib import Path

from baepo.core.model import Revision
from baepo.core.ports import (
    HostConfig,
    HostsRelease,
    HostsTarget,
    InstanceSpec,
    ProbeConfig,
    RouterConfig,
)
from baepo.errors import ConfigError, Problem
from baepo.secrets import references
from baepo.shell import accounts
from baepo.spec.models import ProbeSpec, Spec
from baepo.spec.target import ReleaseSpec

_SPECS: dict[str, Spec] = {}


def spec_of(revision: Revision) -> Spec:
    """The revision's resolved spec, cached by its config hash (revisions are immutable, and
    the hash already identifies the config), so a reconcile pass does not re-serialise it."""
    spec = _SPECS.get(revision.config_hash)
    if spec is None:
        spec = _SPECS[revision.config_hash] = Spec.model_validate(revision.config)
    return spec


def probe_config(probe: ProbeSpec) -> ProbeConfig:
    return ProbeConfig(
        path=probe.path,
        interval=probe.interval,
        timeout=probe.timeout,
        failure_threshold=probe.failure_threshold,
        success_threshold=probe.success_threshold,
        initial_delay=probe.initial_delay,
    )


def instance_spec(revision: Revision) -> InstanceSpec:
    """How to start one instance of ``revision``: its command, folder, environment, probes."""
    spec = spec_of(revision)
    cwd = Path(revision.spec_dir)
    if spec.run.cwd:
        cwd = cwd / spec.run.cwd
    env_vars = {
        **spec.run.env,
        "BAEPO_APP": revision.app,
        "BAEPO_ENV": revision.env,
        "BAEPO_REVISION": str(revision.number),
        "BAEPO_VERSION": revision.version,
    }
    return InstanceSpec(
        app=revision.app,
        env=revision.env,
        revision=revision.number,
        command=list(spec.run.command),
        cwd=str(cwd),
        env_vars=env_vars,
        stop_grace_period=spec.run.stop_grace_period,
        backoff_initial=spec.restart.backoff_initial,
        backoff_max=spec.restart.backoff_max,
        crash_loop_restarts=spec.restart.crash_loop_restarts,
        crash_loop_window=spec.restart.crash_loop_window,
        log_max_bytes=spec.logs.max_bytes,
        log_backups=spec.logs.backups,
        readiness=probe_config(spec.health.readiness),
        liveness=probe_config(spec.health.liveness) if spec.health.liveness else None,
        target=hosts_target(spec, revision.spec_dir, revision.version),
        user=spec.run.user,
    )


def hosts_release(release: ReleaseSpec | None, spec_dir: str, version: str) -> HostsRelease:
    """The spec's ``target.release`` with ``{version}`` replaced and the archive's path made
    absolute (relative paths are relative to the spec's folder)."""
    if release is None:
        return HostsRelease()
    archive = ""
    if release.archive is not None:
        archive = str(Path(spec_dir) / release.archive.replace("{version}", version))
    return HostsRelease(
        archive=archive,
        url=(release.url or "").replace("{version}", version),
        sha256=release.sha256 or "",
        build=tuple(release.build.command) if release.build is not None else (),
        build_timeout=release.build.timeout if release.build is not None else 600.0,
    )


def check_release(spec: Spec, spec_dir: str, version: str) -> None:
    """ConfigError naming ``target.release.archive`` when that file is not there, so a deploy
    is refused before it makes a revision."""
    if spec.target.kind != "hosts":
        return
    archive = hosts_release(spec.target.release, spec_dir, version).archive
    if archive and not references.inside(archive, spec_dir):
        raise ConfigError(
            "the release archive is not inside the app's folder",
            problems=[
                Problem(
                    "target.release.archive",
                    "leads out of the app's folder (through `..` in the version, or a "
                    "symlink): the archive must be inside it",
                )
            ],
        )
    if archive and not Path(archive).is_file():
        raise ConfigError(
            f"the release archive {archive} is not there",
            problems=[Problem("target.release.archive", f"no file {archive}")],
            hint="build the archive first, or fix its path (relative to the spec's folder)",
        )


def check_run_user(spec: Spec, spec_dir: str) -> None:
    """ConfigError naming ``run.user`` when the account cannot be used (see ``accounts``),
    or naming ``run.command`` when that account may not execute the local target's program
    where it is found (in the spec's folder, or on the ``PATH`` the instance gets), so a
    deploy is refused instead of its instances failing to start."""
    account = accounts.run_as(spec.run.user)
    if account is None or spec.target.kind == "hosts":
        return
    program = spec.run.command[0]
    if "/" in program:
        candidates = [Path(spec_dir, spec.run.cwd or "", program)]
    else:
        path = spec.run.env.get("PATH", os.environ.get("PATH", os.defpath))
        candidates = [Path(folder, program) for folder in path.split(os.pathsep) if folder]
    found = [c for c in candidates if os.path.isfile(c)]
    if found and not any(accounts.may_run(account, str(c)) for c in found):
        raise ConfigError(
            f"{account.name!r} (run.user) may not execute {found[0]}",
            problems=[Problem("run.command[0]", f"not executable by {account.name!r}")],
            hint="install the program where that account may read and run it, or set "
            "run.user to an account that may (see docs/auth.md)",
        )


def hosts_target(spec: Spec, spec_dir: str, version: str = "") -> HostsTarget | None:
    """The spec's ``target`` for the platform: None for ``local``."""
    target = spec.target
    if target.kind != "hosts":
        return None
    return HostsTarget(
        hosts=tuple(
            HostConfig(
                address=host.address,
                port=host.port,
                user=host.user,
                key=host.key,
                labels=tuple(sorted(host.labels.items())),
                known_hosts=target.known_hosts,
                python=target.python,
            )
            for host in target.hosts
        ),
        path=target.path,
        max_failed_hosts=target.max_failed_hosts,
        source=str(Path(spec_dir)),
        workdir=spec.run.cwd or "",
        release=hosts_release(target.release, spec_dir, version),
    )


def router_config(revision: Revision) -> RouterConfig:
    spec = spec_of(revision)
    return RouterConfig(
        app=revision.app,
        env=revision.env,
        listen=spec.router.listen,
        upstream_timeout=spec.router.upstream_timeout,
        idle_timeout=spec.router.idle_timeout,
        metrics_listen=spec.router.metrics_listen,
        kind=spec.router.kind,
        binary=spec.router.binary,
        drain_timeout=spec.router.drain_timeout,
    )


def preview_config(revision: Revision) -> RouterConfig:
    """The blue-green preview listener of ``revision`` (its ``preview_listen`` address)."""
    spec = spec_of(revision)
    blue_green = spec.strategy.blue_green
    assert blue_green is not None
    assert blue_green.preview_listen is not None
    return RouterConfig(
        app=revision.app,
        env=revision.env,
        listen=blue_green.preview_listen,
        upstream_timeout=spec.router.upstream_timeout,
        idle_timeout=spec.router.idle_timeout,
        listener="preview",
        kind=spec.router.kind,
        binary=spec.router.binary,
        drain_timeout=spec.router.drain_timeout,
    )
