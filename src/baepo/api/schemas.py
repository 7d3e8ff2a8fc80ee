"""Request bodies of the REST API (``extra="forbid"``: an unknown field is an error).

Callers: ``api.routes``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from baepo.core.model import DEFAULT_ENV
from baepo.spec.base import Line, Text


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeployBody(Body):
    """Release the spec in ``spec_yaml`` (the text of a baepo.yaml)."""

    spec_yaml: str = Field(max_length=1_000_000, description="The spec file's text.")
    spec_path: str = Field(
        min_length=1, description="Absolute path of the spec file; its folder is the app's home."
    )
    env: str = Field(default=DEFAULT_ENV, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    version: Line | None = Field(default=None, min_length=1, max_length=128)
    message: Text = Field(default="", max_length=2000)
    actor: Line = Field(default="unknown", min_length=1, max_length=200)
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
    actor: Line = Field(default="unknown", min_length=1, max_length=200)


class DownBody(Body):
    env: str = Field(default=DEFAULT_ENV, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    actor: Line = Field(default="unknown", min_length=1, max_length=200)


class SteerBody(Body):
    """Promote, pause, resume, abort or retry the rollout of an app in one environment."""

    env: str = Field(default=DEFAULT_ENV, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    actor: Line = Field(default="unknown", min_length=1, max_length=200)
    full: bool = Field(default=False, description="promote: skip every remaining step.")
