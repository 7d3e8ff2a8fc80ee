"""What every test shares: the OS account a spec's commands run as.

The suite runs as root (CI does), and a root server runs a spec's commands as ``nobody``, who
can neither execute this checkout's interpreter (under /root) nor enter pytest's 0700
temporary folders. Tests that are not about accounts therefore let them run as root, through
the server's documented settings: ``--run-user root --allow-root-instances``, given as the
variables BAEPO_RUN_USER and BAEPO_ALLOW_ROOT_INSTANCES, which servers started on demand and
platforms and controllers run inside a test process read. Tests about accounts take the
``default_accounts`` fixture, which restores the defaults (``nobody``, root refused).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

AS_ROOT = {"BAEPO_RUN_USER": "root", "BAEPO_ALLOW_ROOT_INSTANCES": "1"}


@pytest.fixture(autouse=True, scope="session")
def spec_commands_as_root() -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in AS_ROOT}
    os.environ.update(AS_ROOT)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def default_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's defaults: spec commands as ``nobody``, ``run.user: root`` refused."""
    for name in AS_ROOT:
        monkeypatch.delenv(name, raising=False)
