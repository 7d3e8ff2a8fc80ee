"""From a store event to the words a channel receives. Pure: no I/O, no clock.

:func:`notify_event` maps an event kind (``rollout.healthy``, ``rollback.guard``...) to the
spec's notification event (``succeeded``, ``rolled_back``...), :func:`message_fields` gathers
the template fields and :func:`compose` renders a channel's template, or the default one.

Callers: ``notify.notifier``; the unit tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from baepo.core import causes
from baepo.core.model import Cause, Event
from baepo.spec.notifications import FIELD_RE, TEMPLATE_FIELDS, ChannelSpec, NotifyEvent

CONTROLLER = "controller"

_BY_KIND: dict[str, NotifyEvent] = {
    "rollout.created": NotifyEvent.STARTED,
    "rollout.step": NotifyEvent.STEP,
    "rollout.paused": NotifyEvent.PAUSED,
    "rollout.promoted": NotifyEvent.PROMOTED,
    "rollout.promoting": NotifyEvent.PROMOTED,
    "rollout.healthy": NotifyEvent.SUCCEEDED,
    "rollout.failed": NotifyEvent.FAILED,
    "rollout.rolled_back": NotifyEvent.ROLLED_BACK,
    "rollback.guard": NotifyEvent.ROLLED_BACK,
    "rollout.undone": NotifyEvent.ROLLED_BACK,
    "rollout.aborted": NotifyEvent.ABORTED,
    "approval.requested": NotifyEvent.APPROVAL_NEEDED,
}
"""Event kinds that are news for a channel; every other kind (``instance.*``,
``traffic.changed``, ``rollout.progressing``...) is not."""

_WAITING_FOR_A_PERSON = "baepo promote"

TITLES: dict[NotifyEvent, str] = {
    NotifyEvent.STARTED: "{app} {version} is rolling out in {env}",
    NotifyEvent.STEP: "{app} {version} in {env}: step done",
    NotifyEvent.PAUSED: "{app} {version} is paused in {env}",
    NotifyEvent.PROMOTED: "{app} {version} promoted in {env}",
    NotifyEvent.SUCCEEDED: "{app} {version} is live in {env}",
    NotifyEvent.FAILED: "{app} {version} failed in {env}",
    NotifyEvent.ROLLED_BACK: "{app} {version} rolled back in {env}",
    NotifyEvent.ABORTED: "{app} {version} aborted in {env}",
    NotifyEvent.APPROVAL_NEEDED: "{app} {version} waits for approval in {env}",
}
"""The subject of each event (an e-mail's subject, a title where the service shows one)."""

TEMPLATES: dict[NotifyEvent, str] = {
    NotifyEvent.STARTED: (
        "{app} {version} (revision {revision}) is rolling out in {env}: {reason}. {link}"
    ),
    NotifyEvent.STEP: "{app} {version} (revision {revision}) in {env}: {reason}. {link}",
    NotifyEvent.PAUSED: (
        "{app} {version} (revision {revision}) is paused in {env}: {reason}. {link}"
    ),
    NotifyEvent.PROMOTED: (
        "{app} {version} (revision {revision}) promoted in {env}: {reason}. {link}"
    ),
    NotifyEvent.SUCCEEDED: (
        "{app} {version} (revision {revision}) is live in {env}: {reason}. {link}"
    ),
    NotifyEvent.FAILED: (
        "{app} {version} (revision {revision}) failed in {env}: {reason}. {link}\n"
        "{cause}\n{evidence}"
    ),
    NotifyEvent.ROLLED_BACK: (
        "{app} {version} (revision {revision}) was rolled back in {env}: {reason}. {link}\n"
        "{cause}\n{evidence}"
    ),
    NotifyEvent.ABORTED: (
        "{app} {version} (revision {revision}) was aborted in {env}: {reason}. {link}\n"
        "{cause}\n{evidence}"
    ),
    NotifyEvent.APPROVAL_NEEDED: (
        "{app} {version} (revision {revision}) waits for approval in {env}: {reason}. "
        "Go on with `baepo promote` or stop with `baepo abort`. {link}"
    ),
}
"""The default message of each event; a channel's ``template`` replaces it."""

_ROLLOUT_PREFIX = re.compile(r"^rollout \d+: ")


@dataclass(frozen=True)
class Message:
    """One rendered notification."""

    event: NotifyEvent
    title: str
    body: str


def notify_event(event: Event) -> NotifyEvent | None:
    """The notification event ``event`` stands for, or None when it is no news for channels.

    The controller pausing a rollout at a step that waits for ``baepo promote`` is
    ``approval_needed``; a person pausing it (or any other pause) is ``paused``.
    """
    mapped = _BY_KIND.get(event.kind)
    if (
        mapped == NotifyEvent.PAUSED
        and event.actor == CONTROLLER
        and _WAITING_FOR_A_PERSON in event.message
    ):
        return NotifyEvent.APPROVAL_NEEDED
    return mapped


def dashboard_link(server_url: str, app: str, env: str) -> str:
    """The dashboard page of app+env on the server at ``server_url``."""
    return f"{server_url.rstrip('/')}/apps/{quote(app)}?env={quote(env)}"


def reason_of(event: Event) -> str:
    """The event's message without the ``rollout N:`` prefix the store's records carry."""
    return _ROLLOUT_PREFIX.sub("", event.message).strip().rstrip(".")


def message_fields(
    event: Event,
    kind: NotifyEvent,
    version: str | None,
    server_url: str,
    cause: Cause | None = None,
) -> dict[str, str]:
    """The value of every template field for ``event``; ``cause`` is its rollout's, shown
    with the words of every other surface (``core.causes``). Its evidence was redacted where
    it was recorded (a gate's output shows its secrets as ``***``)."""
    return {
        "app": event.app,
        "env": event.env,
        "version": version or "?",
        "revision": str(event.revision) if event.revision is not None else "?",
        "event": kind.value,
        "reason": reason_of(event),
        "link": dashboard_link(server_url, event.app, event.env),
        "actor": event.actor,
        "cause": "" if cause is None else f"cause: {causes.headline(cause.to_json())}",
        "evidence": "" if cause is None else "\n".join(cause.evidence),
    }


def render(template: str, fields: dict[str, str]) -> str:
    """``template`` with each ``{field}`` replaced; unknown names and other text stay as is."""
    return FIELD_RE.sub(lambda m: fields.get(m.group(1), m.group(0)), template)


def compose(channel: ChannelSpec, kind: NotifyEvent, fields: dict[str, str]) -> Message:
    """The message ``channel`` receives: its template, or the default one of ``kind``."""
    assert set(fields) >= set(TEMPLATE_FIELDS)
    body = render(channel.template or TEMPLATES[kind], fields).rstrip()
    return Message(kind, render(TITLES[kind], fields), body)


def wanted(channel: ChannelSpec, kind: NotifyEvent) -> bool:
    """Whether ``channel`` subscribed to ``kind``."""
    return kind in channel.events
