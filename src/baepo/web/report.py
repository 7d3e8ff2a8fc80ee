"""The dashboard's report page, ``/ui/report``: release KPIs with charts.

The headline numbers and the per app+environment table come from ``core.kpi.build_report``
over the same histories as ``GET /api/v1/report`` (``api.report_routes.histories``: only the
environments the caller may view); the charts (deployments per day by outcome, the duration
of each deployment) are drawn by ``static/dashboard.js`` from the JSON in
``<script id="report-data">``. Callers: ``web.pages`` includes the router.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, time
from typing import Any

from fastapi import APIRouter, Request, Response

from baepo.api import report_routes
from baepo.core import causes, kpi
from baepo.web import view

router = APIRouter()

ENV_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PERIODS = ("7d", "30d", "90d", "365d")
CHARTED = (
    ("healthy", "succeeded"),
    ("rolled_back", "rolled back"),
    ("failed", "failed"),
    ("aborted", "aborted"),
)
"""The outcomes the per-day chart stacks, with their labels; the others go in "other"."""


@router.get("/report", response_model=None)
async def report_page(
    request: Request, env: str = "", app: str = "", since: str = "30d"
) -> Response:
    """Release KPIs of the period, in total and per app+environment, with charts."""
    visit = await asyncio.to_thread(view.visit, request)
    if visit.principal is None:
        return view.to_login(request)
    caller = visit.principal
    env, app, since = env.strip(), app.strip(), since.strip() or "30d"
    store = view.runtime(request).store
    known = await asyncio.to_thread(store.list_apps)
    visible = [a for a in known if caller.can("viewer", a.env)]
    context: dict[str, Any] = {
        "env": env,
        "app": app,
        "since": since,
        "periods": PERIODS,
        "envs": sorted({a.env for a in visible}),
        "apps": sorted({a.app for a in visible}),
        "problems": [],
        "result": None,
    }
    now = datetime.now(UTC)
    problems = []
    if env and not ENV_NAME.match(env):
        problems.append(
            f"Environment: {env!r} is not an environment name (lowercase letters, digits "
            "and dashes, at most 63)."
        )
    start = now
    try:
        start = kpi.parse_moment(since, now)
    except ValueError as exc:
        problems.append(f"Period: {exc}.")
    else:
        if start >= now:
            problems.append(f"Period: {since!r} does not start in the past.")
    if problems:
        context["problems"] = problems
        return view.render(request, visit, "report.html", context, status=422)
    if env and not caller.can("viewer", env):
        context["problems"] = [f"{caller.name} may not view {env}."]
        return view.render(request, visit, "report.html", context, status=403)
    histories = await asyncio.to_thread(
        report_routes.histories, store, caller, app=app or None, env=env or None
    )
    result = kpi.build_report(histories, start, now, app=app or None, env=env or None)
    days = kpi.daily_outcomes(histories, start, now)
    durations = kpi.deploy_durations(histories, start, now)
    context.update(
        result=result,
        total=headline(result),
        parts=[headline(part) for part in result.apps],
        days=[(day.isoformat(), counts) for day, counts in days if sum(counts.values())],
        durations=durations,
        seconds=seconds,
        report_json=script_json(chart_data(days, durations)),
    )
    return view.render(request, visit, "report.html", context)


def headline(report: kpi.Report) -> dict[str, Any]:
    """A report's numbers as the page shows them."""
    return {
        "app": report.app,
        "env": report.env,
        "deployments": report.deployments,
        "per_day": f"{report.deployments_per_day:.2f}",
        "per_week": f"{report.deployments_per_week:.1f}",
        "success_rate": percent(report.success_rate),
        "healthy": report.outcomes.get("healthy", 0),
        "finished": report.finished,
        "deploy_mean": seconds(report.deploy_time.mean_seconds),
        "deploy_median": seconds(report.deploy_time.median_seconds),
        "change_failures": report.change_failures,
        "change_failure_rate": percent(report.change_failure_rate),
        "restore_mean": seconds(report.time_to_restore.mean_seconds),
        "restore_median": seconds(report.time_to_restore.median_seconds),
        "unrestored": report.unrestored,
        "rollbacks": report.rollbacks,
        "rollback_mean": seconds(report.rollback_time.mean_seconds),
        "downtime": seconds(report.downtime_seconds),
        "outages": report.outages,
        "outcomes": report.outcomes,
        "failure_causes": [
            {"kind": kind, "label": causes.label(kind), "count": count}
            for kind, count in report.failure_causes.items()
        ],
    }


def chart_data(
    days: list[tuple[Any, dict[str, int]]], durations: list[kpi.DeployDuration]
) -> dict[str, Any]:
    """What ``dashboard.js`` plots: per UTC day (Unix seconds at midnight) the deployments of
    each charted outcome and "other" (superseded, in progress); per deployment its start,
    duration in seconds and outcome."""
    charted = {key for key, _ in CHARTED}
    series = [
        {"key": key, "label": label, "values": [counts[key] for _, counts in days]}
        for key, label in CHARTED
    ]
    series.append(
        {
            "key": "other",
            "label": "superseded or in progress",
            "values": [sum(n for k, n in counts.items() if k not in charted) for _, counts in days],
        }
    )
    return {
        "days": [datetime.combine(day, time(), UTC).timestamp() for day, _ in days],
        "dates": [day.isoformat() for day, _ in days],
        "outcomes": series,
        "durations": [
            {
                "at": d.started_at.timestamp(),
                "seconds": d.seconds,
                "outcome": d.outcome,
                "label": f"{d.app} in {d.env}, revision {d.revision}",
            }
            for d in durations
        ],
    }


def script_json(data: dict[str, Any]) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` left to close it."""
    text = json.dumps(data)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def seconds(value: float | None) -> str:
    """A duration for people: ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``, ``3 d 04 h``."""
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f} s"
    whole = round(value)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600:02d} h"
