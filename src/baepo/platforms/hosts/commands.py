"""Every remote action of the hosts platform as a value, built by pure functions.

An ``Exec`` runs an argv on a host over SSH (optionally with stdin), an ``Upload`` copies bytes
to a file on a host over SFTP, a ``Probe`` is an HTTP GET from the controller to an instance.
Nothing here runs anything: ``runner.SSHRunner`` runs them and ``render`` shows them, so a plan
can be printed (``render_plan``) and tests can compare commands by equality.
Callers: ``platform.HostsPlatform``, ``plan``.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from baepo.core.ports import HostConfig

AGENT_DIR = ".baepo"
AGENT_NAME = "agent.py"
INSTANCES = "instances"
FETCH_TIMEOUT = 900.0  # a download of the release by a host


@dataclass(frozen=True)
class Exec:
    """Run ``argv`` on ``host`` (quoted for the remote shell); ``stdin`` is sent to it."""

    host: HostConfig
    argv: tuple[str, ...]
    stdin: str | None = field(default=None, repr=False)
    secret_stdin: bool = False  # the stdin holds secrets: rendered redacted
    timeout: float = 60.0
    stdin_what: str = "instance JSON"  # what the stdin holds, for humans
    what: str = ""  # the step in words, for errors (default: the command)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


@dataclass(frozen=True)
class Upload:
    """Write ``data`` to ``remote`` on ``host`` (``what`` names the content for humans)."""

    host: HostConfig
    remote: str
    data: bytes = field(repr=False)
    what: str


@dataclass(frozen=True)
class Probe:
    """An HTTP GET of an instance's ``path`` from the controller's machine."""

    address: str
    port: int
    path: str
    timeout: float

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}{self.path}"


Action = Exec | Upload | Probe


# -- where things are on a host ---------------------------------------------------------------


def app_dir(path: str, app: str, env: str) -> str:
    return f"{path}/{app}/{env}"


def release_dir(path: str, app: str, env: str, revision: int) -> str:
    return f"{app_dir(path, app, env)}/r{revision}"


def instances_dir(path: str, app: str, env: str) -> str:
    return f"{app_dir(path, app, env)}/{INSTANCES}"


def instance_dir(path: str, app: str, env: str, instance_id: str) -> str:
    return f"{instances_dir(path, app, env)}/{instance_id}"


def agent_path(path: str) -> str:
    return f"{path}/{AGENT_DIR}/{AGENT_NAME}"


# -- the actions ------------------------------------------------------------------------------


def _agent(host: HostConfig, path: str, *args: str, **kw: Any) -> Exec:
    """The agent's ``args``, run by the host's interpreter (``target.python``)."""
    return Exec(host, (host.python, agent_path(path), *args), **kw)


def prepare_host(host: HostConfig, path: str, agent_source: bytes) -> list[Action]:
    """Create the folders and upload the agent (idempotent: the agent is overwritten)."""
    return [
        Exec(host, ("mkdir", "-p", f"{path}/{AGENT_DIR}")),
        Upload(host, agent_path(path), agent_source, what="the baepo agent"),
    ]


def upload_release(
    host: HostConfig, path: str, app: str, env: str, revision: int, archive: bytes, source: str
) -> list[Action]:
    """Upload the release archive and unpack it into ``<path>/<app>/<env>/r<revision>``."""
    release = release_dir(path, app, env, revision)
    tar = f"{release}.tar"
    return [
        Exec(host, ("mkdir", "-p", instances_dir(path, app, env))),
        Upload(host, tar, archive, what=f"{source} as a tar archive"),
        _agent(host, path, "unpack", tar, release),
    ]


def archive_suffix(name: str) -> str:
    """``.tar``, ``.tar.gz`` or ``.tgz``: the archive's own, kept on the host."""
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            return suffix
    return ".tar"


def upload_archive(
    host: HostConfig, path: str, app: str, env: str, revision: int, archive: bytes, source: str
) -> list[Action]:
    """Upload the archive file ``source`` and unpack it into ``<path>/<app>/<env>/r<revision>``."""
    release = release_dir(path, app, env, revision)
    remote = f"{release}{archive_suffix(source)}"
    return [
        Exec(host, ("mkdir", "-p", instances_dir(path, app, env))),
        Upload(host, remote, archive, what=source),
        _agent(host, path, "unpack", remote, release, what="unpacking the release"),
    ]


def fetch_release(
    host: HostConfig, path: str, app: str, env: str, revision: int, url: str, sha256: str
) -> list[Action]:
    """Have the host download ``url`` (checked against ``sha256`` when given) and unpack it
    into ``<path>/<app>/<env>/r<revision>``; nothing is downloaded when that folder exists."""
    args: tuple[str, ...] = ("fetch", url, release_dir(path, app, env, revision))
    if sha256:
        args = (*args, sha256)
    return [
        Exec(host, ("mkdir", "-p", instances_dir(path, app, env))),
        _agent(host, path, *args, timeout=FETCH_TIMEOUT, what="fetching the release"),
    ]


def build_release(
    host: HostConfig,
    path: str,
    app: str,
    env: str,
    revision: int,
    argv: tuple[str, ...],
    timeout: float,
    env_vars: dict[str, str],
    workdir: str = "",
) -> Exec:
    """Run ``argv`` in the release folder (in its ``workdir``, where the instances start)
    unless the release already built; ``env_vars`` (never secrets) go on stdin. The agent
    kills it after ``timeout`` seconds."""
    release = release_dir(path, app, env, revision)
    return _agent(
        host,
        path,
        "build",
        release,
        f"{release}/{workdir}".rstrip("/") if workdir else release,
        f"{timeout:g}",
        "--",
        *argv,
        stdin=json.dumps(env_vars, sort_keys=True),
        stdin_what="build environment",
        timeout=timeout + 30.0,
        what=f"the build of r{revision}",
    )


def is_build(action: Exec) -> bool:
    """Whether ``action`` is a ``build_release``."""
    return action.argv[:1] == (action.host.python,) and action.argv[2:3] == ("build",)


def start(
    host: HostConfig, path: str, app: str, env: str, instance_id: str, request: dict[str, Any]
) -> Exec:
    """Start one instance; ``request`` is the instance's JSON (``secret_env`` is redacted)."""
    return _agent(
        host,
        path,
        "start",
        instance_dir(path, app, env, instance_id),
        stdin=json.dumps(request, sort_keys=True),
        secret_stdin=bool(request.get("secret_env")),
        timeout=30.0,
    )


def stop(
    host: HostConfig, path: str, app: str, env: str, instance_id: str, grace: float | None
) -> Exec:
    args: tuple[str, ...] = ("stop", instance_dir(path, app, env, instance_id))
    if grace is not None:
        args = (*args, f"{grace:g}")
    return _agent(host, path, *args, timeout=(grace if grace is not None else 600.0) + 30.0)


def restart(host: HostConfig, path: str, app: str, env: str, instance_id: str) -> Exec:
    return _agent(host, path, "restart", instance_dir(path, app, env, instance_id))


def status(host: HostConfig, path: str, app: str, env: str) -> Exec:
    return _agent(host, path, "status", instances_dir(path, app, env), timeout=20.0)


def logs(host: HostConfig, path: str, app: str, env: str, tail: int, revision: int | None) -> Exec:
    args: tuple[str, ...] = ("logs", instances_dir(path, app, env), str(tail))
    if revision is not None:
        args = (*args, str(revision))
    return _agent(host, path, *args)


def follow(host: HostConfig, path: str, app: str, env: str) -> Exec:
    return _agent(host, path, "follow", instances_dir(path, app, env), timeout=0.0)


# -- showing them ---------------------------------------------------------------------------


def where(host: HostConfig) -> str:
    return f"{host.user}@{host.address}" + ("" if host.port == 22 else f":{host.port}")


def render(action: Action) -> str:
    """One line: where it runs, then what runs."""
    if isinstance(action, Exec):
        line = f"{where(action.host)}  $ {action.command}"
        if action.stdin is not None:
            line += f"  < ({action.stdin_what}" + (
                ", secrets redacted)" if action.secret_stdin else ")"
            )
        return line
    if isinstance(action, Upload):
        size = f"{len(action.data)} bytes"
        return f"{where(action.host)}  upload {action.what} ({size}) -> {action.remote}"
    return f"controller  GET {action.url} (timeout {action.timeout:g}s)"


def render_plan(actions: list[Action]) -> str:
    """The plan as text, one action a line, in the order they run."""
    return "".join(render(action) + "\n" for action in actions)
