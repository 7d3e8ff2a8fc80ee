"""The blue-green strategy: run the new revision beside the old one, then switch at once.

The new revision starts as the *preview* (``preview_replica_count`` instances), reachable on
its own ``preview_listen`` address and receiving no production traffic. Once the preview is
ready it is promoted — on its own after ``auto_promotion_seconds``, or by ``baepo promote`` —
which scales it to ``replicas`` and then moves all production traffic to it in one router
operation. The old revision stays up, unrouted, for ``scale_down_delay``, so an undo within
that time only switches back.

With ``pre_promotion_analysis`` the switch waits for an analysis run of the ready preview
(key ``pre-promotion``): failed or error rolls back before any user saw the new revision,
inconclusive pauses for ``baepo promote``. With ``post_promotion_analysis`` the rollout stays
``promoting`` after the switch until a run keyed ``post-promotion`` is successful; failed or
error switches traffic back to the old side, which is still running. Callers:
``strategies.rollout``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from baepo.core.model import AnalysisPhase, AnalysisRun, Instance, InstancePhase, RolloutPhase
from baepo.spec.models import Spec
from baepo.spec.strategies import BlueGreenSpec
from baepo.strategies.canary import FAILING, WAITING, analysis_failed, analysis_request
from baepo.strategies.plan import Plan, live, only_revision_traffic, ready


def blue_green_step(
    spec: Spec, blue_green: BlueGreenSpec, stable: int, target: int, phase: RolloutPhase,
    status: dict[str, Any], instances: Sequence[Instance], now: datetime,
    analyses: Mapping[str, AnalysisRun] | None = None,
) -> tuple[Plan, dict[str, Any]]:  # fmt: skip
    """One pass of a blue-green rollout from ``stable`` (active) to ``target`` (preview)."""
    status = dict(status)
    analyses = analyses or {}
    replicas = spec.replicas
    preview_count = blue_green.preview_replica_count or replicas
    promoted_now = bool(status.pop("promote_step", False)) | bool(status.pop("promote_full", False))
    if promoted_now:
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

    pre = blue_green.pre_promotion_analysis
    if pre is not None and not status.get("promote") and "preview_ready_at" in status:
        run = analyses.get("pre-promotion")
        stable_table = only_revision_traffic(instances, stable)
        if run is None or run.phase == AnalysisPhase.RUNNING:
            request = analysis_request("pre-promotion", "pre_promotion", pre, target, stable)
            message = run.message if run is not None else "pre-promotion analysis starting"
            return (
                Plan(
                    traffic=stable_table, stop=tuple(stop), preview=preview_table,
                    phase=RolloutPhase.PROGRESSING if phase != RolloutPhase.PROGRESSING else None,
                    message=message, notes=tuple(notes), analyses=(request,),
                ),
                status,
            )  # fmt: skip
        if run.phase in FAILING:
            return analysis_failed(run), status
        if run.phase in WAITING:
            return (
                Plan(
                    traffic=stable_table, stop=tuple(stop), preview=preview_table,
                    phase=RolloutPhase.PAUSED if phase != RolloutPhase.PAUSED else None,
                    message=run.message, notes=tuple(notes),
                ),
                status,
            )  # fmt: skip

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
    post = blue_green.post_promotion_analysis
    switching = status.get("promote") and len(previews_ready) >= replicas
    if post is not None and (status.get("switched") or switching):
        status["switched"] = True
        run = analyses.get("post-promotion")
        if run is not None and run.phase in FAILING:
            return analysis_failed(run), status
        accepted = run is not None and run.phase in WAITING and promoted_now
        if not accepted and (run is None or run.phase != AnalysisPhase.SUCCESSFUL):
            request = analysis_request("post-promotion", "post_promotion", post, target, stable)
            waiting = run.message if run is not None else "post-promotion analysis starting"
            if run is not None and run.phase in WAITING:
                waiting = f"{run.message}; `baepo promote` keeps revision {target}"
            return (
                Plan(
                    traffic=only_revision_traffic(instances, target), stop=tuple(stop),
                    phase=RolloutPhase.PROMOTING if phase != RolloutPhase.PROMOTING else None,
                    message=f"revision {target} serves all traffic; {waiting}",
                    notes=tuple(notes),
                    analyses=() if run is not None and run.phase.terminal else (request,),
                ),
                status,
            )  # fmt: skip
    if status.get("promote") and (len(previews_ready) >= replicas or status.get("switched")):
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
