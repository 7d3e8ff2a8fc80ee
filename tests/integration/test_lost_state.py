"""State that must never be silently replaced (invariant 12): a lost or emptied database.

Real CLI, server, router and instances: the app is deployed, the server stopped, its database
taken away; the next command must refuse (not time out) with the evidence and the ways out,
while the app keeps serving, and each way out must work.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness import SampleProject, serving, versions

DB_FILES = ("state.db", "state.db-wal", "state.db-shm")


def deployed(project: SampleProject) -> None:
    project.write("1.0", replicas=2)
    project.ok("deploy", "--wait")
    assert versions(project.port, 6) == {"1.0": 6}
    project.ok("server", "stop")


def move_database(project: SampleProject, to: Path) -> None:
    to.mkdir()
    for name in DB_FILES:
        if (project.state_dir / name).exists():
            shutil.move(project.state_dir / name, to / name)


def test_a_deleted_database_is_refused_until_it_is_put_back(project: SampleProject) -> None:
    deployed(project)
    saved = project.root / "saved"
    move_database(project, saved)

    refused = project.baepo("status")
    assert refused.returncode == 5, refused.stderr  # StateError, not a start timeout
    message = " ".join(refused.stderr.split())
    assert "refusing to start" in message
    assert "state.db is missing" in message
    assert "instances/sample.default/ (2 instance(s), 2 supervised process(es) running)" in (
        message
    )
    assert "routers/sample.default/ (router pid" in message
    assert "put the lost database file back at" in message
    assert "--adopt-orphans" in message
    assert not (project.state_dir / "state.db").exists()  # no empty database made
    assert versions(project.port, 6) == {"1.0": 6}  # the data plane never noticed

    for name in DB_FILES:
        if (saved / name).exists():
            shutil.move(saved / name, project.state_dir / name)
    project.ok("status")
    assert serving(project.status(), 1, 2)


def test_an_emptied_database_is_refused_then_adopted_and_replaced_by_a_deploy(
    project: SampleProject,
) -> None:
    deployed(project)
    move_database(project, project.root / "lost")
    (project.state_dir / "state.db").write_bytes(b"")  # an empty file: a fresh database

    refused = project.baepo("history")
    assert refused.returncode == 5, refused.stderr
    message = " ".join(refused.stderr.split())
    assert "does not know them" in message
    assert "instances/sample.default/" in message

    project.ok("server", "start", "--adopt-orphans")
    assert versions(project.port, 6) == {"1.0": 6}
    project.write("2.0", replicas=2)
    project.ok("deploy", "--wait")
    # Numbered after the revision found running, so an old instance is never taken for new.
    final = project.wait_for(lambda s: serving(s, 2, 2), what="revision 2 serving")
    assert {i["revision"] for i in final["instances"]} == {2}
    assert versions(project.port, 6) == {"2.0": 6}
    assert not list((project.state_dir / "instances" / "sample.default").glob("r1-*"))


def with_secret(project: SampleProject, version: str) -> None:
    project.write(version, replicas=1, deadline="300s")  # a hang would outlast the CLI's wait
    project.spec.write_text(project.spec.read_text() + "secrets:\n  DB_PASSWORD: db-password\n")


def test_a_lost_secret_key_is_refused_and_a_deploy_needing_it_fails_at_once(
    project: SampleProject,
) -> None:
    with_secret(project, "1.0")
    (project.root / "pw.txt").write_text("s3cret-value\n")
    project.ok("secret", "set", "db-password", "--from-file", "pw.txt")
    project.ok("deploy", "--wait")
    project.ok("server", "stop")
    key = project.state_dir / "secret.key"
    saved = key.read_bytes()
    key.unlink()

    refused = project.baepo("status")
    assert refused.returncode == 5, refused.stderr
    message = " ".join(refused.stderr.split())
    assert f"the key file {key} is missing: secret db-password of sample in default" in message
    assert "--accept-lost-secrets" in message and "baepo secret set" in message
    assert "s3cret-value" not in message
    assert not key.exists()  # never made anew behind the user's back
    key.write_bytes(saved)
    project.ok("status")  # the key is back: all is well

    project.ok("server", "stop")
    key.unlink()
    project.ok("server", "start", "--accept-lost-secrets")
    with_secret(project, "2.0")
    failed = project.baepo("deploy", "--wait")
    assert failed.returncode == 6, failed.stdout + failed.stderr
    said = " ".join((failed.stdout + failed.stderr).split())
    assert "cannot decrypt a stored secret" in said, said
    assert serving(project.status(), 1, 1)
    assert versions(project.port, 4) == {"1.0": 4}

    project.ok("secret", "set", "db-password", "--from-file", "pw.txt")
    with_secret(project, "3.0")
    project.ok("deploy", "--wait")
    assert versions(project.port, 4) == {"3.0": 4}
