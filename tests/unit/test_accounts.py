"""``run.user``: which account a spec's commands run as, and who may execute what."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from baepo.errors import ConfigError
from baepo.shell import accounts
from baepo.shell.accounts import Account, Settings

DEFAULTS = Settings()
NOBODY = Account(name="nobody", uid=65534, gid=65534, home="/nonexistent")


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)


@pytest.fixture
def as_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: NOBODY.uid)


def refusal(user: str | None, settings: Settings = DEFAULTS) -> str:
    with pytest.raises(ConfigError) as caught:
        accounts.run_as(user, settings)
    return str(caught.value)


def test_a_root_server_runs_spec_commands_as_nobody_by_default(as_root: None) -> None:
    assert accounts.run_as(None, DEFAULTS) == NOBODY
    assert accounts.run_as("nobody", DEFAULTS) == NOBODY
    assert NOBODY.environment() == {"HOME": "/nonexistent", "USER": "nobody", "LOGNAME": "nobody"}


def test_root_needs_the_servers_flag(as_root: None) -> None:
    message = refusal("root")
    assert message.startswith("run.user: 'root' has uid 0")
    assert refusal(None, Settings(default_user="root")).startswith("run.user: 'root' has uid 0")
    allowed = Settings(allow_root=True)
    assert accounts.run_as("root", allowed) is None  # no switch: it runs as the server


def test_an_unknown_account_is_a_located_error(as_root: None) -> None:
    assert refusal("no-such-account") == "run.user: no account 'no-such-account' on this machine"
    with pytest.raises(ConfigError) as caught:
        accounts.run_as(None, Settings(default_user="ghost"), field="--run-user")
    assert str(caught.value) == "--run-user: no account 'ghost' on this machine"
    assert caught.value.hint == "create it (useradd --system ghost) or name an existing account"


def test_a_server_that_is_not_root_runs_them_as_itself(as_nobody: None) -> None:
    assert accounts.run_as(None, DEFAULTS) is None
    assert accounts.run_as("nobody", DEFAULTS) is None
    assert refusal("root") == (
        "run.user: the server runs as 'nobody', so the spec's commands run as 'nobody'; "
        "it cannot switch to 'root'"
    )


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAEPO_RUN_USER", "daemon")
    monkeypatch.setenv("BAEPO_ALLOW_ROOT_INSTANCES", "true")
    assert Settings.from_environment() == Settings(default_user="daemon", allow_root=True)
    monkeypatch.delenv("BAEPO_RUN_USER")
    monkeypatch.setenv("BAEPO_ALLOW_ROOT_INSTANCES", "0")
    assert Settings.from_environment() == DEFAULTS
    accounts.configure(Settings(default_user="daemon"))
    try:
        assert accounts.current() == Settings(default_user="daemon")
    finally:
        accounts.configure(None)
    assert accounts.current() == DEFAULTS


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every account may enter (pytest's own are 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix="baepo-accounts-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_may_run_follows_every_folder_and_the_file(open_dir: Path, tmp_path: Path) -> None:
    hidden = tmp_path / "tool"
    hidden.write_text("#!/bin/sh\n")
    hidden.chmod(0o755)
    assert not accounts.may_run(NOBODY, str(hidden))  # under a 0700 folder
    folder = open_dir / "bin"
    folder.mkdir()
    program = folder / "tool"
    program.write_text("#!/bin/sh\n")
    open_dir.chmod(0o755)
    folder.chmod(0o755)
    program.chmod(0o755)
    link = open_dir / "link"
    link.symlink_to(program)
    assert accounts.may_run(NOBODY, str(program))
    assert accounts.may_run(NOBODY, str(link))
    program.chmod(0o744)
    assert not accounts.may_run(NOBODY, str(program))
    program.chmod(0o755)
    folder.chmod(0o750)
    assert not accounts.may_run(NOBODY, str(program))
    assert not accounts.may_run(NOBODY, str(link))  # the target's folder counts too
    assert not accounts.may_run(NOBODY, str(open_dir / "missing"))
    assert accounts.may_run(Account("root", 0, 0, "/root"), str(program))
