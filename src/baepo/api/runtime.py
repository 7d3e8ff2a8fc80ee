"""What one running server holds: store, ports, controller and release operations.

Callers: ``api.server`` builds it; ``api.routes`` reads it from ``app.state.runtime``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from baepo.api.trusted_hosts import HostNames
from baepo.controller.loop import Controller
from baepo.controller.releases import Releases
from baepo.controller.steering import Steering
from baepo.core.ports import Platform, Router, Store
from baepo.notify import Notifier


@dataclass
class Runtime:
    state_dir: Path
    store: Store
    platform: Platform
    router: Router
    controller: Controller
    releases: Releases
    steering: Steering
    pid: int = field(default_factory=os.getpid)
    notifier: Notifier | None = None
    auth_required: bool = False  # every request needs a token (else: loopback, local user)
    local_token: str | None = None  # the local credential (``api.local_credential``)
    owner: str = "local"  # the local user, as ``user@host``: the actor of local requests
    hosts: HostNames | None = None  # the Host names it answers (None: any, for tests)
    workdir: Path | None = None
    """The app's home: instances, hooks and file secrets work here. The server decides it
    (``--workdir``, default the state directory's parent), never a caller."""

    @property
    def home(self) -> Path:
        return self.workdir if self.workdir is not None else self.state_dir.parent
