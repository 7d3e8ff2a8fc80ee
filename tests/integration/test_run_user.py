"""Who runs a spec's commands, through the real CLI, server and router, as root (as CI runs).

With the server's defaults, instances, hooks and ``job`` metrics run as ``nobody`` and cannot
read the state directory, whose folders are 0700 and files 0600 (also when an older state
directory was left open); ``run.user: root`` is refused unless the server was started with
``--allow-root-instances``; an account missing on the machine is refused at deploy.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from harness import SampleProject, serving

from baepo import store
from baepo.analysis.measure import MeasureContext
from baepo.core.model import GatePhase
from baepo.gates.backups import restore_backup, take_backup
from baepo.gates.run import run_argv
from baepo.providers.job import JobProvider
from baepo.shell import statedir
from baepo.spec.analysis import MetricSpec
from baepo.spec.backup import BackupSpec

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="switching accounts needs a root server"),
]

# Succeeds only when run as nobody, with nobody's HOME, unable to read the state dir.
CONFINED = (
    'test "$(id -un)" = nobody || exit 3; test "$HOME" = /nonexistent || exit 4; '
    "cat .baepo/state.db > /dev/null 2>&1 && exit 5; "
    "cat .baepo/server.json > /dev/null 2>&1 && exit 6; "
    "cat .baepo/server.log > /dev/null 2>&1 && exit 7; true"
)

SPEC = """\
app: sample
version: "{version}"
run:
  command: [sh, -c, '{confined} && exec python3 app.py --port "$PORT"']
  env: {{PATH: /usr/local/bin:/usr/bin:/bin, SAMPLE_VERSION: "{version}"}}
  stop_grace_period: 2s
{user}replicas: 1
health:
  readiness: {{path: /health/ready, interval: 100ms, timeout: 1s, failure_threshold: 2}}
router:
  listen: "127.0.0.1:{port}"
strategy: {{canary: {{steps: [{{set_weight: 50}}, {{analysis: {{templates: [confined]}}}}]}}}}
restart: {{backoff_initial: 100ms, backoff_max: 1s, crash_loop_restarts: 2, crash_loop_window: 30s}}
progress_deadline: 60s
hooks:
  pre_deploy: [{{name: confined, command: [sh, -c, '{confined}']}}]
analysis:
  confined:
    metrics:
      - name: confined
        provider: job
        job: {{command: [sh, -c, '{confined}']}}
        success_condition: result == 0
"""


@pytest.fixture
def open_project(default_accounts: None) -> Iterator[SampleProject]:
    """A sample project in a folder every account may enter and read (unlike pytest's 0700
    tmp_path), so that only the state directory's own modes keep ``nobody`` out."""
    root = Path(tempfile.mkdtemp(prefix="baepo-run-user-"))
    root.chmod(0o755)
    project = SampleProject(root)
    (root / "app.py").chmod(0o644)
    for name in ("BAEPO_RUN_USER", "BAEPO_ALLOW_ROOT_INSTANCES"):
        project.env.pop(name, None)
    try:
        yield project
    finally:
        project.clean_up()
        shutil.rmtree(root, ignore_errors=True)


def write(project: SampleProject, version: str, *, user: str | None = None) -> None:
    project.spec.write_text(
        SPEC.format(
            version=version,
            confined=CONFINED,
            port=project.port,
            user=f"  user: {user}\n" if user else "",
        )
    )


def open_bits(state_dir: Path) -> list[str]:
    """Paths in the state dir that a group or other account may use, with their modes."""
    found = []
    for path in [state_dir, *state_dir.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & (stat.S_IRWXG | stat.S_IRWXO):
            found.append(f"{path.relative_to(state_dir)} {stat.filemode(mode)}")
    return found


def test_spec_commands_run_as_nobody_and_cannot_read_the_state_dir(
    open_project: SampleProject,
) -> None:
    project = open_project
    # A state dir left open by an older version: the server closes it at start, and says so.
    project.state_dir.mkdir(mode=0o755)
    (project.state_dir / "notes.txt").write_text("left by an older version\n")
    (project.state_dir / "notes.txt").chmod(0o644)

    write(project, "1.0.0")
    project.ok("deploy", "--wait", timeout=120)
    project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 served by nobody")
    # The second revision's pre_deploy hook and its canary's job metric pass only as nobody.
    write(project, "2.0.0")
    project.ok("deploy", "--wait", timeout=120)
    project.wait_for(lambda s: serving(s, 2, 1), what="revision 2 served by nobody")

    assert open_bits(project.state_dir) == []
    assert "private to their owner" in (project.state_dir / "server.log").read_text()
    logs = project.ok("logs", "--tail", "200")
    assert "as user 'nobody'" in logs


def test_root_and_unknown_accounts_are_refused_at_deploy(open_project: SampleProject) -> None:
    project = open_project
    write(project, "1.0.0", user="root")
    refused = project.baepo("deploy", "--wait")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "run.user: 'root' has uid 0" in refused.stderr
    assert "--allow-root-instances" in refused.stderr

    write(project, "1.0.0", user="no-such-account")
    refused = project.baepo("deploy", "--wait")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "run.user: no account 'no-such-account' on this machine" in refused.stderr
    assert list(project.state_dir.glob("instances/*/*")) == []  # nothing was started

    # This checkout's interpreter lives under /root, which nobody may not enter.
    write(project, "1.0.0")
    project.spec.write_text(
        project.spec.read_text().replace("command: [sh,", f'command: ["{sys.executable}",')
    )
    refused = project.baepo("deploy", "--wait")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"'nobody' (run.user) may not execute {sys.executable}" in refused.stderr
    assert "run.command[0]: not executable by 'nobody'" in refused.stderr

    # An admin who accepts the risk: a server started with the flag runs them as root.
    project.ok("server", "stop")
    project.ok("server", "start", "--allow-root-instances")
    write(project, "1.0.0", user="root")
    dry = project.baepo("deploy", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr


@pytest.fixture
def open_folder(default_accounts: None) -> Iterator[Path]:
    """A spec folder every account may enter, with a private state dir holding a key."""
    root = Path(tempfile.mkdtemp(prefix="baepo-run-user-"))
    root.chmod(0o755)
    statedir.create(root / ".baepo")
    fd = os.open(root / ".baepo" / "secret.key", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"master key\n")
    os.close(fd)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


READ_KEY = ["sh", "-c", "id -un; echo HOME=$HOME; cat .baepo/secret.key"]


def test_a_job_metric_runs_as_nobody(open_folder: Path) -> None:
    context = MeasureContext(
        app="sample", env="default", revision=2, baseline=1, window=30.0,
        started_at=datetime(2026, 1, 1, tzinfo=UTC), spec_dir=str(open_folder),
    )  # fmt: skip
    metric = MetricSpec.model_validate(
        {"name": "key", "provider": "job", "job": {"command": READ_KEY}}
    )
    measured = asyncio.run(JobProvider().measure(metric, context))
    assert measured.value != 0
    assert "nobody\nHOME=/nonexistent\n" in measured.output
    assert "Permission denied" in measured.output
    assert "master key" not in measured.output


def test_a_hook_runs_as_the_spec_run_user_and_an_unknown_one_fails_it(open_folder: Path) -> None:
    done = asyncio.run(run_argv(READ_KEY, cwd=str(open_folder), env={}, timeout=30))
    assert not done.passed
    assert "nobody\nHOME=/nonexistent\n" in done.output
    assert "Permission denied" in done.output
    assert "master key" not in done.output

    done = asyncio.run(
        run_argv(READ_KEY, cwd=str(open_folder), env={}, timeout=30, user="no-such-account")
    )
    assert not done.passed
    assert done.message.startswith("run.user: no account 'no-such-account' on this machine")


def test_a_command_backup_runs_as_nobody_and_its_file_stays_private(open_folder: Path) -> None:
    spec = BackupSpec.model_validate(
        {
            "kind": "command",
            "create": ["sh", "-c", 'id -un > "$BAEPO_BACKUP_FILE"; cat .baepo/secret.key '
                       '>> "$BAEPO_BACKUP_FILE" 2>&1; true'],
            "restore": ["sh", "-c", 'id -un; cat "$BAEPO_BACKUP_FILE"'],
        }
    )  # fmt: skip
    state_dir = open_folder / ".baepo"
    with store.open_store(store.sqlite_url(state_dir / "state.db")) as db:
        made = asyncio.run(
            take_backup(
                db, spec, app="sample", env="default", spec_dir=str(open_folder),
                state_dir=state_dir, actor="tester", reason="test",
            )
        )  # fmt: skip
        written = Path(made.location)
        assert written.parent == state_dir / "backups" / "sample" / "default"
        text = written.read_text()
        assert text.startswith("nobody\n")
        assert "Permission denied" in text
        assert "master key" not in text
        info = written.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o600)
        # nobody reads it back from a staging copy, not from the state dir
        asyncio.run(restore_backup(db, made, spec, spec_dir=str(open_folder), actor="tester"))
        [run] = [r for r in db.list_gate_runs("sample", "default") if r.stage == "restore"]
        assert run.phase is GatePhase.PASSED
        assert run.output.startswith("nobody\nnobody\n")


def test_a_server_with_a_missing_or_root_run_user_does_not_start(
    open_project: SampleProject,
) -> None:
    project = open_project
    ghost = project.baepo("server", "start", "--foreground", "--run-user", "ghost", timeout=60)
    assert ghost.returncode == 2, ghost.stdout + ghost.stderr
    assert "--run-user: no account 'ghost' on this machine" in ghost.stderr
    root = project.baepo("server", "start", "--foreground", "--run-user", "root", timeout=60)
    assert root.returncode == 2, root.stdout + root.stderr
    assert "--run-user: 'root' has uid 0" in root.stderr
    assert not (project.state_dir / "server.json").exists()
