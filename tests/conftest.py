"""What every test shares: the OS account a spec's commands run as.

The suite runs as root (CI does), and a root server runs a spec's commands as ``nobody``, who
can neither execute this checkout's interpreter (under /root) nor enter pytest's 0700
temporary folders. Tests that are not about accounts therefore let them run as root, through
the server's documented settings: ``--run-user root --allow-root-instances``, which a server
started on demand reads from BAEPO_RUN_USER and BAEPO_ALLOW_ROOT_INSTANCES, and the same
settings for servers and controllers run inside the test process. Tests about accounts take
the ``default_accounts`` fixture, which restores the defaults (``nobody``, root refused).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from baepo.shell import accounts

AS_ROOT = {"BAEPO_RUN_USER": "root", "BAEPO_ALLOW_ROOT_INSTANCES": "1"}


@pytest.fixture(autouse=True, scope="session")
def spec_commands_as_root() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in AS_ROOT}
    os.environ.update(AS_ROOT)
    accounts.configure(accounts.Settings(default_user="root", allow_root=True))
    yield
    accounts.configure(accounts.Settings())
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def default_accounts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The server's defaults: spec commands as ``nobody``, ``run.user: root`` refused."""
    for name in AS_ROOT:
        monkeypatch.delenv(name, raising=False)
    accounts.configure(accounts.Settings())
    yield
    accounts.configure(accounts.Settings(default_user="root", allow_root=True))
