"""The test fleet: ``scripts/fleet up 3`` for the session, ``scripts/fleet down`` at the end.

Each host is a network namespace with its own sshd (see scripts/fleet). When the machine cannot
build one (no root, no ``ip`` or ``sshd``) the test is skipped, or fails when ``CI=true``.
Callers: the ``test_hosts_*`` integration tests, which import the ``fleet`` fixture
(``from fleet import fleet``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "fleet"
SIZE = 3


@dataclass(frozen=True)
class Fleet:
    """The hosts' addresses, the SSH key that logs in to every one as root, the hosts' keys
    (an OpenSSH known_hosts file), the bridge address."""

    addresses: tuple[str, ...]
    key: Path
    known_hosts: Path
    gateway: str = "10.213.0.1"
    user: str = "root"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the test fleet needs root (network namespaces)"
    for tool in ("ip", "unshare", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"the test fleet needs {tool!r}"
    if not Path(os.environ.get("SSHD", "/usr/sbin/sshd")).exists():
        return "the test fleet needs sshd (Debian package openssh-server)"
    return None


def _script(*args: str, directory: Path) -> str:
    env = {**os.environ, "BAEPO_FLEET_DIR": str(directory)}
    done = subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"scripts/fleet {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    missing = _missing()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    directory = tmp_path_factory.mktemp("fleet") / "hosts"
    _script("down", directory=directory)  # whatever an interrupted session left behind
    _script("up", str(SIZE), directory=directory)
    try:
        yield Fleet(
            addresses=tuple(f"10.213.0.{10 + i}" for i in range(1, SIZE + 1)),
            key=directory / "id_ed25519",
            known_hosts=directory / "known_hosts",
        )
    finally:
        _script("down", directory=directory)
        assert_nothing_left(directory)


def assert_nothing_left(directory: Path) -> None:
    """After ``scripts/fleet down``: no namespace, link, sshd or file of the fleet remains."""
    namespaces = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=False).stdout
    assert "baepo-h" not in namespaces, namespaces
    assert "baepo-br0" not in links and "veth-h" not in links, links
    assert not directory.exists()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert str(directory) not in cmdline, f"pid {entry.name} left: {cmdline}"
