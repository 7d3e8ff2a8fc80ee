"""A rollout's cause reads the same in ``baepo status``, ``baepo history`` and ``history N``:
``cause: <label>: <summary>`` and its evidence lines, printed as written (never as markup)."""

from __future__ import annotations

from typing import Any

from rich.console import Console, RenderableType

from baepo.cli import render
from baepo.cli.report_commands import causes_table

CAUSE = {
    "kind": "gate",
    "summary": "hook 'migrate' (pre_deploy) failed: migrate exited with 3",
    "evidence": ["exit code 3", "  [bold]not markup[/bold] token=***"],
}


def text_of(renderable: RenderableType) -> str:
    console = Console(width=300, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def rollout(phase: str, cause: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": 4,
        "revision": 2,
        "strategy": "rolling",
        "phase": phase,
        "message": "hook 'migrate' (pre_deploy) failed",
        "duration_seconds": 1.5,
        "finished_at": "2026-12-05T05:00:00+00:00",
        "cause": cause,
    }


def status(**rollouts: Any) -> dict[str, Any]:
    return {"app": "shop", "env": "default", "state": "running", "stable": None, **rollouts}


def test_status_shows_the_last_rollouts_cause_with_its_evidence() -> None:
    shown = text_of(render.status_view(status(last_rollout=rollout("failed", CAUSE))))
    assert (
        "  cause: gate, hook or migration: hook 'migrate' (pre_deploy) failed: "
        "migrate exited with 3"
    ) in shown
    assert "    exit code 3\n" in shown
    assert "[bold]not markup[/bold] token=***" in shown


def test_status_shows_the_cause_of_a_rollout_that_stalls() -> None:
    stalled = {"kind": "infrastructure", "summary": "the router failed", "evidence": []}
    shown = text_of(render.status_view(status(rollout=rollout("progressing", stalled))))
    assert "cause: infrastructure: the router failed" in shown


def test_status_without_a_cause_says_nothing_of_one() -> None:
    shown = text_of(render.status_view(status(last_rollout=rollout("healthy", None))))
    assert "cause" not in shown


def test_history_lists_kind_and_summary_and_one_revision_shows_the_evidence() -> None:
    revisions = [
        {
            "number": 1,
            "version": "1.0",
            "created_by": "alice",
            "created_at": "2026-12-05T05:00:00+00:00",
            "origin": "deploy",
            "rollout": rollout("healthy", None),
        },
        {
            "number": 2,
            "version": "2.0",
            "created_by": "alice",
            "created_at": "2026-12-05T05:00:00+00:00",
            "origin": "deploy",
            "rollout": rollout("failed", CAUSE),
        },
    ]
    table = text_of(render.history_table(revisions))
    assert "cause" in table.splitlines()[1]  # the header
    assert "gate, hook or migration: hook 'migrate'" in table
    assert "exit code 3" not in table
    one = text_of(render.rollout_outcome_text(rollout("failed", CAUSE)))
    assert one.splitlines()[0] == "  rollout 4: failed in 1.5s"
    assert "  cause: gate, hook or migration: hook 'migrate' (pre_deploy) failed" in one
    assert "    exit code 3" in one


def test_history_without_causes_has_no_cause_column() -> None:
    revisions = [
        {
            "number": 1,
            "version": "1.0",
            "created_by": "alice",
            "created_at": "2026-12-05T05:00:00+00:00",
            "origin": "deploy",
            "rollout": rollout("healthy", None),
        }
    ]
    assert "cause" not in text_of(render.history_table(revisions))


def test_long_evidence_shows_its_last_lines() -> None:
    many = {**CAUSE, "evidence": [f"line {n}" for n in range(20)]}
    shown = text_of(render.cause_text(many))
    assert "… 6 earlier" in shown and "line 5" not in shown and "line 19" in shown


def test_report_counts_failures_by_cause_in_the_same_words() -> None:
    shown = text_of(causes_table({"failure_causes": {"gate": 3, "aborted": 1}}))
    assert "failures by cause" in shown
    assert "gate, hook or migration │        3 │ 75.0%" in shown
    assert "stopped by a person     │        1 │ 25.0%" in shown
