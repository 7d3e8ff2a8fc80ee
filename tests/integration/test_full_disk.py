"""A full disk, for real: a small tmpfs mounted for the state directory or the database, filled
up, then the real CLI and server. Each failure must name the path and say what to do.

Needs root (``mount``); a machine where mounting is not allowed fails here rather than skip.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import SampleProject


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, filled to the last byte."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        with (mount / "filler").open("wb", buffering=0) as filler, contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 4096)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def baepo(project: SampleProject, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "baepo", *args],
        cwd=project.root, env=project.env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    return " ".join((done.stdout + done.stderr).split())


def test_a_full_state_disk_names_the_file_it_cannot_write(
    project: SampleProject, full_disk: Path
) -> None:
    project.write("1.0", replicas=1)
    state = full_disk / ".baepo"
    done = baepo(project, "server", "start", "--foreground", "--state-dir", str(state))
    assert done.returncode == 7, one_line(done)
    said = one_line(done)
    # The first file the server writes there: its local credential (or, with --auth
    # required, its lock file).
    assert f"cannot write {state / 'local.token'}: No space left on device" in said
    assert f"free space on the disk that holds {state}" in said
    assert "Traceback" not in said
    argv = ["server", "start", "--foreground", "--state-dir", str(state), "--auth", "required"]
    done = baepo(project, *argv)
    said = one_line(done)
    assert done.returncode == 7, said
    assert f"cannot write {state / 'server.lock'}: No space left on device" in said
    assert "Traceback" not in said


def test_a_full_database_disk_is_named_by_the_command_that_starts_the_server(
    project: SampleProject, full_disk: Path
) -> None:
    project.write("1.0", replicas=1)
    database = full_disk / "db" / "state.db"
    project.env["BAEPO_DATABASE_URL"] = f"sqlite:///{database}"
    done = baepo(project, "status")
    said = one_line(done)
    assert done.returncode == 7, said  # at once, with the server's own words
    assert "the baepo server did not start" in said
    assert "database or disk is full" in said
    assert f"free space on the disk that holds {database}" in said
