"""What one running server holds: store, ports, controller and release operations.

Callers: ``api.server`` builds it; ``api.routes`` reads it from ``app.state.runtime``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

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
    workdir: Path | None = None
    """The app's home: instances, hooks and file secrets work here. The server decides it
    (``--workdir``, default the state directory's parent), never a caller."""

    @property
    def home(self) -> Path:
        return self.workdir if self.workdir is not None else self.state_dir.parent
