"""Deploy locks: the refusal messages, and take/check/release against a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from baepo import store
from baepo.controller import locks
from baepo.core.model import DeployLock, Revision, Rollout, RolloutPhase
from baepo.errors import StateError

SINCE = datetime(2026, 11, 22, 7, 40, 12, tzinfo=UTC)


def test_lock_message_names_holder_time_and_reason() -> None:
    lock = DeployLock("shop", "production", "alice", "db migration", SINCE)
    assert locks.lock_message(lock) == (
        "shop in production is locked by alice since 2026-11-22 07:40:12 UTC: db migration"
    )
    bare = DeployLock("shop", "production", "alice", "", SINCE)
    assert locks.lock_message(bare) == (
        "shop in production is locked by alice since 2026-11-22 07:40:12 UTC"
    )


def test_in_progress_message_names_who_deploys_and_since_when() -> None:
    rollout = Rollout(
        id=5, app="shop", env="production", revision=3, stable_revision=2, strategy="rolling",
        phase=RolloutPhase.PROGRESSING, message="", started_at=SINCE, updated_at=SINCE,
    )  # fmt: skip
    revision = Revision(
        app="shop", env="production", number=3, version="3.0.0", config={}, config_hash="x",
        spec_dir="/tmp", created_by="alice", created_at=SINCE,
    )  # fmt: skip
    assert locks.in_progress_message(rollout, revision) == (
        "shop in production is being deployed by alice (rollout 5, revision 3) since 07:40:12 UTC"
    )


def test_take_check_and_release(tmp_path: Path) -> None:
    opened = store.open_store(store.sqlite_url(tmp_path / "state.db"))
    try:
        locks.check(opened, "shop", "production", "bob")
        locks.take(opened, "shop", "production", "alice", "db migration", SINCE)
        locks.check(opened, "shop", "production", "alice")
        locks.check(opened, "shop", "staging", "bob")
        with pytest.raises(StateError, match="locked by alice since 2026-11-22 07:40:12 UTC"):
            locks.check(opened, "shop", "production", "bob")
        with pytest.raises(StateError, match="locked by alice"):
            locks.take(opened, "shop", "production", "alice", "again", SINCE)
        with pytest.raises(StateError, match="only alice may unlock it"):
            locks.release(opened, "shop", "production", "bob", force=False)
        released = locks.release(opened, "shop", "production", "bob", force=True)
        assert released is not None and released.holder == "alice"
        assert locks.release(opened, "shop", "production", "bob", force=False) is None
        locks.check(opened, "shop", "production", "bob")
    finally:
        opened.close()
