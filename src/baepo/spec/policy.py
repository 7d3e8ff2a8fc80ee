"""Release policies of an environment: approval before a deploy, and freeze windows.

Callers: ``spec.models`` (the ``approval`` and ``freeze`` fields); the controller reads them
when a deploy is asked for.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import Field, field_validator, model_validator

from baepo.spec.base import SpecModel
from baepo.spec.units import Duration

_SCHEDULE_CHECK_FROM = datetime(2000, 1, 1, tzinfo=UTC)
"""A fixed start for the check that a schedule fires at all: five cron fields have no year, so
a date that exists (29 February included) matches within 8 years of any start."""


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
        default=None,
        description=(
            "With `end`: the first moment of a one-off window (ISO 8601; without an offset, "
            "UTC; a bare date is its midnight)."
        ),
    )
    end: datetime | None = Field(
        default=None, description="The end of a one-off window (excluded), read like `start`."
    )

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(
                f"expected a cron expression of 5 fields (minute hour day month weekday), "
                f"e.g. 0 18 * * 5; got {len(fields)} in {value!r}"
            )
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a valid cron expression, e.g. 0 18 * * 5")
        try:
            croniter(value, _SCHEDULE_CHECK_FROM, max_years_between_matches=8).get_next(datetime)
        except CroniterBadDateError:
            raise ValueError(
                f"{value!r} never fires (no such date, e.g. 30 February); "
                f"check the day and month fields"
            ) from None
        return " ".join(fields)

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(
                f"{value!r} is not an IANA time zone; use a name such as UTC or Asia/Seoul"
            ) from None
        return value

    @field_validator("start", "end", mode="before")
    @classmethod
    def _midnight_of_date(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(
                    f"expected an ISO 8601 date or time such as 2026-12-20 or "
                    f"2026-12-20T18:00:00+09:00, got {value!r}"
                ) from None
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime.combine(value, time(), tzinfo=UTC)
        return value

    @field_validator("start", "end")
    @classmethod
    def _utc_if_naive(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> FreezeWindow:
        recurring = self.schedule is not None or self.duration is not None
        one_off = self.start is not None or self.end is not None
        if recurring and one_off:
            raise ValueError("give either schedule with duration, or start with end, not both")
        if recurring:
            if self.schedule is None:
                raise ValueError("duration needs a schedule (a cron expression)")
            if not self.duration:
                raise ValueError("schedule needs a duration above 0, e.g. 48h")
        elif one_off:
            if self.start is None or self.end is None:
                missing = "end" if self.end is None else "start"
                raise ValueError(
                    f"a date-range window needs both start and end; {missing} is missing"
                )
            if self.start >= self.end:
                raise ValueError(
                    f"start ({self.start.isoformat()}) must be before end ({self.end.isoformat()})"
                )
        else:
            raise ValueError("give either schedule with duration, or start with end")
        return self
