"""The ``notifications:`` section: channels that hear about releases, sent through apprise.

Each channel names an apprise URL (Slack, e-mail, a JSON webhook...), the release events it
wants and, optionally, its own message template. Specs are stored and shown by the API, so a
URL that carries a secret must come from the server's environment (``url_env``); a literal
``url`` that holds a password or a token is refused by :func:`secret_in_url`.

Callers: ``spec.models`` (the field), ``notify`` (reads the channels, renders the templates).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from baepo.spec.base import SpecModel
from baepo.spec.files import APP_NAME_RE

ENV_NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
FIELD_RE = re.compile(r"\{(\w*)\}")


class NotifyEvent(StrEnum):
    """A release event a channel can subscribe to."""

    STARTED = "started"  # a rollout was created (deploy, undo, retry)
    STEP = "step"  # a canary or blue-green step completed
    PAUSED = "paused"  # a person paused the rollout, or it paused itself
    PROMOTED = "promoted"  # a person promoted it, or it is taking all traffic
    SUCCEEDED = "succeeded"  # the new revision is stable
    FAILED = "failed"  # failed with nothing to go back to
    ROLLED_BACK = "rolled_back"  # a guard, an analysis or a person rolled it back
    ABORTED = "aborted"  # a person aborted it
    APPROVAL_NEEDED = "approval_needed"  # a step waits for `baepo promote`


EventName = Literal[
    "started",
    "step",
    "paused",
    "promoted",
    "succeeded",
    "failed",
    "rolled_back",
    "aborted",
    "approval_needed",
]
"""A :class:`NotifyEvent` as written in a spec (checked strictly, like every spec value)."""

DEFAULT_EVENTS: tuple[EventName, ...] = (
    "started",
    "paused",
    "promoted",
    "succeeded",
    "failed",
    "rolled_back",
    "aborted",
    "approval_needed",
)
"""Every event but ``step``."""

TEMPLATE_FIELDS = (
    "app",
    "env",
    "version",
    "revision",
    "event",
    "reason",
    "link",
    "actor",
    "cause",
    "evidence",
)
"""The ``{field}`` names a template may use."""

SECRET_KEYS = frozenset(
    {"pass", "password", "pwd", "token", "secret", "key", "apikey", "api_key", "webhook"}
)
"""Query parameters whose value is a secret whatever it looks like."""

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-~+=]{16,}$")


def looks_like_token(text: str) -> bool:
    """At least 16 characters of letters, digits and ``_-~+=``, with letters and digits."""
    return (
        bool(_TOKEN_RE.match(text))
        and any(c.isalpha() for c in text)
        and any(c.isdigit() for c in text)
    )


def secret_in_url(url: str) -> str | None:
    """What in ``url`` looks like a secret, in plain words (never the secret), or None.

    The rule: a password in the user part (``user:password@``); a query parameter named
    like a secret (``password``, ``token``, ``key``...); or a host, path segment or query
    value that looks like a token (see :func:`looks_like_token`), as in Slack or Discord
    webhook URLs.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
        host = parts.hostname or ""
    except ValueError:
        return "it cannot be parsed"
    if password:
        return "it holds a password"
    query = parse_qsl(parts.query, keep_blank_values=True)
    for key, value in query:
        if key.lstrip(":+-").lower() in SECRET_KEYS and value:
            return f"its query parameter {key!r} holds a secret"
    if looks_like_token(unquote(host)):
        return "its host looks like a token"
    if any(looks_like_token(unquote(s)) for s in parts.path.split("/")):
        return "its path holds what looks like a token"
    if any(looks_like_token(value) for _, value in query):
        return "a query value looks like a token"
    return None


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names used in ``template``, in order."""
    return FIELD_RE.findall(template)


class ChannelSpec(SpecModel):
    """One notification channel: where to send, which events, and how the message reads."""

    name: str = Field(
        pattern=APP_NAME_RE,
        description="The channel's name, used in logs: lower-case letters, digits and dashes.",
        examples=["team-slack"],
    )
    url_env: str | None = Field(
        default=None,
        pattern=ENV_NAME_RE,
        description=(
            "The name of an environment variable of the baepo server that holds the apprise "
            "URL (e.g. `SLACK_URL`), read at each send. Use it for every URL with a token or "
            "a password: the spec is stored and shown by the API."
        ),
        examples=["SLACK_URL"],
    )
    url: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "The apprise URL itself (e.g. `json://hooks.internal/baepo`, "
            "`mailto://smtp.internal?to=ops@example.com`), only when it holds no secret: a "
            "password, a secret query parameter or a token-like part is refused; use "
            "`url_env` then. Exactly one of `url` and `url_env`."
        ),
    )
    events: list[EventName] = Field(
        default_factory=lambda: list(DEFAULT_EVENTS),
        min_length=1,
        description=(
            "The events to send: `started`, `step`, `paused`, `promoted`, `succeeded`, "
            "`failed`, `rolled_back`, `aborted`, `approval_needed`. Default: all but `step`."
        ),
    )
    template: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "The message, with `{app}`, `{env}`, `{version}`, `{revision}`, `{event}`, "
            "`{reason}`, `{link}` (the dashboard), `{actor}`, `{cause}` (the failure's cause: "
            "`cause: <kind>: <summary>`) and `{evidence}` (its evidence, a line each) replaced. "
            "Default: a sentence per event naming the environment, the version and the reason, "
            "then the cause and its evidence for `failed`, `rolled_back` and `aborted`."
        ),
        examples=["{app} {version} {event} in {env}: {reason} {link}"],
    )

    @field_validator("url")
    @classmethod
    def _no_secret(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "://" not in value:
            raise ValueError("expected an apprise URL such as json://host/path or mailto://host")
        why = secret_in_url(value)
        if why is not None:
            raise ValueError(
                f"this URL looks like it carries a secret ({why}); the spec is stored and "
                "shown by the API: put the URL in an environment variable of the baepo server "
                "and name it with url_env"
            )
        return value

    @field_validator("template")
    @classmethod
    def _known_fields(cls, value: str | None) -> str | None:
        if value is None:
            return None
        unknown = [f for f in template_fields(value) if f not in TEMPLATE_FIELDS]
        if unknown:
            known = ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
            raise ValueError(f"unknown template field {{{unknown[0]}}}; known: {known}")
        return value

    @model_validator(mode="after")
    def _one_url(self) -> ChannelSpec:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url_env (preferred) and url")
        return self


def _unique_names(channels: list[ChannelSpec]) -> list[ChannelSpec]:
    seen: set[str] = set()
    for channel in channels:
        if channel.name in seen:
            raise ValueError(f"two channels are named {channel.name!r}; names must be unique")
        seen.add(channel.name)
    return channels


Channels = Annotated[list[ChannelSpec], AfterValidator(_unique_names)]
"""The ``notifications:`` list: channel names are unique."""
