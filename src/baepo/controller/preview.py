"""What a deploy would do, as data: ``baepo deploy --dry-run`` and ``baepo hosts plan``.

``preview`` describes the revision a deploy would make without making it: its number and
version, the stable revision it would replace, the config and secret changes, the strategy's
steps, the gates in the order they run, whether an approver must approve it, and, for
``target: hosts``, every command and upload it would run on which host (``hosts_plan``,
built by the same functions the hosts platform runs). Secrets appear by name only.
Callers: ``controller.releases`` (a dry-run deploy), ``cli.hosts_commands``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from baepo.controller import desired
from baepo.core.model import Revision
from baepo.platforms.hosts import commands
from baepo.platforms.hosts import plan as hosts_plan
from baepo.platforms.hosts.platform import agent_source
from baepo.secrets.resolve import secret_changes, secret_labels
from baepo.spec import sensitive
from baepo.spec.models import Spec
from baepo.strategies import host_batches

REDACTED = "<secret>"


def hosts_plan_lines(revision: Revision, spec: Spec) -> list[str]:
    """Each action a deploy of ``revision`` runs on the hosts, one line each (secrets
    redacted); empty for an app that runs on this machine."""
    if spec.target.kind != "hosts":
        return []
    instance = desired.instance_spec(revision)
    # Secret values are never shown: the plan names the variables only. Secret-looking run.env
    # values travel as secrets too (the reconciler sends them so), so they are named only.
    shown = {k: v for k, v in instance.env_vars.items() if not sensitive.is_secret_name(k)}
    hidden = [k for k in instance.env_vars if k not in shown] + list(spec.secrets)
    instance = dataclasses.replace(
        instance, env_vars=shown, secret_env=dict.fromkeys(hidden, REDACTED)
    )
    assert instance.target is not None
    payload = hosts_plan.release_payload(instance.target)
    groups = host_groups(spec)
    if groups is None:
        actions = hosts_plan.release_plan(
            instance, spec.replicas, agent_source=agent_source(), payload=payload
        )
        return commands.render_plan(actions).splitlines()
    # Batch by batch, as the rollout runs them: each batch's hosts get the release and their
    # share of the new instances; their old instances stop one for one as the new ones are
    # ready, and the next batch starts once the whole batch is done.
    hosts = {host.address: host for host in instance.target.hosts}
    share = host_batches.shares(spec.replicas, list(hosts))
    lines: list[str] = []
    numbered = 0
    for n, group in enumerate(groups, 1):
        lines.append(f"batch {n}/{len(groups)}: {', '.join(group)}")
        for address in group:
            ids = [f"<id-{numbered + k}>" for k in range(1, share[address] + 1)]
            numbered += len(ids)
            actions = hosts_plan.host_plan(
                instance, hosts[address], ids, agent_source=agent_source(), payload=payload
            )
            lines += ["  " + line for line in commands.render_plan(actions).splitlines()]
        lines.append(
            f"  then the old instances on {', '.join(group)} stop as the new ones are ready"
        )
    return lines


def gate_lines(spec: Spec) -> list[str]:
    """The gates around the release, in the order the controller runs them."""
    lines = [f"check {check.name!r} (before)" for check in spec.checks.before]
    lines += [
        f"hook {hook.name or hook.command[0]!r} (pre_deploy)" for hook in spec.hooks.pre_deploy
    ]
    if spec.migrate is not None:
        if spec.backup is not None and spec.backup.before_migrate:
            lines.append(f"backup ({spec.backup.kind}) before migrating")
        lines.append(f"migrate up: {' '.join(spec.migrate.up)}")
    lines += [f"check {check.name!r} (after)" for check in spec.checks.after]
    lines += [
        f"hook {hook.name or hook.command[0]!r} (post_deploy)" for hook in spec.hooks.post_deploy
    ]
    return lines


def strategy_lines(spec: Spec) -> list[str]:
    """The strategy in words: its kind, then a canary's steps or the host batches one a line."""
    strategy = spec.strategy
    lines = [f"{strategy.kind}, {spec.replicas} replica(s)"]
    if strategy.canary is not None:
        lines += [f"{n}. {step.describe()}" for n, step in enumerate(strategy.canary.steps, 1)]
    groups = host_groups(spec)
    if groups is not None:
        lines += [f"batch {n}/{len(groups)}: {', '.join(g)}" for n, g in enumerate(groups, 1)]
    return lines


def host_groups(spec: Spec) -> list[tuple[str, ...]] | None:
    """The host batches of ``strategy.rolling.hosts_at_a_time``, in order; None without."""
    strategy = spec.strategy
    size = strategy.rolling.host_batch_size(len(spec.target.hosts)) if strategy.rolling else None
    if size is None:
        return None
    return host_batches.batches([host.address for host in spec.target.hosts], size)


def preview(
    revision: Revision, stable: Revision | None, *, supersedes: int | None = None
) -> dict[str, Any]:
    """Everything a deploy of ``revision`` (not stored) would do, for the API and the CLI."""
    spec = Spec.model_validate(revision.config)
    return {
        "revision": revision.number,
        "version": revision.version,
        "stable": (
            None
            if stable is None
            else {
                "revision": stable.number,
                "version": stable.version,
                "config": sensitive.mask_spec(stable.config),
            }
        ),
        "config": sensitive.mask_spec(revision.config),
        "secrets": secret_labels(revision.secrets),
        "secret_changes": secret_changes(
            stable.secrets if stable is not None else None, revision.secrets
        ),
        "strategy": strategy_lines(spec),
        "gates": gate_lines(spec),
        "approval_required": spec.approval.required,
        "supersedes_rollout": supersedes,
        "target": spec.target.kind,
        "hosts_plan": hosts_plan_lines(revision, spec),
    }
