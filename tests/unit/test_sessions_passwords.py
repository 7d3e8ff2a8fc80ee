"""Password hashes (scrypt, salted), the CSRF check of dashboard sessions and one-time login
links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from baepo import store
from baepo.api import passwords
from baepo.api.auth import hash_secret
from baepo.core.model import WebSession
from baepo.web import sessions


def test_a_password_hash_is_salted_and_verifies_only_its_password() -> None:
    first = passwords.hash_password("correct horse battery")
    second = passwords.hash_password("correct horse battery")
    assert first != second  # a random salt each time
    assert first.startswith("scrypt$32768$8$1$")
    assert "correct horse" not in first
    assert passwords.verify_password("correct horse battery", first)
    assert not passwords.verify_password("correct horse batterY", first)
    assert not passwords.verify_password("", first)


def test_no_user_and_a_garbled_hash_never_verify() -> None:
    assert not passwords.verify_password("anything at all", None)
    assert not passwords.verify_password("anything at all", "scrypt$bad")
    assert not passwords.verify_password("anything at all", "md5$1$1$1$00$00")


def test_short_passwords_are_refused() -> None:
    assert passwords.weakness("short") is not None
    assert passwords.weakness("long enough now") is None


def test_csrf_check_needs_the_session_and_its_exact_token() -> None:
    now = datetime.now(UTC)
    session = WebSession("h", "local", "local", "tok-123", now, now + timedelta(hours=1))
    assert sessions.check_csrf(session, "tok-123")
    assert not sessions.check_csrf(session, "tok-124")
    assert not sessions.check_csrf(session, "")
    assert not sessions.check_csrf(None, "tok-123")


def test_login_throttle_counts_failures_over_a_sliding_window() -> None:
    throttle = sessions.LoginThrottle(limit=3, window=timedelta(minutes=5))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for second in range(3):
        assert not throttle.blocked("user ana", start + timedelta(seconds=second))
        throttle.failed("user ana", start + timedelta(seconds=second))
    assert throttle.blocked("user ana", start + timedelta(minutes=1))
    assert not throttle.blocked("user bob", start + timedelta(minutes=1))
    assert not throttle.blocked("user ana", start + timedelta(minutes=5, seconds=1))


def test_a_login_link_works_once_and_in_time(tmp_path: Path) -> None:
    with store.open_store(store.sqlite_url(tmp_path / "state.db")) as opened:
        now = datetime.now(UTC)
        code = sessions.start_link(opened, now)
        assert not sessions.redeem_link(opened, code + "x", now)
        assert not sessions.redeem_link(opened, "", now)
        assert sessions.redeem_link(opened, code, now + timedelta(minutes=4))
        assert not sessions.redeem_link(opened, code, now)  # used up
        late = sessions.start_link(opened, now)
        assert not sessions.redeem_link(opened, late, now + sessions.LINK_LIFETIME)
        assert opened.get_session(hash_secret(late)) is None  # used up by the late try too
        # A session's cookie is no login link.
        _, cookie = sessions.start(opened, "local", "local", now)
        assert not sessions.redeem_link(opened, cookie, now)
        assert opened.get_session(hash_secret(cookie)) is not None
