"""The state directory is its owner's alone: 0700 folders, 0600 files, fixed at start."""

from __future__ import annotations

import stat
from pathlib import Path

from baepo.shell import statedir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_secure_closes_an_open_state_dir_and_says_what_it_changed(tmp_path: Path) -> None:
    state = tmp_path / ".baepo"
    (state / "instances" / "sample.default").mkdir(parents=True)
    for folder in (state, state / "instances", state / "instances" / "sample.default"):
        folder.chmod(0o755)
    (state / "state.db").write_text("")
    (state / "state.db").chmod(0o644)
    (state / "secret.key").write_text("")
    (state / "secret.key").chmod(0o600)
    (state / "instances" / "sample.default" / "output.log").write_text("")
    (state / "instances" / "sample.default" / "output.log").chmod(0o664)
    (state / "outside").symlink_to(tmp_path)
    tmp_path.chmod(0o755)

    changed = statedir.secure(state)

    assert changed[0] == state
    assert sorted(p.relative_to(state).as_posix() for p in changed[1:]) == [
        "instances",
        "instances/sample.default",
        "instances/sample.default/output.log",
        "state.db",
    ]
    assert mode(state) == 0o700
    assert mode(state / "instances" / "sample.default") == 0o700
    assert mode(state / "state.db") == 0o600
    assert mode(state / "instances" / "sample.default" / "output.log") == 0o600
    assert mode(tmp_path) == 0o755  # a symlink is not followed
    assert statedir.secure(state) == []


def test_create_makes_a_private_folder(tmp_path: Path) -> None:
    statedir.create(tmp_path / "a" / ".baepo")
    assert mode(tmp_path / "a" / ".baepo") == 0o700
