"""Every end of a rollout this test can drive records a cause: a person (abort, reject, undo,
down), a newer deploy (supersede), hosts that refuse starts (``max_failed_hosts``), and a
router that fails while a rollout is under way (recorded while it stalls, cleared when it
recovers). The reconciler runs with a real store over a fake fleet and router, pass by pass;
a rollout that ends failed, rolled back or aborted without a cause is logged."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from test_host_batch_failures import HOSTS, FakeFleet, FakeRouter, batched_spec, settle

from baepo.controller.gates import gate_cause
from baepo.controller.reconciler import Reconciler
from baepo.controller.releases import DeployRequest, Releases
from baepo.controller.steering import Steering
from baepo.core import causes
from baepo.core.model import Cause, CauseKind, Rollout, RolloutPhase
from baepo.errors import ExternalError
from baepo.gates.run import GateResult
from baepo.secrets.keys import Keyring
from baepo.spec.models import Spec
from baepo.store import SqlStore, open_store, sqlite_url
from baepo.strategies.plan import Plan

APP, ENV = "a", "default"


def spec(**extra: Any) -> Spec:
    return Spec.model_validate(
        {"app": APP, "run": {"command": ["x", "{port}"]}, "replicas": 1, **extra}
    )


class World:
    """A store, a fake fleet and router, the reconciler and the users' operations."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.store: SqlStore = open_store(sqlite_url(tmp_path / "state.db"))
        self.fleet = FakeFleet()
        self.router = FakeRouter()
        self.reconciler = Reconciler(self.store, self.fleet, self.router)
        self.releases = Releases(self.store, wake=lambda: None)
        self.steering = Steering(self.store, wake=lambda: None)

    def deploy(self, version: str, the_spec: Spec | None = None, **options: Any) -> None:
        request = DeployRequest(
            the_spec or spec(), str(self.tmp_path), ENV, "alice", version=version, **options
        )
        assert self.releases.deploy(request).changed

    def last(self) -> Rollout:
        last = self.store.latest_rollout(APP, ENV)
        assert last is not None
        return last

    async def passes(self, count: int = 1) -> None:
        for _ in range(count):
            app = self.store.get_app(APP, ENV)
            assert app is not None
            await self.reconciler.reconcile(app)
            await self.reconciler.wait_draining()


def test_a_person_ending_a_rollout_is_its_cause_with_who_and_what_they_said(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)

    async def scenario() -> None:
        world.deploy("1")
        await settle(world.reconciler, world.store)

        world.deploy("2")
        world.steering.abort(APP, ENV, "bob")
        aborted = world.last()
        assert aborted.phase == RolloutPhase.ABORTED
        assert aborted.cause == Cause(
            CauseKind.ABORTED, "baepo abort by bob", ("by bob", "with baepo abort")
        )

        world.deploy("3")
        world.releases.undo(APP, ENV, "carol", message="the wrong build")
        undone = world.last()
        assert undone.cause is not None and undone.cause.kind == CauseKind.ABORTED
        assert undone.cause.summary == "baepo undo by carol"
        assert "said: the wrong build" in undone.cause.evidence

        world.deploy("4")
        world.releases.down(APP, ENV, "dave")
        down = world.last()
        assert down.cause is not None and down.cause.summary == "baepo down by dave"

    asyncio.run(scenario())


def test_a_rejected_approval_records_the_reason(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.deploy("1", spec(approval={"required": True}))
    world.steering.reject(APP, ENV, "erin", reason="not during the sale")
    rejected = world.last()
    assert rejected.phase == RolloutPhase.ABORTED
    assert rejected.cause == Cause(
        CauseKind.ABORTED,
        "baepo reject by erin",
        ("by erin", "with baepo reject", "said: not during the sale"),
    )


def test_a_superseded_rollout_names_the_revision_that_replaced_it(tmp_path: Path) -> None:
    world = World(tmp_path)

    async def scenario() -> None:
        world.deploy("1")
        await settle(world.reconciler, world.store)
        world.deploy("2")
        first = world.last()
        world.deploy("3", supersede=True)
        replaced = world.store.get_rollout(first.id)
        assert replaced.phase == RolloutPhase.SUPERSEDED
        assert replaced.cause is not None and replaced.cause.kind == CauseKind.SUPERSEDED
        assert replaced.cause.summary == "replaced by revision 3 (3), deployed by alice"
        assert world.last().revision == 3  # the number it named is the one stored

    asyncio.run(scenario())


def test_hosts_beyond_max_failed_hosts_are_an_infrastructure_cause_naming_each_error(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)

    async def scenario() -> None:
        world.deploy("1", batched_spec())
        await settle(world.reconciler, world.store)
        world.fleet.refuse = {HOSTS[2]}
        world.deploy("2", batched_spec())
        await settle(world.reconciler, world.store)
        ended = world.last()
        assert ended.phase == RolloutPhase.ROLLED_BACK
        assert ended.cause is not None and ended.cause.kind == CauseKind.INFRASTRUCTURE
        assert "max_failed_hosts (0)" in ended.cause.summary
        assert ended.cause.evidence == (f"{HOSTS[2]}: root@{HOSTS[2]}: the build of r2 failed",)

    asyncio.run(scenario())


class BrokenRouter(FakeRouter):
    """A router whose tables cannot be set while ``broken`` is set."""

    broken = False

    async def set_backends(self, app: str, env: str, backends: Any, **options: Any) -> None:
        if self.broken:
            raise ExternalError("the router's admin socket refused the connection")
        await super().set_backends(app, env, backends, **options)


def test_a_router_failure_during_a_rollout_is_its_cause_while_it_stalls(tmp_path: Path) -> None:
    world = World(tmp_path)
    router = BrokenRouter()
    world.reconciler = Reconciler(world.store, world.fleet, router)

    async def scenario() -> None:
        world.deploy("1")
        await settle(world.reconciler, world.store)
        world.deploy("2")
        router.broken = True
        with pytest.raises(ExternalError):
            await world.passes(20)  # the new instance gets ready, its traffic cannot be set
        stalled = world.last()
        assert not stalled.phase.terminal
        assert stalled.cause is not None and stalled.cause.kind == CauseKind.INFRASTRUCTURE
        assert "admin socket refused" in stalled.cause.summary
        precise = Cause(CauseKind.PORT_CONFLICT, "port 8080 is taken")
        world.store.save_rollout(replace(world.last(), cause=precise))
        with pytest.raises(ExternalError):
            await world.passes()
        assert world.last().cause == precise  # a more precise cause is not replaced
        router.broken = False
        await settle(world.reconciler, world.store)
        healthy = world.last()
        assert healthy.phase == RolloutPhase.HEALTHY
        assert healthy.cause is None

    asyncio.run(scenario())


def test_an_end_without_a_cause_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    world = World(tmp_path)

    async def scenario() -> None:
        world.deploy("1")
        app = world.store.get_app(APP, ENV)
        assert app is not None
        rollout = world.last()
        with caplog.at_level(logging.WARNING, "baepo.controller.reconciler"):
            ended = await world.reconciler._transition(
                app, rollout, Plan(phase=RolloutPhase.FAILED, message="gone"), rollout.status
            )
        assert ended.phase == RolloutPhase.FAILED
        assert "ends failed without a recorded cause: gone" in caplog.text

    asyncio.run(scenario())


def test_evidence_from_output_is_redacted_stripped_and_short() -> None:
    output = "ok\n\x1b[31mfailed\x1b[0m with token s3cr3t-value\n\n" + "x" * 400 + "\n"
    tail = causes.output_tail(output, ["s3cr3t-value"], lines=2)
    assert tail == ["failed with token ***", "x" * 299 + "…"]
    cause = causes.gate_failed(
        "hook", "pre_deploy", "migrate", "migrate exited with 3", 3, "a\nb\nc"
    )
    assert cause.kind == CauseKind.GATE
    assert cause.summary == "hook 'migrate' (pre_deploy) failed: migrate exited with 3"
    assert cause.evidence == (
        "hook 'migrate' (pre_deploy): migrate exited with 3",
        "exit code 3",
        "last 3 line(s) of its output:",
        "  a",
        "  b",
        "  c",
    )
    assert causes.headline(cause.to_json()) == (
        "gate, hook or migration: hook 'migrate' (pre_deploy) failed: migrate exited with 3"
    )
    assert causes.label("some_new_kind") == "some new kind"


def test_secrets_the_key_cannot_read_fail_the_rollout_as_infrastructure(tmp_path: Path) -> None:
    world = World(tmp_path)
    sealing = Keyring(keys=[Fernet.generate_key().decode()])
    world.releases = Releases(world.store, wake=lambda: None, keyring=sealing)
    other = Keyring(keys=[Fernet.generate_key().decode()])
    world.reconciler = Reconciler(world.store, world.fleet, world.router, keyring=other)

    async def scenario() -> None:
        world.deploy("1", spec(run={"command": ["x", "{port}"], "env": {"API_TOKEN": "t0k3n"}}))
        await world.passes(3)
        failed = world.last()
        assert failed.phase == RolloutPhase.FAILED
        assert failed.cause is not None and failed.cause.kind == CauseKind.INFRASTRUCTURE
        assert failed.cause.summary == "the secrets of revision 1 cannot be read"
        assert "encrypted with another key" in failed.cause.evidence[0]
        assert "t0k3n" not in repr(failed.cause)

    asyncio.run(scenario())


def test_a_gate_that_could_not_run_for_its_secrets_is_infrastructure_else_a_gate() -> None:
    unread = gate_cause("secrets", "before", "secrets", GateResult(False, "API_KEY: not set"))
    assert unread.kind == CauseKind.INFRASTRUCTURE
    assert unread.summary == "the secrets of the gates cannot be read: API_KEY: not set"
    check = gate_cause(
        "check", "before", "ticket", GateResult(False, "exit 1", "no ticket\n", exit_code=1)
    )
    assert check.kind == CauseKind.GATE
    assert check.summary == "check 'ticket' (before) failed: exit 1"
    assert check.evidence[-1] == "  no ticket"
    backup = gate_cause("backup", "create", "postgres", GateResult(False, "pg_dump failed"))
    assert backup.summary == "backup 'postgres' (create) failed: pg_dump failed"
