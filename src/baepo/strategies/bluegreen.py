"""The blue-green strategy: run the new revision beside the old one, then switch at once.

The new revision starts as the *preview* (``preview_replica_count`` instances), reachable on
its own ``preview_listen`` address and receiving no production traffic. Once the preview is
ready it is promoted — on its own after ``auto_promotion_seconds``, or by ``baepo promote`` —
which scales it to ``replicas`` and then moves all production traffic to it in one router
operation. The old revision stays up, unrouted, for ``scale_down_delay``, so an undo within
that time only switches back. Callers: ``strategies.rollout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from baepo.core.model import Instance, InstancePhase, RolloutPhase
from baepo.spec.models import Spec
from baepo.spec.strategies import BlueGreenSpec
from baepo.strategies.plan import Plan, live, only_revision_traffic, ready


def blue_green_step(
    spec: Spec, blue_green: BlueGreenSpec, stable: int, target: int, phase: RolloutPhase,
    status: dict[str, Any], instances: Sequence[Instance], now: datetime,
) -> tuple[Plan, dict[str, Any]]:  # fmt: skip
    """One pass of a blue-green rollout from ``stable`` (active) to ``target`` (preview)."""
    status = dict(status)
    replicas = spec.replicas
    preview_count = blue_green.preview_replica_count or replicas
    if status.pop("promote_step", False) or status.pop("promote_full", False):
        status["promote"] = True
    previews = [i for i in live(instances) if i.revision == target]
    previews_ready = [i for i in ready(instances) if i.revision == target]
    others = [i for i in instances if i.revision not in (stable, target)]
    failed = [i.id for i in instances if i.phase == InstancePhase.FAILED]
    stop = [i.id for i in others] + failed
    preview_table = only_revision_traffic(instances, target) if blue_green.preview_listen else None
    notes: list[str] = []

    if len(previews_ready) >= preview_count and "preview_ready_at" not in status:
        status["preview_ready_at"] = now.isoformat()
        notes.append(f"preview ready: {len(previews_ready)} instances of revision {target}")

    if not status.get("promote") and "preview_ready_at" in status:
        if blue_green.auto_promotion_enabled:
            at = datetime.fromisoformat(status["preview_ready_at"]) + timedelta(
                seconds=blue_green.auto_promotion_seconds
            )
            if now >= at:
                status["promote"] = True
                notes.append("auto promotion")
        else:
            where = f" at http://{blue_green.preview_listen}" if blue_green.preview_listen else ""
            return (
                Plan(
                    traffic=only_revision_traffic(instances, stable), stop=tuple(stop),
                    preview=preview_table,
                    phase=RolloutPhase.PAUSED if phase != RolloutPhase.PAUSED else None,
                    message=f"preview ready{where}: waiting for `baepo promote`",
                    notes=tuple(notes),
                ),
                status,
            )  # fmt: skip

    wanted = replicas if status.get("promote") else preview_count
    if status.get("promote") and len(previews_ready) >= replicas:
        keep = {
            "revision": stable,
            "until": (now + timedelta(seconds=blue_green.scale_down_delay)).isoformat(),
        }
        status["keep"] = keep
        switched = only_revision_traffic(instances, target)
        return (
            Plan(
                traffic=switched, stop=tuple(stop), phase=RolloutPhase.HEALTHY,
                message=(
                    f"revision {target} serves all traffic; revision {stable} stays warm for "
                    f"{blue_green.scale_down_delay:g}s"
                ),
                notes=tuple(notes),
            ),
            status,
        )  # fmt: skip
    message = f"preview: {len(previews_ready)}/{wanted} instances of revision {target} ready"
    if status.get("promote"):
        message = f"promoting: {len(previews_ready)}/{wanted} instances ready before the switch"
    elif "preview_ready_at" in status:
        message = "preview ready: promoting in " + (
            f"{blue_green.auto_promotion_seconds:g}s"
            if blue_green.auto_promotion_seconds
            else "a moment"
        )
    new_phase = RolloutPhase.PROMOTING if status.get("promote") else RolloutPhase.PROGRESSING
    return (
        Plan(
            traffic=only_revision_traffic(instances, stable), stop=tuple(stop),
            start=max(0, wanted - len(previews)), preview=preview_table,
            phase=new_phase if new_phase != phase else None, message=message,
            notes=tuple(notes),
        ),
        status,
    )  # fmt: skip
