"""Domain records as JSON for API responses (and so for ``-o json`` in the CLI).

Callers: ``api.routes``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from baepo.core.latency import WindowRates
from baepo.core.model import AnalysisRun, App, Event, Instance, Measurement, Revision, Rollout
from baepo.core.ports import Backend, RevisionStats
from baepo.secrets.resolve import secret_changes, secret_labels
from baepo.spec import sensitive


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def revision_view(r: Revision, *, with_config: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "number": r.number,
        "version": r.version,
        "config_hash": r.config_hash,
        "created_by": r.created_by,
        "created_at": _ts(r.created_at),
        "message": r.message,
        "origin": r.origin,
        "spec_dir": r.spec_dir,
    }
    if with_config:
        view["config"] = sensitive.mask_spec(r.config)
        view["secrets"] = secret_labels(r.secrets)
    return view


def secret_diff(old: Revision | None, new: Revision) -> dict[str, str]:
    """Each secret variable of ``new`` (or of ``old``, if dropped) as added, removed, changed
    or unchanged since ``old``: the only way history shows secrets."""
    return secret_changes(old.secrets if old is not None else None, new.secrets)


def rollout_view(r: Rollout) -> dict[str, Any]:
    duration = ((r.finished_at or r.updated_at) - r.started_at).total_seconds()
    return {
        "id": r.id,
        "revision": r.revision,
        "stable_revision": r.stable_revision,
        "strategy": r.strategy,
        "phase": r.phase.value,
        "message": r.message,
        "started_at": _ts(r.started_at),
        "updated_at": _ts(r.updated_at),
        "finished_at": _ts(r.finished_at),
        "duration_seconds": round(duration, 3),
        "cause": None if r.cause is None else r.cause.to_json(),
    }


def event_view(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": _ts(e.at),
        "kind": e.kind,
        "message": e.message,
        "rollout_id": e.rollout_id,
        "revision": e.revision,
        "actor": e.actor,
    }


def instance_view(i: Instance) -> dict[str, Any]:
    return {
        "id": i.id,
        "revision": i.revision,
        "address": i.address,
        "phase": i.phase.value,
        "ready": i.ready,
        "restarts": i.restarts,
        "pid": i.pid,
        "started_at": _ts(i.started_at),
        "message": i.message,
    }


def app_view(a: App) -> dict[str, Any]:
    return {
        "app": a.app,
        "env": a.env,
        "state": a.state.value,
        "stable_revision": a.stable_revision,
        "updated_at": _ts(a.updated_at),
    }


def traffic_view(table: Sequence[Backend]) -> list[dict[str, Any]]:
    total = sum(b.weight for b in table) or 1
    return [
        {
            "revision": b.revision,
            "weight": b.weight,
            "percent": round(100 * b.weight / total, 1),
            "upstreams": list(b.upstreams),
        }
        for b in table
    ]


def stats_view(
    stats: Sequence[RevisionStats], rates: Mapping[int, WindowRates]
) -> list[dict[str, Any]]:
    """Counters since the router started, and live rates over the last seconds."""

    def live(rate: WindowRates | None) -> dict[str, Any] | None:
        if rate is None:
            return None
        return {
            "seconds": round(rate.seconds, 1),
            "requests_per_second": round(rate.requests_per_second, 2),
            "rate_5xx": rate.rate_5xx,
            "error_rate": rate.error_rate,
            "p50_ms": None if rate.p50 is None else round(rate.p50 * 1000, 2),
            "p95_ms": None if rate.p95 is None else round(rate.p95 * 1000, 2),
            "p99_ms": None if rate.p99 is None else round(rate.p99 * 1000, 2),
        }

    return [
        {
            "revision": s.revision,
            "requests": s.requests,
            "status": s.status,
            "in_flight": s.in_flight,
            "latency_sum": round(s.latency_sum, 6),
            "live": live(rates.get(s.revision)),
        }
        for s in stats
    ]


def steps_view(revision: Revision, rollout: Rollout) -> dict[str, Any] | None:
    """A canary rollout's steps with the current one marked, its weight, and for the default
    canary how close each judged metric is to a verdict."""
    from baepo.spec.models import Spec
    from baepo.strategies.default_canary import JudgeStep, effective_steps

    canary = Spec.model_validate(revision.config).strategy.canary
    if canary is None:
        return None
    current = int(rollout.status.get("step", 0))
    planned = effective_steps(canary)
    steps = [
        {
            "index": index,
            "description": step.describe(),
            "state": "done" if index < current else "current" if index == current else "pending",
            "pause_seconds": None
            if isinstance(step, JudgeStep) or step.pause is None
            else step.pause.duration,
        }
        for index, step in enumerate(planned)
    ]
    return {
        "steps": steps,
        "step": current,
        "weight": int(rollout.status.get("weight", 0)),
        "promoting": current >= len(planned),
        # the end of the timed pause in progress (ISO time), for `--wait` to say so
        "pause_until": rollout.status.get("pause_until"),
        "default": not canary.steps,
        # the default canary's judgement: each metric's evidence and samples against its goal
        "judgement": list(rollout.status.get("judgement", [])) if not canary.steps else [],
    }


def analysis_run_view(run: AnalysisRun, measurements: Sequence[Measurement]) -> dict[str, Any]:
    """One analysis run with its metrics' summaries and every measurement, oldest first."""
    summaries = run.metrics.get("metrics", {})
    metrics = []
    for key, summary in summaries.items():
        template, _, name = key.partition("/")
        taken = [m for m in measurements if (m.template, m.metric) == (template, name)]
        metrics.append(
            {
                "template": template,
                "name": name,
                **summary,
                "measurements": [
                    {
                        "at": _ts(m.at),
                        "phase": m.phase.value,
                        "value": m.value,
                        "message": m.message,
                        "output": m.output,
                    }
                    for m in taken
                ],
            }
        )
    return {
        "id": run.id,
        "rollout_id": run.rollout_id,
        "revision": run.revision,
        "baseline": run.baseline,
        "kind": run.kind,
        "key": run.key,
        "templates": run.templates,
        "phase": run.phase.value,
        "message": run.message,
        "started_at": _ts(run.started_at),
        "finished_at": _ts(run.finished_at),
        "metrics": metrics,
    }
