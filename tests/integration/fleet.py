"""The test fleet: ``scripts/fleet up 3`` for the session, ``scripts/fleet down`` at the end.

Each host is a network namespace with its own sshd (see scripts/fleet). Each test session takes
a fleet network number no other session on the machine holds (a lock file per number), so
parallel test workers and runs each have their own fleet. When the machine cannot
build one (no root, no ``ip`` or ``sshd``) the test is skipped, or fails when ``CI=true``.
The hosts share the machine's programs; the tests run the agent and the sample app with
``PYTHON`` (the system's interpreter, by absolute path: a ``python3`` found on root's ``PATH``
may be a pyenv shim, a bash script that costs every agent command a fraction of a second, and
more than a second under load). Callers: the ``test_hosts_*`` integration tests, which import
the ``fleet`` fixture (``from fleet import fleet``) and ``PYTHON``.
"""

from __future__ import annotations

import contextlib
import fcntl
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
LOCKS = Path("/tmp/baepo-fleet-locks")
NETS = range(1, 100)
PYTHON = "/usr/bin/python3"  # target.python and the sample app's interpreter on the hosts


@dataclass(frozen=True)
class Fleet:
    """The hosts' addresses, the SSH key that logs in to every one as root, the hosts' keys
    (an OpenSSH known_hosts file), the bridge address."""

    addresses: tuple[str, ...]
    key: Path
    known_hosts: Path
    net: int
    user: str = "root"

    @property
    def gateway(self) -> str:
        return f"10.213.{self.net}.1"

    def unused_address(self) -> str:
        """An address on the fleet's bridge that no host has."""
        return f"10.213.{self.net}.99"

    def link(self, host: int) -> str:
        """The bridge side of host ``host``'s (1-based) veth pair: set it down to cut it off."""
        return f"veth{self.net}-h{host}"


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the test fleet needs root (network namespaces)"
    for tool in ("ip", "unshare", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"the test fleet needs {tool!r}"
    if not Path(os.environ.get("SSHD", "/usr/sbin/sshd")).exists():
        return "the test fleet needs sshd (Debian package openssh-server)"
    return _python_missing()


def _python_missing() -> str | None:
    """Why ``PYTHON`` cannot run the agent (missing, or older than 3.10), or None."""
    try:
        done = subprocess.run(
            [PYTHON, "-c", "import sys; print(sys.version_info >= (3, 10))"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except OSError as exc:
        return f"the test fleet runs the agent with {PYTHON}: {exc.strerror or exc}"
    if done.stdout.strip() != "True":
        return f"the test fleet needs Python 3.10 or newer as {PYTHON} (Debian package python3)"
    return None


@contextlib.contextmanager
def _free_net() -> Iterator[int]:
    """A fleet network number held (an exclusive lock on its file) until the block ends."""
    LOCKS.mkdir(parents=True, exist_ok=True)
    for net in NETS:
        handle = (LOCKS / f"{net}.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield net
        finally:
            handle.close()
        return
    raise RuntimeError(f"every fleet network number is taken (locks in {LOCKS})")


def _script(*args: str, directory: Path, net: int) -> str:
    env = {**os.environ, "BAEPO_FLEET_DIR": str(directory), "BAEPO_FLEET_NET": str(net)}
    done = subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"scripts/fleet {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture
def fleet(fleet_hosts: Fleet) -> Fleet:
    """The session's fleet, emptied before the test: on each host nothing runs but its sshd
    and nothing is left under /srv (what an earlier test started there is gone)."""
    _script("reset", directory=fleet_hosts.key.parent, net=fleet_hosts.net)
    return fleet_hosts


@pytest.fixture(scope="session")
def fleet_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The hosts, built once per test session (``conftest`` makes this fixture visible)."""
    missing = _missing()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    directory = tmp_path_factory.mktemp("fleet") / "hosts"
    with _free_net() as net:
        _script("down", directory=directory, net=net)  # what an interrupted session left
        _script("up", str(SIZE), directory=directory, net=net)
        try:
            yield Fleet(
                addresses=tuple(f"10.213.{net}.{10 + i}" for i in range(1, SIZE + 1)),
                key=directory / "id_ed25519",
                known_hosts=directory / "known_hosts",
                net=net,
            )
        finally:
            _script("down", directory=directory, net=net)
            assert_nothing_left(directory, net)


def assert_nothing_left(directory: Path, net: int) -> None:
    """After ``scripts/fleet down``: no namespace, link, sshd or file of the fleet remains."""
    namespaces = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=False).stdout
    assert f"baepo{net}-h" not in namespaces, namespaces
    assert f"baepo-br{net}:" not in links and f"veth{net}-h" not in links, links
    assert not directory.exists()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            assert str(directory) not in cmdline, f"pid {entry.name} left: {cmdline}"
