"""Why a new revision does not come up, as causes with evidence: pure functions of instances.

A failed instance is a *start failure* when it never became ready (its exit code and its last
output lines say why: a ``ModuleNotFoundError``, a command not in PATH) and a *crash loop*
when it had been ready before it kept exiting; an instance whose output says its address is
taken is a *port conflict*. Instances that run but never pass readiness are *never ready*,
with each probe's last answer. Callers: ``strategies.rollout`` (the failure checks every
strategy shares).
"""

from __future__ import annotations

from collections.abc import Sequence

from baepo.core import evidence
from baepo.core.model import Cause, CauseKind, Instance, InstancePhase
from baepo.strategies.plan import live, ready

READY_TIMEOUT_FLOOR = 60.0  # seconds: the shortest default ready_timeout
READY_TIMEOUT_FACTOR = 5.0  # times the stable revision's observed time to ready
SHOWN_INSTANCES = 5  # instances listed in one cause's evidence
SHOWN_OUTPUT = 10  # output lines of one instance in a never-ready cause
STALL_PREFIX = "waiting for"  # how the summary of a stall, recorded in flight, begins


def default_ready_timeout(
    instances: Sequence[Instance], stable: int | None, initial_delay: float = 0.0
) -> float:
    """max(60 s, 5 times the longest time the stable revision's instances took to become
    ready), plus the readiness probe's ``initial_delay`` (no probe runs before it); the floor
    when no stable instance reports its time (a first deploy, a platform that does not know)."""
    observed = [
        i.ready_after for i in instances if i.revision == stable and i.ready_after is not None
    ]
    longest = max(observed) if stable is not None and observed else 0.0
    return max(READY_TIMEOUT_FLOOR, READY_TIMEOUT_FACTOR * longest) + initial_delay


def _exit_line(instance: Instance) -> str:
    code = f" (exit code {instance.exit_code})" if instance.exit_code is not None else ""
    return f"{instance.id} on {instance.address}: {instance.message or 'failed'}{code}"


def _output(instance: Instance, count: int = evidence.TAIL_LINES) -> tuple[str, ...]:
    lines = instance.output[-count:] if count else ()
    return (f"last output of {instance.id}:", *(f"  {line}" for line in lines)) if lines else ()


def port_conflict(instance: Instance) -> Cause | None:
    """A port conflict, when the instance is down (restarting or given up) and its output
    says its address was taken."""
    if instance.ready or instance.phase not in (InstancePhase.STARTING, InstancePhase.FAILED):
        return None
    if instance.exit_code is None or not evidence.port_conflict(instance.output):
        return None
    return Cause(
        CauseKind.PORT_CONFLICT,
        f"instance {instance.id} of revision {instance.revision} could not listen: "
        "its address is already in use",
        (_exit_line(instance), *_output(instance)),
    )


def failed_instance(instance: Instance) -> Cause:
    """The cause of an instance the platform gave up on: a port conflict, a start failure
    (never ready) or a crash loop (ready before, then restarting until given up)."""
    conflict = port_conflict(instance)
    if conflict is not None:
        return conflict
    if instance.ready_after is None:
        summary = f"instance {instance.id} of revision {instance.revision} failed to start"
        kind = CauseKind.START_FAILED
    else:
        summary = (
            f"instance {instance.id} of revision {instance.revision} crash-looped after "
            f"{instance.restarts} restarts"
        )
        kind = CauseKind.CRASH_LOOP
    return Cause(kind, f"{summary}: {instance.message}", (_exit_line(instance), *_output(instance)))


def _probe_lines(instances: Sequence[Instance]) -> tuple[str, ...]:
    shown = list(instances)[:SHOWN_INSTANCES]
    lines = [f"{i.id} on {i.address}: {i.message or i.phase.value}" for i in shown]
    if len(instances) > len(shown):
        lines.append(f"and {len(instances) - len(shown)} more")
    return tuple(lines)


def waiting(instances: Sequence[Instance], target: int) -> list[Instance]:
    """Live instances of ``target`` that are not ready (yet)."""
    return [i for i in live(instances) if i.revision == target and not i.ready]


def never_ready(instances: Sequence[Instance], target: int, waited: float, timeout: float) -> Cause:
    """No instance of ``target`` became ready within ``timeout``: each one's last probe answer
    (and the output of one that exited, which may say why it does not answer)."""
    pending = waiting(instances, target)
    exited = [i for i in pending if i.exit_code is not None and i.output]
    return Cause(
        CauseKind.NEVER_READY,
        f"no instance of revision {target} became ready in {waited:.0f}s "
        f"(health.ready_timeout {timeout:g}s)",
        (*_probe_lines(pending), *(_output(exited[0], SHOWN_OUTPUT) if exited else ())),
    )


def stall(instances: Sequence[Instance], target: int) -> Cause | None:
    """While a rollout waits for readiness: what the probes of the new instances answer."""
    pending = [i for i in waiting(instances, target) if i.message]
    if not pending:
        return None
    return Cause(
        CauseKind.NEVER_READY,
        f"{STALL_PREFIX} {len(pending)} instance(s) of revision {target} to become ready",
        _probe_lines(pending),
    )


def is_stall(cause: Cause | None) -> bool:
    """Whether ``cause`` is one ``stall`` made: recorded in flight, not an end."""
    return (
        cause is not None
        and cause.kind == CauseKind.NEVER_READY
        and cause.summary.startswith(STALL_PREFIX)
    )


def deadline(
    instances: Sequence[Instance], target: int, replicas: int, idle: float, limit: float
) -> Cause:
    """``progress_deadline`` passed: what the rollout was waiting for."""
    new_ready = len([i for i in ready(instances) if i.revision == target])
    return Cause(
        CauseKind.DEADLINE,
        f"no progress for {idle:.0f}s (progress_deadline {limit:g}s)",
        (
            f"{new_ready} of {replicas} instances of revision {target} ready",
            *_probe_lines(waiting(instances, target)),
        ),
    )
