"""Promoting a release from one environment to the next (``baepo promote-release``).

A release may go to ``to_env`` only once it passed in ``from_env``: one of its rollouts there
ended healthy. What is deployed is exactly that revision's version and spec as written,
resolved for ``to_env``'s overlay. Callers: the API.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from baepo.controller.releases import DeployRequest
from baepo.core.model import Revision, RolloutPhase
from baepo.core.ports import Store
from baepo.errors import ConfigError, Problem, StateError
from baepo.spec.loader import parse_spec


@dataclass(frozen=True)
class Candidate:
    """The revision of ``from_env`` to promote, and whether it passed there."""

    revision: Revision
    passed: bool


def candidate(store: Store, app: str, from_env: str, version: str | None) -> Candidate:
    """The revision to promote: the newest one of ``version`` (any, when None: the stable
    revision) in ``from_env``, preferring one that passed."""
    record = store.get_app(app, from_env)
    if record is None:
        raise StateError(f"{app} has never been deployed in {from_env}: nothing to promote")
    passed = {
        r.revision for r in store.list_rollouts(app, from_env) if r.phase == RolloutPhase.HEALTHY
    }
    revisions = store.list_revisions(app, from_env)
    if version is None:
        if record.stable_revision is None:
            raise StateError(f"{app} has no stable revision in {from_env}: nothing passed there")
        stable = store.get_revision(app, from_env, record.stable_revision)
        return Candidate(stable, stable.number in passed or stable.origin.startswith("undo"))
    mine = [r for r in revisions if r.version == version]
    if not mine:
        raise StateError(
            f"version {version} of {app} was never deployed in {from_env}",
            hint=f"deploy it there first: baepo deploy -e {from_env} --version {version}",
        )
    good = [r for r in mine if r.number in passed]
    return Candidate(good[-1], True) if good else Candidate(mine[-1], False)


def promotion(
    store: Store,
    *,
    app: str,
    from_env: str,
    to_env: str,
    version: str | None,
    actor: str,
    force_reason: str | None = None,
    message: str = "",
) -> DeployRequest:
    """The deploy that promotes ``app`` from ``from_env`` to ``to_env``. Refuses a release
    that has not passed in ``from_env`` unless ``force_reason`` is given (the caller checks
    that the actor is an admin)."""
    if from_env == to_env:
        raise ConfigError(
            "cannot promote a release to the environment it is in",
            problems=[Problem("to", f"name another environment than {from_env}")],
        )
    found = candidate(store, app, from_env, version)
    revision = found.revision
    if not found.passed and force_reason is None:
        raise StateError(
            f"version {revision.version} (revision {revision.number}) of {app} has not passed "
            f"in {from_env}: none of its rollouts there ended healthy",
            hint=f"let it pass in {from_env} first, or an admin may force it with --force REASON",
        )
    if revision.source is None:
        raise StateError(
            f"revision {revision.number} of {app} in {from_env} does not keep the spec it was "
            "deployed from, so it cannot be resolved for another environment",
            hint=f"deploy it again in {from_env}, then promote it",
        )
    spec = parse_spec(
        yaml.safe_dump(revision.source, sort_keys=False),
        source=f"revision {revision.number} of {app} in {from_env}",
        env=to_env,
    )
    what = f"{from_env} revision {revision.number}"
    forced = f"; forced: {force_reason}" if not found.passed else ""
    return DeployRequest(
        spec=spec,
        spec_dir=revision.spec_dir,
        env=to_env,
        actor=actor,
        version=revision.version,
        message=message or f"promoted from {what}{forced}",
        source=revision.source,
        origin=f"promotion of {from_env}/{revision.number}",
    )
