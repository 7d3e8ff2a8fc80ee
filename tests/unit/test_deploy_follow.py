"""What ``baepo deploy --wait`` (and undo, down) follows after the server's answer."""

from __future__ import annotations

from baepo.cli.release_commands import to_follow


def test_a_new_rollout_is_followed() -> None:
    assert to_follow({"changed": True, "rollout_id": 7})


def test_the_same_deploy_run_again_follows_the_rollout_in_flight() -> None:
    # "revision 2 (2.0.0) with this config is already rolling out (rollout 7)"
    assert to_follow({"changed": False, "rollout_id": 7})


def test_a_no_op_has_nothing_to_follow() -> None:
    assert not to_follow({"changed": False, "rollout_id": None})
    assert not to_follow({"changed": False})


def test_down_and_a_warm_undo_are_followed_until_settled() -> None:
    assert to_follow({"changed": True, "rollout_id": None})
