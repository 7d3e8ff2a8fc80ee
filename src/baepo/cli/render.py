"""Rich renderings of API answers: status, rollout progress, history, events.

Pure functions from the API's JSON to Rich renderables, so ``--watch`` and ``--wait`` redraw
the same view. Every string from the API (versions, messages, names) goes in as ``Text``, never
as Rich markup, so ``[/]`` in a lock reason prints as written. Callers: the view and release
commands.
"""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from baepo.core import causes

PHASE_STYLE = {
    "awaiting_approval": "bold yellow",
    "pending": "yellow",
    "progressing": "cyan",
    "paused": "yellow",
    "promoting": "cyan",
    "healthy": "green",
    "promoted": "green",
    "aborted": "red",
    "rolled_back": "red",
    "failed": "bold red",
    "superseded": "dim",
}


# How a finished rollout reads in the history.
OUTCOME = {"healthy": "promoted"}


def phase_text(phase: str) -> Text:
    return Text(phase.replace("_", " "), style=PHASE_STYLE.get(phase, ""))


def _age(iso: str | None) -> str:
    if not iso:
        return "-"
    seconds = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.0f}d ago"


def status_view(s: dict[str, Any]) -> RenderableType:
    """The whole status of an app: headline, rollout, revisions, instances, events."""
    parts: list[RenderableType] = []
    state_style = "green" if s["state"] == "running" else "yellow"
    head = Text.assemble((s["app"], "bold"), f"  env {s['env']}  ", (s["state"], state_style))
    if s.get("listen"):
        head.append(f"  http://{s['listen']}")
    parts.append(head)
    if s.get("events_dropped"):
        parts.append(
            Text(
                f"{s['events_dropped']} event(s) of this app could not be recorded (see "
                "baepo server status and the server log for the cause)",
                style="bold red",
            )
        )
    stable = s.get("stable")
    if stable:
        parts.append(Text(f"stable: revision {stable['number']} ({stable['version']})"))
    else:
        parts.append(Text("stable: none yet"))
    rollout = s.get("rollout") or s.get("last_rollout")
    if rollout:
        line = Text(f"rollout {rollout['id']}: revision {rollout['revision']} ")
        line.append(f"({rollout['strategy']}) ")
        undone = _undone(s, rollout)
        line.append_text(Text("undone", style="yellow") if undone else phase_text(rollout["phase"]))
        line.append(f"  {_elapsed(rollout):.1f}s")
        if not s.get("rollout"):
            line.append(f"  finished {_age(rollout['finished_at'])}", style="dim")
        parts.append(line)
        message = undone or rollout.get("message")
        if message:
            parts.append(Text(f"  {message}", style="dim"))
        if rollout.get("cause"):
            parts.append(cause_text(rollout["cause"], indent="  "))
    if s.get("canary"):
        parts.append(steps_text(s["canary"]))
    parts.append(revisions_table(s))
    if s.get("instances"):
        parts.append(instances_table(s["instances"]))
    if s.get("events"):
        parts.append(events_table(s["events"][-8:]))
    return Group(*parts)


def _elapsed(rollout: dict[str, Any]) -> float:
    """A finished rollout's duration; an unfinished one's time since it started (its
    ``duration_seconds`` runs to its last write, which stands still while it is stuck)."""
    if rollout.get("finished_at") or not rollout.get("started_at"):
        return float(rollout["duration_seconds"])
    started = datetime.fromisoformat(rollout["started_at"])
    return max(0.0, (datetime.now(UTC) - started).total_seconds())


def _undone(s: dict[str, Any], rollout: dict[str, Any]) -> str | None:
    """For the last rollout, ended healthy, whose revision is no longer stable (a blue-green
    undo switched back to the warm revision): what serves now, instead of its message."""
    stable = (s.get("stable") or {}).get("number")
    if s.get("rollout") or rollout["phase"] != "healthy" or stable in (None, rollout["revision"]):
        return None
    return f"undone: revision {stable} serves all traffic again"


def judgement_line(metric: dict[str, Any]) -> str:
    """One judged metric of the default canary, e.g. ``errors: evidence 3.1 of 125 needed to
    fail; 410/1200 samples to pass (canary 0.2%, stable 0.1%)``."""
    needed = metric.get("needed")

    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value * 100:.3g}%"

    what = metric["metric"]
    if metric.get("latency_bound_ms") is not None:
        what = f"{what} (over {metric['latency_bound_ms']:g} ms)"
    return (
        f"{what}: evidence {metric['evidence']:.3g} of {metric['threshold']:g} needed to fail; "
        f"{metric['samples']}/{'?' if needed is None else needed} samples to pass "
        f"(canary {rate(metric.get('canary_rate'))}, stable {rate(metric.get('stable_rate'))})"
    )


def steps_text(canary: dict[str, Any]) -> Text:
    """The canary's steps, one a line, with the current one marked."""
    text = Text()
    marks = {
        "done": ("  ✓ ", "green"),
        "current": ("  ▶ ", "bold cyan"),
        "pending": ("    ", "dim"),
    }
    for step in canary["steps"]:
        mark, style = marks[step["state"]]
        text.append(f"{mark}{step['index'] + 1}. {step['description']}\n", style=style)
    for metric in canary.get("judgement") or []:
        text.append(f"      {judgement_line(metric)}\n", style="cyan")
    if canary.get("promoting"):
        text.append(
            "  ▶ promoting: scale up, switch all traffic, retire stable\n", style="bold cyan"
        )
    return text


def revisions_table(s: dict[str, Any]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    columns = ("revision", "ready/desired", "traffic", "req/s", "5xx", "errors", "p95", "requests")
    for column in columns:
        table.add_column(column, justify="right" if column != "revision" else "left")
    desired: dict[str, int] = s.get("desired", {})
    revisions = sorted(
        {int(r) for r in desired} | {i["revision"] for i in s.get("instances", [])}, reverse=True
    )
    traffic = {t["revision"]: t["percent"] for t in s.get("traffic", [])}
    stats = {st["revision"]: st for st in s.get("stats", [])}
    stable = (s.get("stable") or {}).get("number")
    for rev in revisions:
        instances = [i for i in s.get("instances", []) if i["revision"] == rev]
        ready = sum(1 for i in instances if i["ready"])
        mark = " (stable)" if rev == stable else ""
        st = stats.get(rev, {})
        live = st.get("live") or {}
        table.add_row(
            f"r{rev}{mark}",
            f"{ready}/{desired.get(str(rev), 0)}",
            f"{traffic.get(rev, 0):.0f}%",
            f"{live.get('requests_per_second', 0):.1f}",
            _percent(live.get("rate_5xx")),
            _percent(live.get("error_rate")),
            "-" if live.get("p95_ms") is None else f"{live['p95_ms']:.1f}ms",
            str(st.get("requests", 0)),
        )
    return table


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def instances_table(instances: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("instance", "revision", "address", "phase", "ready", "restarts", "note"):
        table.add_column(column)
    for i in sorted(instances, key=lambda i: (-i["revision"], i["id"])):
        table.add_row(
            Text(i["id"]),
            f"r{i['revision']}",
            Text(i["address"]),
            Text(i["phase"]),
            Text("yes", style="green") if i["ready"] else Text("no", style="yellow"),
            str(i["restarts"]),
            Text(i.get("message") or ""),
        )
    return table


def events_table(events: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("at", style="dim")
    table.add_column("event")
    for e in events:
        table.add_row(e["at"][11:23], event_text(e))
    return table


def event_text(e: dict[str, Any]) -> Text:
    kind = e["kind"]
    style = "red" if any(w in kind for w in ("failed", "rolled_back", "aborted")) else ""
    style = "green" if kind.endswith("healthy") else style
    return Text(e["message"], style=style)


def history_table(revisions: list[dict[str, Any]]) -> Table:
    table = Table(header_style="bold")
    caused = any((r.get("rollout") or {}).get("cause") for r in revisions)
    columns = ("rev", "version", "outcome", "duration", "by", "when", "why")
    for column in columns + (("cause",) if caused else ()):
        table.add_column(column)
    for r in revisions:
        rollout = r.get("rollout") or {}
        outcome = (
            phase_text(OUTCOME.get(rollout["phase"], rollout["phase"])) if rollout else Text("-")
        )
        if r.get("stable"):
            outcome.append(" (serving)", style="bold green")
        why = r.get("message") or ""
        if r.get("origin") and r["origin"] != "deploy":
            why = f"{r['origin']}: {why}" if why else r["origin"]
        cells: list[str | Text] = [
            str(r["number"]),
            Text(r["version"]),
            outcome,
            f"{rollout['duration_seconds']:.1f}s" if rollout else "-",
            Text(r["created_by"]),
            _age(r["created_at"]),
            Text(why),
        ]
        if caused:
            cells.append(
                cause_text(rollout["cause"], evidence=False) if rollout.get("cause") else Text("")
            )
        table.add_row(*cells)
    return table


CAUSE_EVIDENCE_SHOWN = 14


def rollout_outcome_text(rollout: dict[str, Any]) -> Text:
    """One revision's last rollout for ``history <revision>``: outcome, duration and, when it
    did not succeed, its cause with the evidence."""
    text = Text(f"  rollout {rollout['id']}: ")
    text.append_text(phase_text(OUTCOME.get(rollout["phase"], rollout["phase"])))
    text.append(f" in {rollout['duration_seconds']:.1f}s")
    if rollout.get("message"):
        text.append(f"\n  {rollout['message']}", style="dim")
    if rollout.get("cause"):
        text.append("\n")
        text.append_text(cause_text(rollout["cause"], indent="  "))
    return text


def cause_text(cause: dict[str, Any], *, evidence: bool = True, indent: str = "") -> Text:
    """A rollout's cause as every CLI view shows it: ``cause: <label>: <summary>``, then its
    evidence lines (the last ``CAUSE_EVIDENCE_SHOWN``) unless ``evidence`` is false. The words
    are ``core.causes``', the same on the dashboard and in notifications."""
    text = Text(f"{indent}cause: ", style="bold red")
    text.append(causes.headline(cause), style="red")
    if evidence:
        lines = list(cause.get("evidence") or [])
        if len(lines) > CAUSE_EVIDENCE_SHOWN:
            text.append(f"\n{indent}  … {len(lines) - CAUSE_EVIDENCE_SHOWN} earlier", style="dim")
            lines = lines[-CAUSE_EVIDENCE_SHOWN:]
        for line in lines:
            text.append(f"\n{indent}  {line}", style="dim")
    return text


_VERDICT_STYLE = {
    "successful": "green",
    "failed": "red",
    "error": "red",
    "inconclusive": "yellow",
    "cancelled": "magenta",
    "running": "cyan",
}
_SHOWN_MEASUREMENTS = 10


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def analysis_view(runs: list[dict[str, Any]]) -> RenderableType:
    """Each analysis run: its verdict and why, then each metric's condition, verdict, reason
    and latest measurements."""
    parts: list[RenderableType] = []
    for run in runs:
        style = _VERDICT_STYLE.get(run["phase"], "")
        head = Text.assemble(
            (f"revision {run['revision']}", "bold"),
            f"  {run['kind'].replace('_', '-')} analysis ({run['key']}) of rollout "
            f"{run['rollout_id']}: ",
            (run["phase"], style),
            f"  started {_age(run['started_at'])}",
        )
        parts += [head, Text(f"  {run['message']}")]
        for metric in run["metrics"]:
            dry = "  [dry run: never acted on]" if metric.get("dry_run") else ""
            parts.append(
                Text.assemble(
                    f"  {metric['template']}/{metric['name']}: ",
                    (metric["phase"], _VERDICT_STYLE.get(metric["phase"], "")),
                    f"  {metric.get('condition', '')}{dry}",
                )
            )
            parts.append(Text(f"    {metric.get('reason', '')}", style="dim"))
            table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
            shown = metric["measurements"][-_SHOWN_MEASUREMENTS:]
            if len(metric["measurements"]) > len(shown):
                parts.append(Text(f"    … {len(metric['measurements']) - len(shown)} earlier"))
            for m in shown:
                table.add_row(
                    "   ",
                    (m["at"] or "")[11:19],
                    Text(m["phase"], style=_VERDICT_STYLE.get(m["phase"], "")),
                    Text(_value(m["value"])),
                    Text(m["message"]),
                )
            if shown:
                parts.append(table)
        parts.append(Text(""))
    return Group(*parts)


def config_diff(old: dict[str, Any], new: dict[str, Any], old_name: str, new_name: str) -> str:
    """A unified diff of two revisions' configs as YAML; empty when they are the same."""
    import yaml  # here, not at every CLI start (as rich.syntax below, with pygments)

    return "".join(
        difflib.unified_diff(
            yaml.safe_dump(old, sort_keys=False).splitlines(keepends=True),
            yaml.safe_dump(new, sort_keys=False).splitlines(keepends=True),
            fromfile=old_name,
            tofile=new_name,
        )
    )


def secret_changes_text(changes: dict[str, str], sources: dict[str, str]) -> Text:
    """Secrets by name and source, each added/removed/changed/unchanged: never a value."""
    text = Text()
    for variable, change in changes.items():
        style = "dim" if change == "unchanged" else "bold yellow"
        text.append(f"  {variable:<24} ")
        text.append(change, style=style)
        text.append(f"  ({sources.get(variable, '')})\n")
    return text


def preview_view(preview: dict[str, Any]) -> RenderableType:
    """A dry-run deploy's preview: changes, strategy, gates, approval, commands on hosts."""
    import yaml
    from rich.syntax import Syntax

    parts: list[RenderableType] = []
    number = preview["revision"]
    stable = preview.get("stable")
    if stable is None:
        parts.append(Text("first revision: config", style="bold"))
        parts.append(Syntax(yaml.safe_dump(preview["config"], sort_keys=False), "yaml"))
    else:
        diff = config_diff(
            stable["config"],
            preview["config"],
            f"revision {stable['revision']}",
            f"revision {number}",
        )
        parts.append(Text(f"config changes since revision {stable['revision']}:", style="bold"))
        parts.append(Syntax(diff, "diff") if diff else Text("  (none)", style="dim"))
    if preview.get("secret_changes"):
        parts.append(Text("secrets:", style="bold"))
        parts.append(secret_changes_text(preview["secret_changes"], preview.get("secrets", {})))
    if preview.get("supersedes_rollout"):
        parts.append(Text(f"replaces rollout {preview['supersedes_rollout']} in progress"))
    strategy = preview["strategy"]
    parts.append(Text(f"strategy: {strategy[0]}", style="bold"))
    parts += [Text(f"  {line}") for line in strategy[1:]]
    if preview.get("approval_required"):
        parts.append(Text("approval: required (waits for baepo approve)", style="bold yellow"))
    if preview.get("gates"):
        parts.append(Text("gates, in order:", style="bold"))
        parts += [Text(f"  {line}") for line in preview["gates"]]
    if preview.get("hosts_plan"):
        parts.append(Text("on the hosts:", style="bold"))
        parts += [Text(line) for line in preview["hosts_plan"]]
    parts.append(Text("nothing was changed (dry run)", style="dim"))
    return Group(*parts)
