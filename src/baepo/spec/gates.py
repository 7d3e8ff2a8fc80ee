"""Gates around a release: checks before and after, hooks, and the app's migrations.

Callers: ``spec.models`` (the ``checks``, ``hooks`` and ``migrate`` fields); the controller
runs them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from baepo.spec.base import SpecModel
from baepo.spec.units import Duration


class HttpCheckSpec(SpecModel):
    """An HTTP probe: passes when the answer's status is expected (and its body matches)."""

    url: str = Field(description="The URL to request. `{{env.NAME}}` placeholders are filled.")
    method: str = Field(default="GET", description="The HTTP method.")
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=list, description="Statuses that pass. Default: any 2xx."
    )
    contains: str | None = Field(
        default=None, description="Text the answer's body must contain to pass."
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers.")


class CheckSpec(SpecModel):
    """One check: a command (passes when it exits 0) or an HTTP probe."""

    name: str = Field(min_length=1, description="The check's name, shown with its result.")
    command: list[str] | None = Field(
        default=None, description="The program and its arguments, run without a shell."
    )
    http: HttpCheckSpec | None = Field(default=None, description="An HTTP probe instead.")
    timeout: Duration = Field(default=30.0, description="How long one attempt may take.")
    retries: int = Field(default=0, ge=0, le=100, description="Attempts after a failed one.")
    retry_interval: Duration = Field(default=2.0, description="Time between two attempts.")


class ChecksSpec(SpecModel):
    """Checks that must pass before a release starts and after it is promoted."""

    before: list[CheckSpec] = Field(
        default_factory=list, description="Run before anything starts; a failure stops the deploy."
    )
    after: list[CheckSpec] = Field(
        default_factory=list,
        description="Run once the new revision serves all traffic; a failure rolls it back.",
    )


class HookSpec(SpecModel):
    """A command run at one moment of a release."""

    name: str | None = Field(default=None, description="A name for the history; default argv[0].")
    command: list[str] = Field(
        min_length=1, description="The program and its arguments, run without a shell."
    )
    timeout: Duration = Field(default=300.0, description="How long it may take.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")


class HooksSpec(SpecModel):
    """Commands run around a release, with `BAEPO_APP`, `BAEPO_ENV`, `BAEPO_REVISION`,
    `BAEPO_VERSION` and `BAEPO_PREVIOUS_REVISION` in their environment."""

    pre_deploy: list[HookSpec] = Field(
        default_factory=list, description="Before anything starts; a failure stops the deploy."
    )
    post_deploy: list[HookSpec] = Field(
        default_factory=list, description="After the new revision is promoted."
    )
    on_rollback: list[HookSpec] = Field(
        default_factory=list, description="After a rollout is rolled back."
    )
    on_failure: list[HookSpec] = Field(
        default_factory=list, description="After a rollout fails, or a gate or hook fails."
    )


class MigrateSpec(SpecModel):
    """The app's own database migration commands. `{target}` in an argument is replaced by
    the target given with `baepo migrate up|down --target N` (empty otherwise); it is also
    in `BAEPO_MIGRATE_TARGET`."""

    up: list[str] = Field(min_length=1, description="Migrates up; run before traffic shifts.")
    down: list[str] | None = Field(default=None, description="Migrates down.")
    status: list[str] | None = Field(default=None, description="Prints the current state.")
    timeout: Duration = Field(default=600.0, description="How long one command may take.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
