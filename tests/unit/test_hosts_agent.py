"""The agent's file handling, run here on a temporary folder: releases unpacked once and old
ones pruned, status of instance folders, unsafe archives refused."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from baepo.platforms.hosts import agent


def archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_unpack_once_and_keep_the_newest_releases_and_those_in_use(tmp_path: Path) -> None:
    app = tmp_path / "shop" / "prod"
    (app / "instances" / "h-r1-aaaaaa").mkdir(parents=True)
    agent.write_json(app / "instances" / "h-r1-aaaaaa" / agent.INSTANCE_FILE, {"revision": 1})
    for number in range(1, 9):
        tar = archive(app / f"r{number}.tar", {"app.py": f"v{number}".encode()})
        agent.unpack(tar, app / f"r{number}")
        assert not tar.exists()
    kept = sorted(p.name for p in app.iterdir() if p.name.startswith("r"))
    assert kept == ["r1", "r4", "r5", "r6", "r7", "r8"]
    again = archive(app / "r8.tar", {"app.py": b"other"})
    agent.unpack(again, app / "r8")  # already there: left as it is
    assert (app / "r8" / "app.py").read_text() == "v8"


def test_unpack_refuses_members_outside_the_release(tmp_path: Path) -> None:
    tar = archive(tmp_path / "r1.tar", {"../escape.txt": b"x"})
    with pytest.raises((SystemExit, tarfile.TarError)):
        agent.unpack(tar, tmp_path / "r1")
    assert not (tmp_path / "escape.txt").exists()


def test_status_reports_a_dead_agent_as_failed_and_archives_stopped_ones(tmp_path: Path) -> None:
    base = tmp_path / "instances"
    for name, phase in (("h-r1-aaaaaa", "running"), ("h-r1-bbbbbb", "stopped")):
        directory = base / name
        directory.mkdir(parents=True)
        agent.write_json(directory / agent.INSTANCE_FILE, {"revision": 1, "port": 5000})
        agent.write_json(directory / agent.STATE_FILE, {"phase": phase, "pid": None})
        (directory / agent.PID_FILE).write_text("999999999\n")  # no such process
    found = agent.status(base)
    assert [(i["id"], i["phase"]) for i in found] == [("h-r1-aaaaaa", "failed")]
    assert "agent" in found[0]["message"]
    assert (tmp_path / agent.ARCHIVE / "h-r1-bbbbbb").is_dir()
    assert json.loads(json.dumps(found))  # what travels over SSH is plain JSON


def test_status_leaves_out_an_instance_a_stop_archives_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop beside the status moves a folder away mid-listing: the other instances are still
    reported (an error there would hide the whole host and look like an empty one)."""
    base = tmp_path / "instances"
    for name in ("h-r1-aaaaaa", "h-r2-bbbbbb"):
        directory = base / name
        directory.mkdir(parents=True)
        agent.write_json(directory / agent.INSTANCE_FILE, {"revision": 1, "port": 5000})
        agent.write_json(directory / agent.STATE_FILE, {"phase": "stopping", "pid": None})
    real_agent_pid = agent.agent_pid

    def stop_beside(directory: Path) -> int | None:
        if directory.name == "h-r1-aaaaaa":
            agent.archive(directory)  # what a stop does once its process is gone
        return real_agent_pid(directory)

    monkeypatch.setattr(agent, "agent_pid", stop_beside)
    found = agent.status(base)
    assert [i["id"] for i in found] == ["h-r2-bbbbbb"]
    assert (tmp_path / agent.ARCHIVE / "h-r1-aaaaaa").is_dir()
