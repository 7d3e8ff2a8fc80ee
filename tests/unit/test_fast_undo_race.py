"""A fast undo of a blue-green switch (the old side still warm) never stops the side it
switches back to, whichever order a controller pass reads the app and the rollout in.

The undo moves the app's stable revision back and marks the promoted side's ``keep`` as over.
A pass that began before the undo (the old stable revision in hand) but reads the rollout after
it must not pair the two: that pass would converge the promoted revision and stop the warm
instances now serving. The reconciler runs with a real store over a fake fleet and router."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_host_batch_failures import settle
from test_rollout_causes import APP, ENV, World, spec

BLUE_GREEN = {"strategy": {"blue_green": {"scale_down_delay": "60s"}}, "replicas": 2}


def test_a_pass_begun_before_a_fast_undo_keeps_the_warm_side(tmp_path: Path) -> None:
    world = World(tmp_path)

    async def scenario() -> None:
        world.deploy("1", spec(**BLUE_GREEN))
        await settle(world.reconciler, world.store)
        world.deploy("2", spec(**BLUE_GREEN))
        await settle(world.reconciler, world.store)
        warm = {i.id for i in world.fleet.instances.values() if i.revision == 1}
        assert len(warm) == 2 and world.last().status.get("keep", {}).get("revision") == 1

        begun = world.store.get_app(APP, ENV)  # a pass starts: stable is revision 2
        assert begun is not None and begun.stable_revision == 2
        outcome = world.releases.undo(APP, ENV, "carol")
        assert "still warm" in outcome.message
        await world.reconciler.reconcile(begun)  # ...and reads the rollout after the undo
        await world.reconciler.wait_draining()

        assert warm <= set(world.fleet.instances), "the warm side was stopped"
        await settle(world.reconciler, world.store)
        assert {i.id for i in world.fleet.instances.values()} == warm

    asyncio.run(scenario())
