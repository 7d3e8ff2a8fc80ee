"""Release policies of an environment: approval before a deploy, and freeze windows.

Callers: ``spec.models`` (the ``approval`` and ``freeze`` fields); the controller reads them
when a deploy is asked for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from baepo.spec.base import SpecModel
from baepo.spec.units import Duration


class ApprovalSpec(SpecModel):
    """Whether a deploy waits for an approver. `approval: required` is short for
    `{required: true}`."""

    required: bool = Field(
        default=False,
        description=(
            "A deploy waits in `awaiting_approval` until a user or token with the approver "
            "role runs `baepo approve` (or `baepo reject`)."
        ),
    )
    allow_self_approval: bool = Field(
        default=False,
        description="Whether the one who asked for the deploy may approve it themselves.",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if value == "required" or value is True:
            return {"required": True}
        if value in ("none", "off") or value is False:
            return {"required": False}
        return value


class FreezeWindow(SpecModel):
    """A time when deploys are refused: a recurring `schedule` (cron) with a `duration`, or
    a date range from `start` to `end`."""

    reason: str = Field(min_length=1, description="Shown to whoever is refused.")
    schedule: str | None = Field(
        default=None,
        description="A cron expression (5 fields) for when the window opens, e.g. `0 18 * * 5`.",
        examples=["0 18 * * 5"],
    )
    duration: Duration | None = Field(
        default=None, description="With `schedule`: how long the window stays open."
    )
    timezone: str = Field(
        default="UTC", description="The IANA time zone `schedule` is read in, e.g. Asia/Seoul."
    )
    start: datetime | None = Field(
        default=None, description="With `end`: the first moment of a one-off window (ISO 8601)."
    )
    end: datetime | None = Field(default=None, description="The end of a one-off window.")
