"""From store events to notification messages: the mapping, the fields, the templates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from baepo.core.model import Cause, CauseKind, Event
from baepo.notify import messages
from baepo.spec.notifications import TEMPLATE_FIELDS, ChannelSpec, NotifyEvent

AT = datetime(2025, 1, 1, tzinfo=UTC)


def event(kind: str, message: str = "", actor: str = "controller", revision: int = 2) -> Event:
    return Event("shop", "prod", kind, message, AT, rollout_id=7, revision=revision, actor=actor)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("rollout.created", NotifyEvent.STARTED),
        ("rollout.step", NotifyEvent.STEP),
        ("rollout.promoted", NotifyEvent.PROMOTED),
        ("rollout.promoting", NotifyEvent.PROMOTED),
        ("rollout.healthy", NotifyEvent.SUCCEEDED),
        ("rollout.failed", NotifyEvent.FAILED),
        ("rollout.rolled_back", NotifyEvent.ROLLED_BACK),
        ("rollback.guard", NotifyEvent.ROLLED_BACK),
        ("rollout.undone", NotifyEvent.ROLLED_BACK),
        ("rollout.aborted", NotifyEvent.ABORTED),
        ("rollout.progressing", None),
        ("rollout.superseded", None),
        ("rollout.resumed", None),
        ("traffic.changed", None),
        ("instance.ready", None),
        ("instance.failed", None),
        ("app.down", None),
    ],
)
def test_event_kinds_map_to_notification_events(kind: str, expected: NotifyEvent | None) -> None:
    assert messages.notify_event(event(kind, "x")) == expected


def test_a_step_waiting_for_a_person_needs_approval_and_a_pause_by_a_person_does_not() -> None:
    waiting = event("rollout.paused", "step 2 (pause): waiting for `baepo promote`")
    assert messages.notify_event(waiting) == NotifyEvent.APPROVAL_NEEDED
    by_person = event("rollout.paused", "rollout 7 paused by alice", actor="alice")
    assert messages.notify_event(by_person) == NotifyEvent.PAUSED
    inconclusive = event("rollout.paused", "step 2: analysis inconclusive")
    assert messages.notify_event(inconclusive) == NotifyEvent.PAUSED


def test_fields_name_everything_a_template_may_use() -> None:
    e = event("rollout.rolled_back", "rollout 7: rollback guard error_rate: 12% > 5%.")
    fields = messages.message_fields(e, NotifyEvent.ROLLED_BACK, "2.0.0", "http://127.0.0.1:9/")
    assert set(fields) == set(TEMPLATE_FIELDS)
    assert fields == {
        "app": "shop",
        "env": "prod",
        "version": "2.0.0",
        "revision": "2",
        "event": "rolled_back",
        "reason": "rollback guard error_rate: 12% > 5%",
        "link": "http://127.0.0.1:9/apps/shop?env=prod",
        "actor": "controller",
        "cause": "",
        "evidence": "",
    }


def test_a_failure_carries_its_cause_and_evidence_and_a_success_has_none() -> None:
    channel = ChannelSpec(name="team", url_env="SLACK_URL")
    cause = Cause(
        CauseKind.GATE,
        "hook 'migrate' (pre_deploy) failed: migrate exited with 3",
        ("exit code 3", "  token=*** rejected"),
    )
    e = event("rollout.failed", "rollout 7: hook 'migrate' (pre_deploy) failed")
    fields = messages.message_fields(e, NotifyEvent.FAILED, "2.0.0", "http://h:1", cause)
    assert fields["cause"] == (
        "cause: gate, hook or migration: hook 'migrate' (pre_deploy) failed: migrate exited with 3"
    )
    body = messages.compose(channel, NotifyEvent.FAILED, fields).body
    assert body.splitlines()[1:] == [fields["cause"], "exit code 3", "  token=*** rejected"]
    custom = ChannelSpec(name="pager", url_env="P", template="{app}: {cause} | {evidence}")
    assert messages.compose(custom, NotifyEvent.FAILED, fields).body == (
        f"shop: {fields['cause']} | exit code 3\n  token=*** rejected"
    )
    ok = messages.message_fields(event("rollout.failed", "x"), NotifyEvent.FAILED, "2", "h")
    assert "\n" not in messages.compose(channel, NotifyEvent.FAILED, ok).body


def test_the_link_quotes_the_environment() -> None:
    assert messages.dashboard_link("http://h:1", "shop", "eu west") == (
        "http://h:1/apps/shop?env=eu%20west"
    )


def test_default_messages_name_environment_version_and_reason() -> None:
    channel = ChannelSpec(name="team", url_env="SLACK_URL")
    for kind in NotifyEvent:
        e = event("rollout.x", "the reason")
        fields = messages.message_fields(e, kind, "2.0.0", "http://h:1")
        message = messages.compose(channel, kind, fields)
        assert message.event == kind
        for words in ("shop", "2.0.0", "prod"):
            assert words in message.title, (kind, message.title)
        for words in ("shop", "2.0.0", "prod", "the reason", "http://h:1/apps/shop?env=prod"):
            assert words in message.body, (kind, message.body)
        assert "{" not in message.body + message.title


def test_a_channel_template_replaces_the_body_only() -> None:
    channel = ChannelSpec(
        name="team",
        url_env="A",
        template=":rotating_light: {app}@{version} {event} ({env}) {not a field}",
    )
    e = event("rollout.failed", "no progress for 600s")
    fields = messages.message_fields(e, NotifyEvent.FAILED, "3.1", "http://h:1")
    message = messages.compose(channel, NotifyEvent.FAILED, fields)
    assert message.body == ":rotating_light: shop@3.1 failed (prod) {not a field}"
    assert message.title == "shop 3.1 failed in prod"


def test_channels_receive_the_events_they_chose() -> None:
    default = ChannelSpec(name="team", url_env="A")
    only = ChannelSpec(name="pager", url_env="B", events=["rolled_back", "failed"])
    assert messages.wanted(default, NotifyEvent.SUCCEEDED)
    assert not messages.wanted(default, NotifyEvent.STEP)
    assert messages.wanted(only, NotifyEvent.ROLLED_BACK)
    assert not messages.wanted(only, NotifyEvent.STARTED)
