"""Deploy locks and concurrent deploys through the real CLI and server: a lock held by one
actor refuses another's deploy until it is released, two deploys started together let exactly
one through, and only the holder (or an admin with --force) may unlock. The actors are API
tokens named alice and bob: an actor is always the credential's name."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from harness import SampleProject, serving

pytestmark = pytest.mark.slow


def token_of(project: SampleProject, actor: str) -> str:
    """The API token named ``actor`` (an admin: only the lock decides here), made once."""
    made = project.root / f".token-{actor}"
    if not made.exists():
        args = ("token", "create", "--name", actor, "--role", "admin", "--env", "*")
        made.write_text(project.ok(*args).strip())
    return made.read_text()


def as_actor(project: SampleProject, actor: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "baepo", *args],
        cwd=project.root,
        env={**project.env, "BAEPO_TOKEN": token_of(project, actor)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_lock_refuses_another_actors_deploy_until_unlocked(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    locked = as_actor(project, "alice", "lock", "--reason", "db migration", "-o", "json")
    assert locked.returncode == 0, locked.stderr
    view = json.loads(locked.stdout)
    assert (view["locked"], view["holder"], view["reason"]) == (True, "alice", "db migration")
    assert project.api("/api/v1/apps/sample/lock")["holder"] == "alice"

    refused = as_actor(project, "bob", "deploy", "--no-wait")
    assert refused.returncode == 5, refused.stderr
    assert "sample in default is locked by alice since " in refused.stderr
    assert " UTC: db migration" in refused.stderr
    assert "baepo unlock" in refused.stderr
    again = as_actor(project, "alice", "lock")
    assert again.returncode == 5 and "locked by alice" in again.stderr, again.stderr

    unlocked = as_actor(project, "alice", "unlock")
    assert unlocked.returncode == 0, unlocked.stderr
    assert "unlocked sample in default" in unlocked.stdout
    assert project.api("/api/v1/apps/sample/lock")["locked"] is False

    deployed = as_actor(project, "bob", "deploy", "--wait")
    assert deployed.returncode == 0, deployed.stderr
    project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 serving")


def test_the_holder_deploys_through_its_own_lock_and_others_cannot_undo(
    project: SampleProject,
) -> None:
    project.write("1.0.0", replicas=1)
    assert as_actor(project, "alice", "lock").returncode == 0
    deployed = as_actor(project, "alice", "deploy", "--wait")
    assert deployed.returncode == 0, deployed.stderr
    project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 serving")
    undone = as_actor(project, "bob", "undo")
    assert undone.returncode == 5, undone.stderr
    assert "sample in default is locked by alice" in undone.stderr


def test_two_concurrent_deploys_let_exactly_one_through(project: SampleProject) -> None:
    project.write("1.0.0", replicas=2, extra_env={"SAMPLE_START_DELAY": "2"})
    project.ok("deploy", "--wait")
    tokens = {actor: token_of(project, actor) for actor in ("alice", "bob")}
    deploys = {
        actor: subprocess.Popen(
            [sys.executable, "-m", "baepo", "deploy", "--version", version, "--no-wait"],
            cwd=project.root,
            env={**project.env, "BAEPO_TOKEN": tokens[actor]},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for actor, version in (("alice", "2.0.0"), ("bob", "3.0.0"))
    }
    results = {actor: (p.wait(timeout=120), *p.communicate()) for actor, p in deploys.items()}
    codes = sorted(code for code, _, _ in results.values())
    assert codes == [0, 5], results
    winner = next(actor for actor, (code, _, _) in results.items() if code == 0)
    loser_err = next(err for code, _, err in results.values() if code == 5)
    assert (
        f"sample in default is being deployed by {winner} (rollout 2, revision 2) since "
        in loser_err
    ), loser_err
    assert " UTC" in loser_err and "--supersede" in loser_err, loser_err
    project.wait_for(lambda s: serving(s, 2, 2), timeout=120, what="revision 2 serving")


def test_unlocking_another_actors_lock_needs_force(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    assert as_actor(project, "alice", "lock", "-r", "release day").returncode == 0
    refused = as_actor(project, "bob", "unlock")
    assert refused.returncode == 5, refused.stderr
    assert "locked by alice" in refused.stderr and "only alice may unlock it" in refused.stderr
    assert "--force" in refused.stderr
    assert project.api("/api/v1/apps/sample/lock")["holder"] == "alice"

    forced = as_actor(project, "bob", "unlock", "--force", "-o", "json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["changed"] is True
    assert project.api("/api/v1/apps/sample/lock")["locked"] is False
    nothing = as_actor(project, "bob", "unlock")
    assert nothing.returncode == 0 and "was not locked" in nothing.stdout
