"""Square brackets a user writes are printed as written, never read as Rich markup: `[/]` in a
lock reason, a deploy message or a version used to crash other users'
commands with a traceback, and `[bold]x[/bold]` lost its brackets. Real CLI, real server."""

from __future__ import annotations

import json

import pytest
from harness import SampleProject, serving
from test_deploy_locks import as_actor

pytestmark = pytest.mark.slow

MARKUP = "[/] [bold]x[/bold] [red]"
VERSION = "2.0[/][bold]x[/bold][red]"
ACTOR = "carol"  # an actor is a credential's name (a token's: letters, digits, ._@-)


def test_markup_in_reasons_messages_versions_and_actors_prints_as_written(
    project: SampleProject,
) -> None:
    project.write("1.0.0", replicas=1)
    locked = as_actor(project, ACTOR, "lock", "--reason", MARKUP)
    assert locked.returncode == 0, locked.stderr
    assert f"sample in default is locked by {ACTOR}" in locked.stdout, locked.stdout
    assert f": {MARKUP}" in locked.stdout, locked.stdout

    refused = as_actor(project, "bob", "deploy", "--no-wait")
    assert refused.returncode == 5, refused.stderr
    assert f"locked by {ACTOR} since " in refused.stderr, refused.stderr
    assert f" UTC: {MARKUP}" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr

    deployed = as_actor(
        project, ACTOR, "deploy", "--wait", "--version", VERSION, "--message", MARKUP
    )
    assert deployed.returncode == 0, deployed.stderr
    assert "Traceback" not in deployed.stderr
    assert "done: revision 1 serves all traffic" in deployed.stdout, deployed.stdout
    project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 serving")

    status = project.ok("status")
    assert f"stable: revision 1 ({VERSION})" in status, status

    history = project.ok("history")
    assert VERSION in history, history
    assert MARKUP in history, history
    assert ACTOR in history, history
    revisions = json.loads(project.ok("history", "-o", "json"))
    assert (revisions[0]["version"], revisions[0]["message"]) == (VERSION, MARKUP)

    shown = project.ok("history", "1")
    assert f"version {VERSION}  by {ACTOR}" in shown, shown
    assert f"  {MARKUP}" in shown, shown

    unlocked = as_actor(project, ACTOR, "unlock")
    assert unlocked.returncode == 0, unlocked.stderr
