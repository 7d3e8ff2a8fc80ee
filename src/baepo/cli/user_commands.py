"""``baepo user create|list|disable``: the people who log in to the dashboard.

The password is asked twice at the terminal, or read from ``BAEPO_PASSWORD`` for scripts; it
goes to the server, which keeps only its scrypt hash. Managing users needs an admin token.
Callers: ``cli.main``.
"""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from baepo.cli.context import FileOpt, Output, OutputOpt, Project, StateOpt
from baepo.core.model import DEFAULT_ENV, ROLES
from baepo.errors import ConfigError, Problem

out = Console(highlight=False, markup=False)

user = typer.Typer(
    name="user",
    help="Create, list and disable dashboard users (role per environment).",
    no_args_is_help=True,
)

PASSWORD_ENV = "BAEPO_PASSWORD"  # noqa: S105 (the variable's name, not a password)


def _password() -> str:
    given = os.environ.get(PASSWORD_ENV)
    if given:
        return given
    text: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return text


@user.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="The login name.")],
    role: Annotated[
        str, typer.Option("--role", help=f"One of: {', '.join(ROLES)}.", metavar="ROLE")
    ],
    envs: Annotated[
        list[str],
        typer.Option("--env", "-e", help="An environment the role applies to (repeat; '*' all)."),
    ],
    file: FileOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Create a dashboard user; asks for the password twice (or reads BAEPO_PASSWORD).

    Example: `baepo user create --name ana --role deployer --env staging`
    """
    if role not in ROLES:
        raise ConfigError(
            f"unknown role {role!r}", problems=[Problem("--role", f"one of {', '.join(ROLES)}")]
        )
    body = {"username": name, "password": _password(), "role": role, "envs": envs}
    created = Project(file, DEFAULT_ENV, state_dir).client().post("/api/v1/users", body)
    if output == Output.json:
        print(json.dumps(created, indent=2))
        return
    out.print(f"user {created['username']}: {created['role']} in {', '.join(created['envs'])}")


@user.command("list")
def list_users(
    file: FileOpt = None, state_dir: StateOpt = None, output: OutputOpt = Output.text
) -> None:
    """List dashboard users: role, environments, disabled or not. Example: `baepo user list`"""
    users = Project(file, DEFAULT_ENV, state_dir).client().get("/api/v1/users")
    if output == Output.json:
        print(json.dumps(users, indent=2))
        return
    table = Table(box=None, header_style="bold")
    for column in ("name", "role", "envs", "created", "by", "state"):
        table.add_column(column)
    for u in users:
        table.add_row(
            u["username"], u["role"], ", ".join(u["envs"]), u["created_at"][:16],
            u["created_by"], "disabled" if u["disabled"] else "active",
        )  # fmt: skip
    out.print(table if users else "no users yet: baepo user create")


@user.command("disable")
def disable(
    name: Annotated[str, typer.Argument(help="The login name.")],
    file: FileOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """Disable a user at once (their dashboard sessions end). Example: `baepo user disable ana`"""
    done = Project(file, DEFAULT_ENV, state_dir).client().post(f"/api/v1/users/{name}/disable", {})
    out.print(f"user {done['username']} is disabled")


def register(app: typer.Typer) -> None:
    app.add_typer(user, rich_help_panel="Server")
