"""What the hosts platform remembers on the controller's machine, under ``state_dir/hosts/``.

``groups/<app>.<env>.json``: the hosts app+env was ever placed on and the remote ``path``, so
listing finds instances without the spec; ``instances/<id>.json``: the host of one instance, so
stopping it needs only its id. The hosts' own files stay the truth about the instances.
Callers: ``platform.HostsPlatform``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from baepo.core.ports import HostConfig, HostsTarget
from baepo.errors import ConfigError

PREFIX = "h-"  # every instance id of the hosts platform starts with it


class Records:
    """The two kinds of records, as small JSON files written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _group_file(self, app: str, env: str) -> Path:
        return self.root / "groups" / f"{app}.{env}.json"

    def _instance_file(self, instance_id: str) -> Path:
        if not instance_id.startswith(PREFIX) or "/" in instance_id or ".." in instance_id:
            raise ConfigError(f"{instance_id!r} is not an instance id of the hosts platform")
        return self.root / "instances" / f"{instance_id}.json"

    def remember_group(self, app: str, env: str, target: HostsTarget) -> None:
        """Add ``target``'s hosts to those of app+env (hosts dropped from a spec stay listed
        until their instances are gone)."""
        group = self.group(app, env)
        hosts = {(h.address, h.port): h for h in (group[1] if group else [])}
        hosts.update({(h.address, h.port): h for h in target.hosts})
        data = {"path": target.path, "hosts": [asdict(h) for h in hosts.values()]}
        _write_json(self._group_file(app, env), data)

    def group(self, app: str, env: str) -> tuple[str, list[HostConfig]] | None:
        """The remote path and hosts of app+env; None when it never ran on hosts."""
        data = _read_json(self._group_file(app, env))
        if data is None:
            return None
        return str(data["path"]), [_host(h) for h in data.get("hosts", [])]

    def remember_instance(
        self, instance_id: str, app: str, env: str, host: HostConfig, path: str
    ) -> None:
        if not self._instance_file(instance_id).exists():
            data = {"app": app, "env": env, "host": asdict(host), "path": path}
            _write_json(self._instance_file(instance_id), data)

    def where(self, instance_id: str) -> tuple[str, str, HostConfig, str] | None:
        """(app, env, host, path) of an instance; None when unknown."""
        data = _read_json(self._instance_file(instance_id))
        if data is None:
            return None
        return str(data["app"]), str(data["env"]), _host(data["host"]), str(data["path"])

    def belongs(self, instance_id: str, app: str, env: str) -> bool:
        data = _read_json(self._instance_file(instance_id))
        return data is None or (data.get("app"), data.get("env")) == (app, env)

    def forget_instance(self, instance_id: str) -> None:
        self._instance_file(instance_id).unlink(missing_ok=True)


def _host(data: dict[str, Any]) -> HostConfig:
    labels = tuple((str(k), str(v)) for k, v in data.get("labels", ()))
    return HostConfig(
        address=str(data["address"]),
        port=int(data.get("port", 22)),
        user=str(data.get("user", "root")),
        key=data.get("key"),
        labels=labels,
        known_hosts=data.get("known_hosts"),
        python=str(data.get("python") or "python3"),
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    tmp.replace(path)
