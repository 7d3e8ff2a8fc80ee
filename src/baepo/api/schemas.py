"""Request bodies of the REST API (``extra="forbid"``: an unknown field is an error).

Callers: ``api.routes``.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from pydantic import BaseModel, ConfigDict, Field

from baepo.core.model import DEFAULT_ENV
from baepo.spec.base import Line, Text


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


SPEC_NAME = Field(
    default="baepo.yaml",
    min_length=1,
    max_length=255,
    description=(
        "The spec file's name, only to name it in messages. The server never reads a path "
        "from a caller: the app's folder is the server's `--workdir`."
    ),
)


def spec_label(name: str) -> str:
    """The name a spec's messages call it by: the last part of ``name``, nothing of a path."""
    return PurePosixPath(name.replace("\\", "/")).name or "baepo.yaml"


class DeployBody(Body):
    """Release the spec in ``spec_yaml`` (the text of a baepo.yaml) from the server's app
    folder."""

    spec_yaml: str = Field(max_length=1_000_000, description="The spec file's text.")
    spec_name: Line = SPEC_NAME
    env: str = Field(default=DEFAULT_ENV, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    version: Line | None = Field(default=None, min_length=1, max_length=128)
    message: Text = Field(default="", max_length=2000)
    supersede: bool = Field(default=False, description="Replace a rollout in progress.")
    override_freeze: Text | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="Deploy inside a freeze window anyway, for this reason (needs admin).",
    )
    dry_run: bool = Field(
        default=False,
        description=(
            "Refuse what a deploy would refuse, but change nothing: the answer's `preview` says "
            "what the deploy would do (revision, changes, steps, gates, commands on hosts)."
        ),
    )


class UndoBody(Body):
    env: str = Field(default=DEFAULT_ENV, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    to_revision: int | None = Field(default=None, ge=1, le=2**31 - 1)
    message: Text = Field(default="", max_length=2000)


class DownBody(Body):
    env: str = Field(default=DEFAULT_ENV, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")


class SteerBody(Body):
    """Promote, pause, resume, abort or retry the rollout of an app in one environment."""

    env: str = Field(default=DEFAULT_ENV, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    full: bool = Field(default=False, description="promote: skip every remaining step.")
