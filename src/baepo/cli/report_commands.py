"""``baepo report``: release KPIs and DORA metrics over a period, from the server's history.

Callers: ``cli.main`` registers the command; the numbers come from ``GET /api/v1/report``
(definitions in ``core.kpi`` and docs/kpis.md).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from baepo.cli.context import FileOpt, Output, OutputOpt, Project, StateOpt
from baepo.core import causes
from baepo.core.model import DEFAULT_ENV
from baepo.errors import ConfigError

out = Console(highlight=False, markup=False)


def report(
    app_name: Annotated[
        str | None,
        typer.Option(
            "--app",
            "-a",
            help="Only this app (default: the spec's app when there is a baepo.yaml, else all).",
            metavar="APP",
        ),
    ] = None,
    all_apps: Annotated[
        bool, typer.Option("--all-apps", help="Every app, even with a baepo.yaml here.")
    ] = False,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            "-e",
            help="Only this environment (default: every environment).",
            envvar="BAEPO_ENV",
            metavar="ENV",
        ),
    ] = None,
    since: Annotated[
        str,
        typer.Option(help="Start of the period: a time ago (30d, 2w, 12h) or an ISO date."),
    ] = "30d",
    until: Annotated[
        str | None, typer.Option(help="End of the period, like --since (default: now).")
    ] = None,
    undo_window: Annotated[
        str,
        typer.Option(help="An undo this soon after a healthy deploy makes it a change failure."),
    ] = "24h",
    file: FileOpt = None,
    state_dir: StateOpt = None,
    output: OutputOpt = Output.text,
) -> None:
    """Show release KPIs and DORA metrics: deployment frequency, success rate, deploy time,
    change failure rate, time to restore, rollbacks and downtime.

    Every metric is defined in docs/kpis.md. A deployment counts in the period its rollout
    started in; superseded and unfinished ones are left out of the rates.
    Examples: `baepo report`, `baepo report --all-apps --since 2w -o json`,
    `baepo report --state-dir /srv/baepo --env prod --since 2025-01-01 --until 2025-02-01`
    """
    project = Project(file, env or DEFAULT_ENV, state_dir)
    if app_name is None and not all_apps:
        app_name = _spec_app(project)
    result = project.client().get(
        "/api/v1/report", env=env, app=app_name, since=since, until=until,
        undo_window=undo_window,
    )  # fmt: skip
    if output == Output.json:
        print(json.dumps(result, indent=2))
        return
    out.print(_headline(result))
    out.print(summary_table(result))
    if result.get("failure_causes"):
        out.print(causes_table(result))
    parts = result.get("apps") or []
    if len(parts) > 1:
        out.print(apps_table(parts))


def _spec_app(project: Project) -> str | None:
    """The spec's app when a spec file is found; None (every app) when there is none but
    the state directory is known otherwise (``--state-dir`` or ``BAEPO_STATE_DIR``)."""
    try:
        return project.app
    except ConfigError:
        if project.state_dir_option is None:
            raise
        return None


def _headline(r: dict[str, Any]) -> Text:
    who = r["app"] or "every app"
    where = f"env {r['env']}" if r["env"] else "every environment"
    return Text.assemble((who, "bold"), f"  {where}  {r['since'][:16]} → {r['until'][:16]} (UTC)")


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def summary_table(r: dict[str, Any]) -> Table:
    """The metrics of ``r`` (one app+environment or all together), one per row."""
    table = Table(header_style="bold", show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column("metric", style="bold")
    table.add_column("value")
    outcomes = ", ".join(
        f"{count} {name.replace('_', ' ')}" for name, count in r["outcomes"].items() if count
    )
    table.add_row(
        "deployments",
        f"{r['deployments']} ({r['deployments_per_day']:.2f}/day, "
        f"{r['deployments_per_week']:.1f}/week)" + (f": {outcomes}" if outcomes else ""),
    )
    table.add_row("success rate", f"{_rate(r['success_rate'])} of {r['finished']} finished")
    deploy = r["deploy_time"]
    table.add_row(
        "deploy time",
        f"mean {_seconds(deploy['mean_seconds'])}, median {_seconds(deploy['median_seconds'])}",
    )
    table.add_row(
        "change failure rate",
        f"{_rate(r['change_failure_rate'])} ({r['change_failures']} of {r['finished']})",
    )
    restore = r["time_to_restore"]
    table.add_row(
        "time to restore",
        f"mean {_seconds(restore['mean_seconds'])}, median {_seconds(restore['median_seconds'])}"
        + (f", {r['unrestored']} not restored yet" if r["unrestored"] else ""),
    )
    table.add_row(
        "rollbacks",
        f"{r['rollbacks']} (undos: {r['undos']}), mean "
        f"{_seconds(r['rollback_time']['mean_seconds'])}",
    )
    table.add_row(
        "downtime",
        f"{_seconds(r['downtime_seconds'])} in {r['outages']} outages "
        "(no ready instance routed, from routing events)",
    )
    return table


def causes_table(r: dict[str, Any]) -> Table:
    """Failures by cause: each kind's count and share of the failures, most frequent first
    (the kinds in the words of every other surface)."""
    table = Table(title="failures by cause", title_justify="left", header_style="bold")
    for column, justify in (("cause", "left"), ("failures", "right"), ("share", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    counts: dict[str, int] = r["failure_causes"]
    total = sum(counts.values())
    for kind, count in counts.items():
        table.add_row(causes.label(kind), str(count), _rate(count / total if total else None))
    return table


def apps_table(parts: list[dict[str, Any]]) -> Table:
    """One row per app+environment with the main rates."""
    table = Table(header_style="bold")
    for column in ("app/env", "deploys", "success", "change failure", "restore", "downtime"):
        table.add_column(column)
    for part in parts:
        table.add_row(
            f"{part['app']}/{part['env']}",
            str(part["deployments"]),
            _rate(part["success_rate"]),
            _rate(part["change_failure_rate"]),
            _seconds(part["time_to_restore"]["mean_seconds"]),
            _seconds(part["downtime_seconds"]),
        )
    return table


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Observe")(report)
