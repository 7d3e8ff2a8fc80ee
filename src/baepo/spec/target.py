"""Where an app's instances run: this machine (``local``) or plain Linux servers over SSH.

Callers: ``spec.models`` (the ``target`` field); ``controller.desired`` turns it into the
``InstanceSpec.target`` that ``platforms.dispatch`` routes on.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from baepo.spec.base import SpecModel
from baepo.spec.secrets import file_problem
from baepo.spec.units import Duration

_ADDRESS_RE = re.compile(r"^(\[[0-9a-fA-F:]+\]|[0-9a-fA-F:]+|[A-Za-z0-9](?:[A-Za-z0-9.\-]*))$")
_USER_RE = re.compile(r"^[a-z_][a-z0-9_.\-]{0,31}$")
_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/\-]{0,62}$")
_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_COMMAND_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+\-]*$")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


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


class BuildSpec(SpecModel):
    """A command run on each host in the unpacked release folder, once per host and revision,
    before any instance of the revision starts there; its failure fails the start."""

    command: list[str] = Field(
        min_length=1,
        description=(
            "The program and its arguments, run without a shell in the release folder (in "
            "`run.cwd` inside it when set, where the instances start), with `run.env` and "
            "`BAEPO_APP`, `BAEPO_ENV`, `BAEPO_REVISION`, `BAEPO_VERSION` in its "
            "environment (not the spec's secrets). A release folder that built successfully "
            "is not built again."
        ),
        examples=[["python3", "-m", "pip", "install", "-r", "requirements.txt", "-t", "lib"]],
    )
    timeout: Duration = Field(
        default=600.0,
        description="How long it may take; then it is killed and the start fails.",
    )


class ReleaseSpec(SpecModel):
    """`hosts`: what is shipped to each host as the release folder. Without `archive` or
    `url`, the spec's folder is uploaded (as a tar archive)."""

    archive: str | None = Field(
        default=None,
        description=(
            "A `.tar`, `.tar.gz` or `.tgz` file inside the spec's folder on the controller's "
            "machine (a relative path without `..`; it must not lead out of the folder, "
            "`{version}` included), uploaded to each host and unpacked as the release folder. "
            "`{version}` is replaced by the revision's version."
        ),
        examples=["dist/shop-{version}.tar.gz"],
    )
    url: str | None = Field(
        default=None,
        description=(
            "An http(s) URL of a `.tar`, `.tar.gz` or `.tgz` file that each host downloads "
            "itself and unpacks as the release folder. `{version}` is replaced by the "
            "revision's version."
        ),
        examples=["https://artifacts.example.com/shop-{version}.tar.gz"],
    )
    sha256: str | None = Field(
        default=None,
        description=(
            "With `url`: the file's SHA-256 (64 hex digits); a host that downloads anything "
            "else refuses it and the start fails."
        ),
    )
    build: BuildSpec | None = Field(
        default=None,
        description="A command that builds the release on each host before instances start.",
    )

    @field_validator("archive")
    @classmethod
    def _archive(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.endswith(ARCHIVE_SUFFIXES) or "\0" in value:
            raise ValueError("expected a .tar, .tar.gz or .tgz file, e.g. dist/shop.tar.gz")
        problem = file_problem(value, "the release archive", "or give its `url`")
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc or " " in value:
                raise ValueError(
                    "expected an http:// or https:// URL, e.g. https://example.com/shop.tar.gz"
                )
        return value

    @field_validator("sha256")
    @classmethod
    def _sha256(cls, value: str | None) -> str | None:
        if value is not None:
            if not _SHA256_RE.match(value):
                raise ValueError("expected 64 hex digits (the output of `sha256sum FILE`)")
            return value.lower()
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ReleaseSpec:
        if self.archive is not None and self.url is not None:
            raise ValueError("give either `archive` or `url`, not both")
        if self.sha256 is not None and self.url is None:
            raise ValueError("`sha256` checks a download: it needs `url`")
        return self


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
        le=1000,
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
    python: str = Field(
        default="python3",
        description=(
            "`hosts`: the Python interpreter (3.10 or newer) that runs baepo's agent on each "
            "host: an absolute path, e.g. `/usr/bin/python3`, or a command looked up on the SSH "
            "user's `PATH` (the default, `python3`). An absolute path skips the `PATH` lookup "
            "and any shim on it (pyenv, asdf) that would run on every agent command."
        ),
        examples=["/usr/bin/python3"],
    )
    path: str = Field(
        default="/srv/baepo",
        description=(
            "`hosts`: the folder on each host under which releases go, as "
            "`<path>/<app>/<env>/r<revision>/`, with the instances' files beside them."
        ),
    )
    release: ReleaseSpec | None = Field(
        default=None,
        description=(
            "`hosts`: where the release folder comes from (an archive, a URL) and how it is "
            "built on the host. Default: the spec's folder, uploaded."
        ),
    )

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or "\0" in value or ".." in value.split("/"):
            raise ValueError("expected an absolute path without '..', e.g. /srv/baepo")
        return value.rstrip("/") or "/"

    @field_validator("python")
    @classmethod
    def _python(cls, value: str) -> str:
        if value.startswith("/"):
            if (
                "\0" in value
                or ".." in value.split("/")
                or value.endswith("/")
                or any(c.isspace() for c in value)
            ):
                raise ValueError(
                    "expected an absolute path of an interpreter without '..' or spaces, "
                    "e.g. /usr/bin/python3"
                )
        elif not _COMMAND_RE.match(value):
            raise ValueError(
                "expected an absolute path (e.g. /usr/bin/python3) or a bare command name "
                "(e.g. python3.11), without arguments"
            )
        return value

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
        elif self.release is not None:
            raise ValueError("release: only `kind: hosts` takes a release")
        elif self.python != "python3":  # the default: a resolved spec holds every field
            raise ValueError("python: only `kind: hosts` runs an agent on hosts")
        return self
