"""Where an app's instances run: this machine (``local``) or plain Linux servers over SSH.

Callers: ``spec.models`` (the ``target`` field); ``controller.desired`` turns it into the
``InstanceSpec.target`` that ``platforms.dispatch`` routes on.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from baepo.spec.base import SpecModel

_ADDRESS_RE = re.compile(r"^(\[[0-9a-fA-F:]+\]|[0-9a-fA-F:]+|[A-Za-z0-9](?:[A-Za-z0-9.\-]*))$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_.\-]{0,31}$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/\-]{0,62}$")


class HostSpec(SpecModel):
    """One server reached over SSH; it needs only `python3` and an SSH server."""

    address: str = Field(
        description=(
            "The host's name or IP address. Instances listen on it and the router (on the "
            "controller's machine) sends traffic to it, so it must be reachable from there."
        ),
        examples=["10.0.0.11"],
    )
    port: int = Field(default=22, ge=1, le=65535, description="The SSH port.")
    user: str = Field(default="root", description="The SSH user the instances run as.")
    key: str | None = Field(
        default=None,
        description=(
            "Path of the SSH private key (`~` is expanded). Without it, the SSH agent and the "
            "user's default keys are used."
        ),
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Free labels shown with the host's instances."
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not _ADDRESS_RE.match(value):
            raise ValueError("expected a host name or an IP address, e.g. 10.0.0.11")
        return value.strip("[]")

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not _USER_RE.match(value):
            raise ValueError("expected a Unix user name, e.g. deploy")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _LABEL_RE.match(name):
                raise ValueError(f"{name!r} is not a valid label name")
        return value


class TargetSpec(SpecModel):
    """Where instances run. `local`: processes on the controller's machine. `hosts`: processes
    on the listed servers, reached over SSH, supervised there by baepo's small agent."""

    kind: Literal["local", "hosts"] = Field(
        default="local",
        description=(
            "`local` (the default): this machine. `hosts`: the servers in `hosts`; see "
            "docs/hosts.md."
        ),
    )
    hosts: list[HostSpec] = Field(
        default_factory=list,
        description="`hosts`: the servers; replicas are spread evenly across them.",
    )
    max_failed_hosts: int = Field(
        default=0,
        ge=0,
        description=(
            "`hosts`: how many hosts may be unreachable while instances are placed; beyond "
            "that, starting an instance fails."
        ),
    )
    known_hosts: str | None = Field(
        default=None,
        description=(
            "`hosts`: path of an OpenSSH `known_hosts` file (`~` is expanded) the hosts' keys "
            "must match. Without it, host keys are not checked."
        ),
    )
    path: str = Field(
        default="/srv/baepo",
        description=(
            "`hosts`: the folder on each host under which releases go, as "
            "`<path>/<app>/<env>/r<revision>/`, with the instances' files beside them."
        ),
    )

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or "\0" in value or ".." in value.split("/"):
            raise ValueError("expected an absolute path without '..', e.g. /srv/baepo")
        return value.rstrip("/") or "/"

    @model_validator(mode="after")
    def _hosts_match_kind(self) -> TargetSpec:
        if self.kind == "hosts":
            if not self.hosts:
                raise ValueError("hosts: `kind: hosts` needs at least one host")
            seen: set[tuple[str, int]] = set()
            for index, host in enumerate(self.hosts):
                if (host.address, host.port) in seen:
                    raise ValueError(f"hosts[{index}]: {host.address}:{host.port} is listed twice")
                seen.add((host.address, host.port))
            if self.max_failed_hosts >= len(self.hosts):
                raise ValueError("max_failed_hosts: must be smaller than the number of hosts")
        elif self.hosts:
            raise ValueError("hosts: only `kind: hosts` takes hosts")
        return self
