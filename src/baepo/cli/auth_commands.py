"""``baepo token create|list|revoke`` and ``baepo audit``: who may do what, and who did.

Tokens are made by the server and their text is shown once. The CLI sends ``BAEPO_TOKEN``
(or the file ``~/.config/baepo/token``) with every request. Callers: ``cli.main``.
"""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from baepo.cli.context import FileOpt, Output, OutputOpt, Project, StateOpt
from baepo.core.model import DEFAULT_ENV, ROLES
from baepo.errors import ConfigError, Problem

out = Console(highlight=False, markup=False)
err = Console(stderr=True, highlight=False, markup=False)

token = typer.Typer(
    name="token",
    help="Create, list and revoke API tokens (role per environment).",
    no_args_is_help=True,
)

_DAYS = re.compile(r"^(\d+)d$")


def _days(value: str | None) -> int | None:
    if value is None:
        return None
    match = _DAYS.match(value.strip())
    if not match or int(match.group(1)) < 1:
        raise ConfigError(
            f"bad --expires {value!r}",
            problems=[Problem("--expires", "a number of days, e.g. 90d")],
        )
    return int(match.group(1))


@token.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="Who or what the token is for, e.g. ci.")],
    role: Annotated[
        str, typer.Option("--role", help=f"One of: {', '.join(ROLES)}.", metavar="ROLE")
    ],
    envs: Annotated[
        list[str],
        typer.Option("--env", "-e", help="An environment it applies to (repeat; '*' for all)."),
    ],
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime in days, e.g. 90d (default: none).")
    ] = None,
    file: FileOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Create an API token. Its text is printed once: store it now (it is kept only hashed).

    Roles: viewer (read), deployer (deploy and steer), approver (approve), admin (tokens).
    Example: `baepo token create --name ci --role deployer --env staging`
    """
    if role not in ROLES:
        raise ConfigError(
            f"unknown role {role!r}", problems=[Problem("--role", f"one of {', '.join(ROLES)}")]
        )
    body = {"name": name, "role": role, "envs": envs, "expires_in_days": _days(expires)}
    created = Project(file, DEFAULT_ENV, state_dir).client().post("/api/v1/tokens", body)
    if output == Output.json:
        print(json.dumps(created, indent=2))
        return
    err.print(
        f"token {created['id']} for {created['name']}: {created['role']} in "
        f"{', '.join(created['envs'])}; shown once, keep it secret:"
    )
    print(created["token"])


@token.command("list")
def list_tokens(
    file: FileOpt = None, state_dir: StateOpt = None, output: OutputOpt = Output.text
) -> None:
    """List tokens (never their text): role, environments, last use, revoked or not.

    Example: `baepo token list -o json`
    """
    tokens = Project(file, DEFAULT_ENV, state_dir).client().get("/api/v1/tokens")
    if output == Output.json:
        print(json.dumps(tokens, indent=2))
        return
    table = Table(box=None, header_style="bold")
    for column in ("id", "name", "role", "envs", "created", "last used", "state"):
        table.add_column(column)
    for t in tokens:
        state = "revoked" if t["revoked_at"] else "active"
        table.add_row(
            t["id"], t["name"], t["role"], ", ".join(t["envs"]), (t["created_at"] or "")[:16],
            (t["last_used_at"] or "-")[:16], state,
        )  # fmt: skip
    out.print(table if tokens else "no tokens yet: baepo token create")


@token.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (baepo token list).")],
    file: FileOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """Revoke a token at once. Example: `baepo token revoke 3f2a9c1b7d0e`"""
    done = Project(file, DEFAULT_ENV, state_dir).client().delete(f"/api/v1/tokens/{token_id}")
    out.print(f"token {done['id']} ({done['name']}) is revoked")


def audit(
    app: Annotated[str | None, typer.Option("--app", help="Only this app.")] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="Only this environment.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many.", min=1)] = 200,
    file: FileOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Who did what, when, from where, with which result (refusals included).

    Example: `baepo audit --env production`
    """
    records = (
        Project(file, DEFAULT_ENV, state_dir)
        .client()
        .get("/api/v1/audit", app=app, env=env, limit=limit)
    )
    if output == Output.json:
        print(json.dumps(records, indent=2))
        return
    table = Table(box=None, header_style="bold")
    for column in ("at", "actor", "role", "action", "app", "env", "from", "result", "detail"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r["at"][:19], r["actor"], r["role"], r["action"], r["app"] or "-", r["env"] or "-",
            r["source"], str(r["status"]), r["detail"],
        )  # fmt: skip
    out.print(table if records else "the audit log is empty")


def register(app: typer.Typer) -> None:
    app.add_typer(token, rich_help_panel="Server")
    app.command(rich_help_panel="Server")(audit)
