"""``baepo server start|stop|status``: the controller + API process of a state directory.

Other commands start a server on demand, so these are for running one by hand, e.g. in the
foreground under a process manager. Callers: ``cli.main`` mounts the group.
"""

from __future__ import annotations

import json
import os
import signal
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from baepo.cli.context import FileOpt, Output, OutputOpt, Project, StateOpt
from baepo.errors import ConfigError, ExternalError, Problem


class Auth(StrEnum):
    off = "off"
    required = "required"


server = typer.Typer(
    help="Run, stop or inspect the baepo server (commands start one on demand).",
    no_args_is_help=True,
)
out = Console(highlight=False, markup=False)


def _state_dir(file: Path | None, state_dir: Path | None) -> Path:
    if state_dir is not None:
        return state_dir.resolve()
    return Project(file, "default", None).state_dir


def _spec_folder(file: Path | None) -> Path | None:
    """The spec's folder, when there is a spec here (or ``-f FILE``), else None."""
    from baepo.errors import BaepoError

    try:
        return Project(file, "default", None).path.parent
    except BaepoError:
        return None


def _parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(
            f"bad --listen {listen!r}",
            problems=[Problem("--listen", "expected HOST:PORT, e.g. 127.0.0.1:7070")],
        )
    return host.strip("[]"), int(port)


@server.command()
def start(
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Run in this terminal until Ctrl-C.")
    ] = False,
    listen: Annotated[
        str, typer.Option("--listen", help="API address, HOST:PORT (port 0: any free port).")
    ] = "127.0.0.1:0",
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL (default: SQLite in the state dir).",
            envvar="BAEPO_DATABASE_URL",
        ),
    ] = None,
    auth: Annotated[
        Auth,
        typer.Option(
            "--auth",
            help="`required`: every request needs an API token (needed to listen beyond "
            "loopback). `off`: loopback only, for the user who runs it (the CLI sends the "
            "local credential from the state dir's local.token).",
        ),
    ] = Auth.off,
    run_user: Annotated[
        str,
        typer.Option(
            "--run-user",
            help="When the server runs as root: the OS account a spec's commands run as "
            "when it sets no run.user.",
            envvar="BAEPO_RUN_USER",
        ),
    ] = "nobody",
    allow_root_instances: Annotated[
        bool,
        typer.Option(
            "--allow-root-instances",
            help="Let a spec's commands run as root (run.user: root), with access to the "
            "state directory and its master key. Only for a machine whose every deployer "
            "is trusted.",
            envvar="BAEPO_ALLOW_ROOT_INSTANCES",
        ),
    ] = False,
    workdir: Annotated[
        Path | None,
        typer.Option(
            "--workdir",
            help="The app's folder: instances, hooks, backups and file secrets work here "
            "(default: the spec's folder when there is a spec, else the folder holding the "
            "state directory).",
            metavar="DIR",
        ),
    ] = None,
    allow_secret_env: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-secret-env",
            help="A server environment variable a spec's `secrets: {X: {env: NAME}}` may read "
            "(repeatable; also BAEPO_ALLOWED_SECRET_ENV=A,B). Others are refused.",
            metavar="NAME",
        ),
    ] = None,
    adopt_orphans: Annotated[
        bool,
        typer.Option(
            "--adopt-orphans",
            help="Start although the database does not know apps the state dir shows ran "
            "here (a lost or emptied database): nothing is stopped or deleted, and the next "
            "deploy of each app replaces the instances it finds. Restoring the lost database "
            "is better when you can.",
        ),
    ] = False,
    accept_lost_secrets: Annotated[
        bool,
        typer.Option(
            "--accept-lost-secrets",
            help="Start although the secret key cannot decrypt the stored secrets (a lost or "
            "replaced secret.key): a new key is made if none exists, nothing is deleted, and "
            "each secret must be stored again with `baepo secret set`. Putting the key back "
            "is better when you can.",
        ),
    ] = False,
    public_names: Annotated[
        list[str] | None,
        typer.Option(
            "--public-name",
            help="Another name clients reach the server by, HOST (any port, e.g. behind a "
            "proxy) or HOST:PORT; repeat for more, `*` for any. Requests addressed to any "
            "other name get 421.",
            metavar="NAME",
        ),
    ] = None,
    file: FileOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """Start the server for this app's state directory.

    Run as root, it runs every command of a spec (instances, hooks, checks, migrations,
    `job` metrics) as the spec's `run.user`, by default `--run-user` (`nobody`), so they
    cannot read the state directory (see docs/auth.md).

    With a PostgreSQL `--database-url` another replica may start for the same state dir: all
    serve the API, one leads (see docs/high-availability.md).

    A team server: create an admin token first (`baepo token create --name ops --role admin
    --env '*'` against the local server), then
    `baepo server start --listen 0.0.0.0:7070 --auth required --public-name baepo.example.com`.
    Without auth, only the user who starts it may use it (see `baepo ui` for the dashboard).
    Example: `baepo server start --foreground --listen 127.0.0.1:7070`
    """
    directory = _state_dir(file, state_dir)
    host, port = _parse_listen(listen)
    required = auth == Auth.required
    workdir = workdir or _spec_folder(file)
    from baepo.secrets.references import ALLOW_ENV_VAR, allowed_env_names

    allowed = allowed_env_names(allow_secret_env or [], os.environ.get(ALLOW_ENV_VAR))
    names = _public_names(public_names or [])
    if foreground:
        import logging

        from baepo.api.server import serve

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)
        from baepo.shell.accounts import Settings

        run_as = Settings(default_user=run_user, allow_root=allow_root_instances)
        serve(
            directory,
            host=host,
            port=port,
            database_url=database_url,
            auth_required=required,
            run_as=run_as,
            workdir=workdir.resolve() if workdir else None,
            allowed_secret_env=allowed,
            adopt_orphans=adopt_orphans,
            accept_lost_secrets=accept_lost_secrets,
            public_names=names,
        )
        return
    from baepo.cli.client import running_server, start_server

    info = running_server(directory)
    replica = bool(database_url) and not str(database_url).startswith("sqlite")
    if info is not None and not replica:
        out.print(f"a server already runs for {directory} at {info['url']} (pid {info['pid']})")
        return
    extra = ["--listen", listen, "--auth", auth.value, "--run-user", run_user]
    if allow_root_instances:
        extra.append("--allow-root-instances")
    if workdir is not None:
        extra += ["--workdir", str(workdir.resolve())]
    for name in sorted(allowed):
        extra += ["--allow-secret-env", name]
    if adopt_orphans:
        extra.append("--adopt-orphans")
    if accept_lost_secrets:
        extra.append("--accept-lost-secrets")
    extra += [arg for name in names for arg in ("--public-name", name)]
    info = start_server(directory, database_url=database_url, extra_args=extra)
    out.print(f"server started at {info['url']} (pid {info['pid']}); log: {directory}/server.log")
    if not required:
        link = _login_link(str(info["url"]), directory) or "run baepo ui"
        out.print(f"dashboard (works once): {link}", soft_wrap=True)
    if replica:
        role = _leadership(str(info["url"]), directory) or {}
        out.print(f"leader: {role.get('leader') or 'none yet'}")


@server.command()
def stop(
    file: FileOpt = None,
    state_dir: StateOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to exit.")] = 30.0,
) -> None:
    """Stop the server. The app's instances and router keep serving; a new server adopts them.

    Example: `baepo server stop`
    """
    directory = _state_dir(file, state_dir)
    from baepo.api.discovery import live_server
    from baepo.shell.process import pid_alive

    info = live_server(directory)
    pid = int(info["pid"]) if info else 0
    if not pid or not pid_alive(pid):
        out.print(f"no server runs for {directory}")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            raise ExternalError(f"server pid {pid} did not exit within {timeout:g}s")
        time.sleep(0.05)
    out.print(f"server {pid} stopped")


@server.command("status")
def server_status(
    file: FileOpt = None, state_dir: StateOpt = None, output: OutputOpt = Output.text
) -> None:
    """Say whether a server runs for this state directory, where, and which replica leads.

    With ``BAEPO_SERVER`` set, asks that server. Exit code 7 when none runs.
    Example: `baepo server status -o json`
    """
    from baepo.cli.client import on_loopback, running_server

    directory = _state_dir(file, state_dir)
    remote = os.environ.get("BAEPO_SERVER", "")
    local = directory if not remote or on_loopback(remote) else None
    info = _leadership(remote, local) if remote else running_server(directory)
    if info is not None:
        info = {**info, **(_leadership(str(info["url"]), local) or {})}
    if output == Output.json:
        print(
            json.dumps({"running": info is not None, "state_dir": str(directory), **(info or {})})
        )
    elif info:
        out.print(f"running at {info['url']} (pid {info['pid']}, database {info['database']})")
        if "leading" in info:
            role = "leads" if info["leading"] else "follows"
            out.print(f"this replica {role}; leader: {info.get('leader') or 'none right now'}")
        if info.get("events_dropped"):
            out.print(
                f"{info['events_dropped']} event(s) could not be recorded (last cause: "
                f"{info.get('events_dropped_cause')}); see {directory}/server.log"
            )
        if local is not None and not info.get("auth"):
            link = _login_link(str(info["url"]), directory)
            out.print(f"dashboard (works once): {link or 'run baepo ui'}", soft_wrap=True)
    else:
        out.print(f"no server runs for {directory}")
    if info is None:
        raise typer.Exit(ExternalError.exit_code)


def ui(
    file: FileOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
    browser: Annotated[
        bool, typer.Option("--open", help="Open the link in the default browser.")
    ] = False,
) -> None:
    """Print a link that logs you in to the dashboard as the local user, starting the server
    if needed.

    The link works once, within five minutes; only the user who runs the server can get one
    (the CLI sends the local credential). A server with `--auth required` has none: log in
    with a username and password or an API token. Example: `baepo ui --open`
    """
    from baepo.cli.client import connect

    directory = _state_dir(file, state_dir)
    client = connect(directory, database_url=os.environ.get("BAEPO_DATABASE_URL"))
    try:
        link = client.post("/api/v1/dashboard-links", {})
    finally:
        client.close()
    if output == Output.json:
        print(json.dumps(link))
    else:
        out.print(
            f"{link['url']}\n(works once, until {link['expires_at'][:19]} UTC)", soft_wrap=True
        )
    if browser:
        import webbrowser

        webbrowser.open(str(link["url"]))


def _login_link(url: str, state_dir: Path) -> str | None:
    """A one-time dashboard link from the server at ``url`` (None: it gave none)."""
    from baepo.cli.client import Client, local_token
    from baepo.errors import BaepoError

    client = Client(url, timeout=5, token=local_token(state_dir) or "")
    try:
        found = client.post("/api/v1/dashboard-links", {})
    except BaepoError:
        return None
    finally:
        client.close()
    return str(found["url"]) if isinstance(found, dict) else None


def _public_names(names: list[str]) -> list[str]:
    """``--public-name`` values, checked: a host name or address, with a port or not."""
    for name in names:
        if not name.strip() or "/" in name or " " in name.strip():
            raise ConfigError(
                f"bad --public-name {name!r}",
                problems=[Problem("--public-name", "expected HOST or HOST:PORT, or *")],
            )
    return [name.strip() for name in names]


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Server")(ui)


def _leadership(url: str, state_dir: Path | None) -> dict[str, Any] | None:
    """``GET /api/v1/server`` of the server at ``url``: the replica and who leads (None: no
    answer). The local credential of ``state_dir`` goes with it when there is no API token."""
    from baepo.cli.client import Client, credential
    from baepo.errors import BaepoError

    token = None if state_dir is None else credential(state_dir) or ""
    client = Client(url, timeout=5, token=token)
    try:
        found = client.get("/api/v1/server")
    except BaepoError:
        return None
    finally:
        client.close()
    return found if isinstance(found, dict) else None
